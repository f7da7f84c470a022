"""story log: the band keys of story_keys in the order they were written

Worker processes keep the SimHash band keys of stored stories in memory and read only the
rows added since they last looked (``store/bandindex.py``). One row per write of a story's
band keys: its article, date and SimHash, and which of the eight bands were written (each
band key is a slice of the SimHash). Existing stories are logged from their band keys.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# bit i of ``bands`` for the key "b{i}:..."; the same SQL on SQLite and PostgreSQL
_BACKFILL = """
INSERT INTO story_log (article_id, published, simhash, bands)
SELECT article_id, published, simhash, SUM(CASE substr("key", 1, 3)
    WHEN 'b0:' THEN 1 WHEN 'b1:' THEN 2 WHEN 'b2:' THEN 4 WHEN 'b3:' THEN 8
    WHEN 'b4:' THEN 16 WHEN 'b5:' THEN 32 WHEN 'b6:' THEN 64 WHEN 'b7:' THEN 128
    ELSE 0 END)
FROM story_keys WHERE "key" LIKE 'b%'
GROUP BY article_id, published, simhash ORDER BY published, article_id
"""


def upgrade() -> None:
    op.create_table(
        "story_log",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("article_id", sa.String(length=1024), nullable=False),
        sa.Column("published", sa.DateTime(timezone=True), nullable=False),
        sa.Column("simhash", sa.BigInteger(), nullable=False),
        sa.Column("bands", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_story_log_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_story_log")),
    )
    op.create_index(op.f("ix_story_log_published"), "story_log", ["published"], unique=False)
    op.execute(_BACKFILL)


def downgrade() -> None:
    op.drop_index(op.f("ix_story_log_published"), table_name="story_log")
    op.drop_table("story_log")
