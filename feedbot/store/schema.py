"""The store's tables: one MetaData with a naming convention, portable across SQLite and PostgreSQL.

Times are stored as aware UTC (``DateTime(timezone=True)``; on SQLite the ``UTCDateTime``
decorator makes them come back aware). JSON columns hold small lists (authors, categories,
topics). The Alembic migrations under ``store/migrations`` create exactly these tables.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always aware UTC in Python, whatever the backend.

    On SQLite the text is SQLite's default storage format (``2026-01-31 12:00:00.000000``,
    UTC), written by ``datetime.isoformat`` and read by ``datetime.fromisoformat`` in one
    function call each way: SQLAlchemy's own processors build the text from a dict of
    fields and parse it with a regex, and a decorator's processing costs two more calls a
    value; a poll binds a couple of hundred timestamps inside the write lock
    (docs/architecture.md).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        fallback = sqlite.DATETIME().bind_processor(dialect)  # type: ignore[no-untyped-call]
        assert fallback is not None  # SQLite's DATETIME always formats its values

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            value = _utc(value).replace(tzinfo=None)
            if type(value) is not datetime:  # a datetime subclass
                return cast(str | None, fallback(value))
            return value.isoformat(" ", "microseconds")

        return process

    def result_processor(
        self, dialect: Dialect, coltype: object
    ) -> Callable[[Any], datetime | None] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        return _read_utc

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return _read_utc(value)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return value.astimezone(UTC)


def _read_utc(value: Any) -> datetime | None:
    """A stored timestamp as aware UTC: SQLite's text (naive UTC), or a driver's datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return _read_text(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@lru_cache(maxsize=8192)
def _read_text(value: str) -> datetime:
    """SQLite's text as aware UTC, once per distinct text: a first poll's band queries read
    the same stories' dates again and again (dozens of rows a new story; datetimes are
    immutable, so one object serves every reader)."""
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


articles = Table(
    "articles",
    metadata,
    Column("id", String(1024), primary_key=True),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("content", Text, nullable=False, default=""),
    Column("link", Text),
    Column("authors", JSON, nullable=False),
    Column("language", String(35)),
    Column("categories", JSON, nullable=False),
    Column("published", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    Column("origin_title", Text),
    Column("origin_url", Text),
    Column("origin_link", Text),
    Column("content_hash", String(80), nullable=False),
    Column("topics", JSON, nullable=False),
    Column("matched_terms", JSON, nullable=False),
    Column("upstream_id", Integer, ForeignKey("upstreams.id", ondelete="SET NULL")),
    Column("created_at", UTCDateTime, nullable=False),
    # when feedbot last wrote the row (added or changed): its max is the publisher's change
    # check, one index lookup however large the store (migration 0003 set it to created_at;
    # NULL only for a row written by another tool)
    Column("changed_at", UTCDateTime),
    Index(None, "updated", "id"),
    Index(None, "changed_at"),
)

# One row per (topic, article) so "newest N of topic T" reads an index, never the whole table.
article_topics = Table(
    "article_topics",
    metadata,
    Column("topic", String(64), primary_key=True),
    Column(
        "article_id", String(1024), ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("updated", UTCDateTime, nullable=False),
    Index(None, "topic", "updated"),
)

# Other reports of the same story (dedup across feeds).
article_reports = Table(
    "article_reports",
    metadata,
    Column(
        "article_id", String(1024), ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("link", String(2048), primary_key=True),
    Column("source_title", Text),
    Column("source_url", Text),
    Column("seen_at", UTCDateTime, nullable=False),
    Index(None, "seen_at"),
)

# Exact story keys (canonical URL, normalised title) for indexed candidate lookup; the
# SimHash band keys are in story_log (migration 0007).
story_keys = Table(
    "story_keys",
    metadata,
    Column("key", String(512), primary_key=True),
    Column(
        "article_id", String(1024), ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("published", UTCDateTime, nullable=False),
    Column("simhash", BigInteger, nullable=False),
    # covering: a candidate lookup (by key) reads its date, simhash and article from the
    # index alone, never the table (half the cost of the write lock's largest
    # query). On SQLite the table itself is that index: without a rowid its rows live in
    # the primary key's B-tree, so each key costs one random place to write, not three
    # (migration 0005; docs/architecture.md).
    Index(None, "key", "published", "simhash", "article_id").ddl_if(dialect="postgresql"),
    sqlite_with_rowid=False,
)

# The SimHash band keys of stories, in the order they were written: one row per write of
# a story's band keys (``bands``: bit i set when "b{i}:..." was written; each band key is a
# slice of ``simhash``). Every process that deduplicates mirrors it in memory
# (bandindex.py), reading only the rows added since it last looked; windows older than
# a mirror reaches read it by date. Only ever added to.
story_log = Table(
    "story_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column(
        "article_id", String(1024), ForeignKey("articles.id", ondelete="CASCADE"), nullable=False
    ),
    Column("published", UTCDateTime, nullable=False),
    Column("simhash", BigInteger, nullable=False),
    Column("bands", Integer, nullable=False),
    Index(None, "published"),
    Index(None, "article_id"),  # the bands a story has logged (entries.add_story_keys)
)

# Each story's comparison keys (shingles, vocabulary, names), packed by stories.pack_sketch:
# a candidate found through story_keys is compared without re-deriving them from its text.
story_sketches = Table(
    "story_sketches",
    metadata,
    Column(
        "article_id", String(1024), ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("sketch", LargeBinary, nullable=False),
)

upstreams = Table(
    "upstreams",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("url", Text, nullable=False),  # where it is fetched (follows confirmed 301/308)
    Column("config_url", Text, nullable=False),  # as configured or added
    Column("topics", JSON, nullable=False),
    Column("interval_s", Integer),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("headers", JSON, nullable=False),
    Column("backfill", String(40), nullable=False, default="none"),
    Column("managed_by", String(10), nullable=False, default="config"),
    Column("title", Text),
    Column("site_link", Text),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("body_hash", String(80)),
    Column("redirect_url", Text),
    Column("redirect_count", Integer, nullable=False, default=0),
    Column("current_interval_s", Integer),
    Column("next_check", UTCDateTime, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("last_attempt", UTCDateTime),
    Column("last_success", UTCDateTime),
    Column("last_error", Text),
    Column("last_error_kind", String(40)),
    Column("disabled_reason", Text),
    Column("warning", Text),
    Column("polls", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "enabled", "next_check"),
)

# Every entry seen in every upstream, relevant or not, keyed by its identity in that feed.
entries = Table(
    "entries",
    metadata,
    Column(
        "upstream_id", Integer, ForeignKey("upstreams.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("key", String(1024), primary_key=True),
    Column("link", Text),
    Column("title_key", String(512)),
    Column("content_hash", String(80), nullable=False),
    Column("article_id", String(1024), ForeignKey("articles.id", ondelete="SET NULL")),
    Column("backfill", Boolean, nullable=False, default=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "upstream_id", "link"),
    Index(None, "upstream_id", "title_key"),
)

# Pruned entries and articles leave a tombstone so they never come back.
tombstones = Table(
    "tombstones",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("key", String(1100), primary_key=True),
    Column("deleted_at", UTCDateTime, nullable=False),
)

# The transactional outbox: one row per (article, webhook, event).
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column(
        "article_id", String(1024), ForeignKey("articles.id", ondelete="CASCADE"), nullable=False
    ),
    Column("webhook", String(64), nullable=False),
    Column("event", String(32), nullable=False),
    Column("status", String(12), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt", UTCDateTime, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime),
    Column("fence", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("last_status", Integer),
    Column("created_at", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime),
    UniqueConstraint("article_id", "webhook", "event"),
    Index(None, "status", "next_attempt"),
    Index(None, "webhook", "status"),
)

webhook_state = Table(
    "webhook_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("failing", Text),
    Column("last_error", Text),
    Column("last_success", UTCDateTime),
    Column("next_send", UTCDateTime),
)
