"""Store contract: the same tests against a SQLite file and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from feedbot.models import ArticleData, Origin
from feedbot.store import articles as store
from feedbot.store.db import Database, mask_db_url

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def article(i: int, **kw: object) -> ArticleData:
    base = ArticleData(
        id=f"tag:test.example,2026:a/{i}",
        title=f"Title {i}",
        summary="summary",
        content="<p>content</p>",
        link=f"https://example.org/{i}",
        authors=("Ann",),
        language="fr",
        categories=("x",),
        published=T0 + timedelta(minutes=i),
        updated=T0 + timedelta(minutes=i),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture
def db(db_url: str) -> Database:
    database = Database(db_url)
    yield database
    database.close()


def test_migrations_create_the_schema_and_are_idempotent(db: Database, db_url: str) -> None:
    names = set(inspect(db.engine).get_table_names())
    assert {"articles", "article_topics", "upstreams", "entries", "deliveries"} <= names
    Database(db_url).close()  # applying again is a no-op


def test_upsert_added_unchanged_updated(db: Database) -> None:
    now = T0 + timedelta(days=1)
    with db.write() as conn:
        assert store.upsert_article(conn, article(1), now, topics=["alibaba"]) == "added"
    with db.write() as conn:
        assert store.upsert_article(conn, article(1), now, topics=["alibaba"]) == "unchanged"
    later = now + timedelta(hours=1)
    with db.write() as conn:
        assert (
            store.upsert_article(conn, article(1, title="Changed"), later, topics=["alibaba"])
            == "updated"
        )
    with db.read() as conn:
        stored = store.get_article(conn, article(1).id)
        assert store.count_articles(conn) == 1
    assert stored is not None
    assert stored.title == "Changed"
    assert stored.updated == later  # an undated edit moves it to "now"
    assert stored.published == article(1).published
    assert stored.updated.tzinfo is not None


def test_latest_articles_newest_first_with_topics(db: Database) -> None:
    with db.write() as conn:
        for i in range(10):
            store.upsert_article(
                conn, article(i), T0, topics=["alibaba"] if i % 2 else ["china-tech"]
            )
    with db.read() as conn:
        newest = store.latest_articles(conn, 3)
        odd = store.latest_articles(conn, 3, topics=["alibaba"])
        both = store.latest_articles(conn, 4, topics=["alibaba", "china-tech"])
    assert [a.title for a in newest] == ["Title 9", "Title 8", "Title 7"]
    assert [a.title for a in odd] == ["Title 9", "Title 7", "Title 5"]
    assert [a.title for a in both] == ["Title 9", "Title 8", "Title 7", "Title 6"]
    assert odd[0].topics == ("alibaba",)


def test_origin_and_related_reports_round_trip(db: Database) -> None:
    origin = Origin(title="Source", url="https://src.example/feed", link="https://src.example/1")
    with db.write() as conn:
        store.upsert_article(conn, article(1, origin=origin), T0)
        assert store.add_report(
            conn,
            article(1).id,
            link="https://other.example/x",
            source_title="Other",
            source_url="https://other.example/feed",
            now=T0,
        )
        assert not store.add_report(
            conn,
            article(1).id,
            link="https://other.example/x",
            source_title="Other",
            source_url="https://other.example/feed",
            now=T0,
        )
    with db.read() as conn:
        stored = store.get_article(conn, article(1).id)
    assert stored is not None
    assert stored.origin == origin
    assert [r.link for r in stored.related] == ["https://other.example/x"]


def test_sqlite_pragmas(tmp_path: object) -> None:
    db = Database(f"sqlite:///{tmp_path}/x/db.sqlite3")
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    db.close()


def test_database_url_password_is_masked() -> None:
    assert (
        mask_db_url("postgresql+psycopg://bot:s3cret@db.example/feeds")
        == "postgresql+psycopg://bot:***@db.example/feeds"
    )
