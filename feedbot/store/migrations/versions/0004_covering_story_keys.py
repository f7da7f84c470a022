"""covering story keys: the candidate index holds every column a candidate lookup reads

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = ["key", "published", "simhash", "article_id"]


def upgrade() -> None:
    with op.batch_alter_table("story_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_story_keys_key_published_simhash_article_id"), _COLUMNS, unique=False
        )
        batch_op.drop_index(batch_op.f("ix_story_keys_key_published"))


def downgrade() -> None:
    with op.batch_alter_table("story_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_story_keys_key_published"), ["key", "published"], unique=False
        )
        batch_op.drop_index(batch_op.f("ix_story_keys_key_published_simhash_article_id"))
