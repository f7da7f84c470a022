"""change markers: articles.changed_at and indexes that make the publisher's change check
one index lookup each, however large the store

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE articles SET changed_at = created_at")
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_articles_changed_at"), ["changed_at"], unique=False)
    with op.batch_alter_table("article_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_article_reports_seen_at"), ["seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("article_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_article_reports_seen_at"))
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_articles_changed_at"))
        batch_op.drop_column("changed_at")
