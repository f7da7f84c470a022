"""story keys without rowid on SQLite: the primary key's B-tree holds the rows

Each story key was written to three B-trees on SQLite (the rowid table, the primary key,
the covering index), two of them at random places; a first poll of many feeds writes
about 60 keys a feed inside the write lock. A WITHOUT ROWID table stores its rows in the
primary key (key, article_id), which then covers every candidate lookup by itself.
PostgreSQL keeps its table and covering index unchanged.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TABLE = """CREATE TABLE {name} (
    "key" VARCHAR(512) NOT NULL,
    article_id VARCHAR(1024) NOT NULL,
    published DATETIME NOT NULL,
    simhash BIGINT NOT NULL,
    CONSTRAINT pk_story_keys PRIMARY KEY ("key", article_id),
    CONSTRAINT fk_story_keys_article_id_articles FOREIGN KEY(article_id)
        REFERENCES articles (id) ON DELETE CASCADE
){suffix}"""
_COVERING = (
    "CREATE INDEX ix_story_keys_key_published_simhash_article_id"
    ' ON story_keys ("key", published, simhash, article_id)'
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(" WITHOUT ROWID")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild("")
        op.execute(_COVERING)


def _rebuild(suffix: str) -> None:
    """story_keys copied into a new table (``suffix`` after its definition), which then
    takes its name; dropping the old table drops its indexes."""
    op.execute(_TABLE.format(name="story_keys_new", suffix=suffix))
    op.execute(
        'INSERT INTO story_keys_new ("key", article_id, published, simhash)'
        ' SELECT "key", article_id, published, simhash FROM story_keys'
    )
    op.execute("DROP TABLE story_keys")
    op.execute("ALTER TABLE story_keys_new RENAME TO story_keys")
