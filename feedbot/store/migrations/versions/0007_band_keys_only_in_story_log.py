"""band keys only in the story log: story_keys keeps the exact keys

Every process that deduplicates now looks band keys up in its in-memory mirror of
``story_log`` (``store/bandindex.py``), and windows older than a mirror reaches read the
log by date, so the eight band keys of each story are no longer written to ``story_keys``
(about four in five of its rows, each at a random place in its B-tree). The rows already
there are deleted; the log holds the same keys (migration 0006 logged them). The log gets
an index on its article, for the bands one story has logged.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# band keys are "b0:" to "b7:" then 16 hex digits; exact keys start "t:" or "u:"
_BANDS = """DELETE FROM story_keys WHERE "key" >= 'b0:' AND "key" < 'b8:'"""


def upgrade() -> None:
    op.execute(_BANDS)
    op.create_index(op.f("ix_story_log_article_id"), "story_log", ["article_id"], unique=False)


def downgrade() -> None:
    """Write every logged band key back into story_keys, as before this revision."""
    op.drop_index(op.f("ix_story_log_article_id"), table_name="story_log")
    conn = op.get_bind()
    # untyped columns: dates and hashes are copied as the database holds them
    log = sa.table("story_log", *map(sa.column, ("article_id", "published", "simhash", "bands")))
    keys = sa.table("story_keys", *map(sa.column, ("key", "article_id", "published", "simhash")))
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for article_id, published, simhash, bands in conn.execute(sa.select(log)):
        # band keys as written at this revision (similarity.band_keys), spelt out here so
        # that the migration keeps meaning what it meant if that function ever changes
        digits = f"{simhash % (1 << 64):016x}"
        for i in range(8):
            if bands >> i & 1:
                key = f"b{i}:{digits[14 - 2 * i : 16 - 2 * i]}"
                rows.setdefault((key, article_id), {
                    "key": key, "article_id": article_id, "published": published,
                    "simhash": simhash,
                })  # fmt: skip
    if rows:
        conn.execute(sa.insert(keys), list(rows.values()))
