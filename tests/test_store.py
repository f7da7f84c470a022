"""Store contract: the same tests against a SQLite file and PostgreSQL."""

from __future__ import annotations

import fcntl
import os
import random
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import BigInteger, Connection, bindparam, inspect, literal, select, text

from feedbot.models import ArticleData, Origin
from feedbot.relevance.dedup import StoryKeys
from feedbot.store import articles as store
from feedbot.store import db as db_module
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


def test_change_marker_moves_with_every_write_the_published_feeds_show(db: Database) -> None:
    """The publisher's change check: an added article (even one dated before the newest),
    an edit of an old article, a change of topics only, another report of a story; and
    not an upsert that changes nothing."""
    with db.read() as conn:
        assert store.change_marker(conn) == (None, None)
    marks = []

    def write(now: datetime, step: Callable[[Connection, datetime], object]) -> None:
        with db.write() as conn:
            step(conn, now)
        with db.read() as conn:
            marks.append(store.change_marker(conn))

    t = T0 + timedelta(days=30)
    write(t, lambda c, now: store.upsert_article(c, article(50), now, topics=["a"]))
    # an older article, added later: neither the newest "updated" nor (before) anything else
    write(t + timedelta(minutes=1), lambda c, now: store.upsert_article(c, article(1), now))
    write(t + timedelta(minutes=2), lambda c, now: store.upsert_article(c, article(1), now))
    write(
        t + timedelta(minutes=3),
        lambda c, now: store.upsert_article(c, article(1, title="Edited"), now),
    )
    write(
        t + timedelta(minutes=4),
        lambda c, now: store.upsert_article(c, article(50), now, topics=["a", "b"]),
    )
    write(
        t + timedelta(minutes=5),
        lambda c, now: store.add_report(
            c, article(1).id, link="https://other.example/1", source_title=None,
            source_url=None, now=now,
        ),
    )  # fmt: skip
    assert marks == [
        (t, None),
        (t + timedelta(minutes=1), None),
        (t + timedelta(minutes=1), None),  # unchanged: no write, no new marker
        (t + timedelta(minutes=3), None),
        (t + timedelta(minutes=4), None),
        (t + timedelta(minutes=4), t + timedelta(minutes=5)),
    ]


def test_change_marker_reads_one_index_entry_per_table(tmp_path: Path) -> None:
    """Never a scan: the check runs every few seconds against stores of any size."""
    database = Database(f"sqlite:///{tmp_path / 'plan.sqlite3'}")
    try:
        sql = str(store.CHANGE_MARKER.compile(database.engine))
        with database.read() as conn:
            plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
    finally:
        database.close()
    assert "SEARCH articles USING COVERING INDEX ix_articles_changed_at" in plan
    assert "SEARCH article_reports USING COVERING INDEX ix_article_reports_seen_at" in plan
    assert not [step for step in plan if step.startswith("SCAN") and step != "SCAN CONSTANT ROW"]


def _store_at(
    db_url: str,
    revision: str,
    *,
    created_month: int = 1,
    then: Callable[[Connection, str], None] | None = None,
) -> Any:
    """A store migrated to *revision* holding one article ``a``, published on 1 January
    and created on the first of *created_month*; *then* runs in the same transaction with
    1 January as the store writes it. Returns the Alembic config, to migrate further."""
    from alembic import command

    engine = db_module.make_engine(db_url)
    cfg = db_module._alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        zone = "+00:00" if conn.dialect.name == "postgresql" else ""  # SQLite: naive UTC text
        day = {d: f"2026-0{d}-01 00:00:00.000000{zone}" for d in (1, created_month)}
        conn.execute(
            text(
                "INSERT INTO articles (id, title, summary, content, authors, categories,"
                " published, updated, content_hash, topics, matched_terms, created_at) VALUES"
                " ('a', 't', '', '', '[]', '[]', :jan, :jan, 'h', '[]', '[]', :created)"
            ),
            {"jan": day[1], "created": day[created_month]},
        )
        if then is not None:
            then(conn, day[1])
    engine.dispose()
    return cfg


def _old_story_keys(keys: list[tuple[str, int]]) -> Callable[[Connection, str], None]:
    """A ``_store_at`` step writing story keys of article ``a`` as a store before the
    story log did: ``(key, signed simhash)`` each, band keys among them."""

    def add(conn: Connection, day: str) -> None:
        conn.execute(
            text(
                "INSERT INTO story_keys (key, article_id, published, simhash)"
                " VALUES (:key, 'a', :day, :simhash)"
            ),
            [{"key": key, "day": day, "simhash": simhash} for key, simhash in keys],
        )

    return add


def test_migration_0003_marks_existing_articles_as_changed_when_created(db_url: str) -> None:
    """A store made before change markers gets one for every article it holds."""
    _store_at(db_url, "0002", created_month=2)
    database = Database(db_url)  # migrates to the head
    try:
        with database.read() as conn:
            assert store.change_marker(conn) == (datetime(2026, 2, 1, tzinfo=UTC), None)
    finally:
        database.close()


def test_migration_0005_keeps_story_keys_in_one_btree_on_sqlite(db_url: str) -> None:
    """Story keys written before the rebuild survive it, and the lookups still find them;
    on SQLite the table loses its rowid and its separate covering index, on PostgreSQL
    both stay. Downgrading puts the SQLite table back as it was."""
    from alembic import command

    from feedbot.store import entries

    # b0:07: a band key of 7
    cfg = _store_at(db_url, "0004", then=_old_story_keys([("u:one", -5), ("b0:07", 7)]))

    def shape() -> tuple[bool, list[str]]:
        database = Database(db_url, apply_migrations=False)
        try:
            with database.read() as conn:
                indexes = sorted(i["name"] or "" for i in inspect(conn).get_indexes("story_keys"))
                if conn.dialect.name != "sqlite":
                    return False, indexes
                ddl = conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = 'story_keys'"
                ).scalar_one()
                return "WITHOUT ROWID" in ddl, indexes
        finally:
            database.close()

    database = Database(db_url)  # migrates to the head
    query = entries.StoryQuery(("u:one",), ("b0:07",), 7, T0)
    try:
        with database.read() as conn:
            found = entries.story_candidates(conn, [query], window=timedelta(hours=1), near_bits=3)
            sqlite = conn.dialect.name == "sqlite"
    finally:
        database.close()
    assert found == [{"a": ((-5) % (1 << 64), T0)}]
    covering = ["ix_story_keys_key_published_simhash_article_id"]
    assert shape() == ((True, []) if sqlite else (False, covering))
    if sqlite:
        engine = db_module.make_engine(db_url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
            keys = conn.exec_driver_sql("SELECT key FROM story_keys ORDER BY key").scalars()
            assert list(keys) == ["b0:07", "u:one"]  # 0007 put the logged band key back
        engine.dispose()
        assert shape() == (False, covering)


def test_sqlite_pragmas(tmp_path: object) -> None:
    db = Database(f"sqlite:///{tmp_path}/x/db.sqlite3")
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    db.close()


def test_sqlite_wal_is_checkpointed_after_writes_and_stays_bounded(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No commit checkpoints (the writer would hold the write lock meanwhile): writes
    leave the WAL to a checkpoint after the lock, which keeps it near its bound."""
    monkeypatch.setattr(db_module, "CHECKPOINT_BYTES", 256 * 1024)
    monkeypatch.setattr(db_module, "WAL_KEEP_BYTES", 128 * 1024)
    path = f"{tmp_path}/db.sqlite3"
    db = Database(f"sqlite:///{path}", apply_migrations=False)
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE blobs (x BLOB)")
    blob = b"\x01" * 2000
    sizes = []
    for _ in range(60):  # ~120 KiB each, about 7 MiB in all
        with db.write() as conn:
            conn.exec_driver_sql("INSERT INTO blobs VALUES (?)", [(blob,)] * 60)
        db._checkpoints.wait()  # type: ignore[union-attr]
        sizes.append(os.path.getsize(f"{path}-wal"))
    assert max(sizes) < 1024 * 1024, sizes
    assert sizes.count(max(sizes)) < 10, "the WAL never started over"
    assert min(sizes[10:]) < 256 * 1024, "the WAL was not cut back"
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM blobs").scalar() == 3600
    db.close()
    raw = sqlite3.connect(path)  # everything reached the database file
    busy, frames, done = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert (busy, frames) == (0, done)
    raw.close()


def test_sqlite_checkpoint_runs_after_the_write_lock_is_released(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "CHECKPOINT_BYTES", 1)
    path = f"{tmp_path}/db.sqlite3"
    db = Database(f"sqlite:///{path}", apply_migrations=False)
    held: list[bool] = []
    checkpointer = db._checkpoints
    assert checkpointer is not None
    real = checkpointer._checkpoint

    def spy() -> None:
        fd = os.open(f"{path}.writer", os.O_RDWR)
        try:  # another process's writer could take its turn now
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(False)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            held.append(True)
        finally:
            os.close(fd)
        real()

    monkeypatch.setattr(checkpointer, "_checkpoint", spy)
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    checkpointer.wait()
    assert held == [False]
    db.close()


def test_database_url_password_is_masked() -> None:
    assert (
        mask_db_url("postgresql+psycopg://bot:s3cret@db.example/feeds")
        == "postgresql+psycopg://bot:***@db.example/feeds"
    )


def test_a_story_stored_by_one_writer_is_found_by_another_from_its_sketch(db: Database) -> None:
    """Another process (its own sketch cache, empty) finds the stored story with the keys it
    was stored with, read from its sketch, then again from its cache; a rewrite of the
    story is its duplicate, a different story is new."""
    from feedbot.relevance.dedup import story_keys
    from feedbot.stories import NewItem, StoryWriter, pack_sketch

    def item(story: ArticleData, keys: StoryKeys, topics: tuple[str, ...] = ()) -> NewItem:
        return NewItem(story, keys, topics, (), pack_sketch(keys))

    wire = (
        "Alibaba shares jump after cloud unit beats forecasts",
        "Alibaba Group shares rose 6% in Hong Kong on Friday after its cloud computing "
        "division reported faster-than-expected revenue growth.",
    )
    rewrite = (
        "Alibaba shares jump as cloud unit beats forecasts - Example Wire",
        "Shares of Alibaba Group rose 6% in Hong Kong on Friday after its cloud computing "
        "division reported faster than expected revenue growth.",
    )
    other = ("Tencent wins approval for new games", "Regulators approved a batch of titles.")
    keys = story_keys(*wire, "https://a.example/wire")
    stored = article(1, title=wire[0], published=T0)
    with db.write() as conn:
        StoryWriter().add(conn, [item(stored, keys, ("alibaba",))], T0, upstream_id=None)
    reader = StoryWriter()
    for _ in range(2):  # from the stored sketch, then from the cache
        with db.read() as conn:
            (found,) = reader.candidates_many(conn, [(keys, T0)])
        assert [(c.article_id, c.keys) for c in found] == [(stored.id, keys)]
    items = [
        item(article(2, title=rewrite[0]), story_keys(*rewrite, "https://b.example/r")),
        item(article(3, title=other[0]), story_keys(*other, "https://b.example/o")),
    ]
    with db.write() as conn:
        outcomes = StoryWriter().add(conn, items, T0, upstream_id=None)
    assert [(o.article_id, o.duplicate) for o in outcomes] == [
        (stored.id, True),
        (article(3).id, False),
    ]


def test_band_candidates_that_no_rule_could_pick_are_not_offered(db: Database) -> None:
    """A stored story found through its SimHash bands is offered as a candidate only when
    ``decide`` could pick it: with other text (disjoint shingles) under the same bands it is
    left out, with the same text it is offered."""
    from dataclasses import replace as replaced

    from feedbot.relevance.dedup import story_keys
    from feedbot.stories import NewItem, StoryWriter, pack_sketch

    text = (
        "Alibaba shares jump after cloud unit beats forecasts",
        "Alibaba Group shares rose 6% in Hong Kong on Friday after its cloud computing "
        "division reported faster-than-expected revenue growth.",
    )
    keys = story_keys(*text, "https://a.example/wire")
    stored = article(1, title=text[0], published=T0)
    writer = StoryWriter()
    with db.write() as conn:
        writer.add(conn, [NewItem(stored, keys, ("alibaba",), (), pack_sketch(keys))], T0,
                   upstream_id=None)  # fmt: skip
    elsewhere = replaced(keys, url_key="//b.example/other", title_key="another story")
    other_text = replaced(elsewhere, shingles=frozenset(range(1, len(keys.shingles) + 1)))
    with db.read() as conn:
        same, other = writer.candidates_many(conn, [(elsewhere, T0), (other_text, T0)])
    assert [c.article_id for c in same] == [stored.id]
    assert other == []


def test_band_keys_are_looked_up_only_when_no_exact_match_settles_the_item(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored story with the item's canonical URL (at any date), or with its title
    (within the window, long enough to count), decides the item whatever its bands would
    add: those items run no band query. Every item is decided as it is with all bands
    looked up."""
    from sqlalchemy import event

    from feedbot import stories
    from feedbot.relevance.dedup import Candidate, decide, story_keys
    from feedbot.stories import NewItem, StoryWriter, pack_sketch

    wire = (
        "Alibaba Group shares rose 6% in Hong Kong on Friday after its cloud computing "
        "division reported faster-than-expected revenue growth, analysts said."
    )
    other = "Regulators approved a new batch of online games from several publishers."
    older = T0 - timedelta(days=10)
    stored = {  # number: (title, summary, link, published)
        1: ("Alibaba cloud unit beats forecasts again", other, "https://a.example/1", T0),
        2: ("Tencent wins approval for a batch of new games", other, "https://a.example/2", T0),
        3: ("Alibaba shares jump on cloud growth", wire, "https://a.example/3", T0),
        4: (
            "Daily briefing",
            "Markets were quiet on Monday as traders waited for the bank.",
            "https://a.example/4",
            T0,
        ),
        5: ("Baidu opens its robotaxi service in Wuhan", other, "https://a.example/5", older),
    }
    with db.write() as conn:
        for n, (title, summary, link, published) in stored.items():
            keys = story_keys(title, summary, link)
            story = article(n, title=title, summary=summary, link=link, published=published)
            StoryWriter().add(
                conn, [NewItem(story, keys, ("alibaba",), (), pack_sketch(keys))],
                published, upstream_id=None,
            )  # fmt: skip
    later = T0 + timedelta(hours=1)
    items = [  # (title, summary, link)
        ("Cloud results lift Alibaba", wire, "https://a.example/1?utm_source=x"),  # URL of 1
        ("Tencent wins approval for a batch of new games", wire, "https://b.example/2"),
        ("Alibaba stock rises after cloud results", wire, "https://b.example/3"),  # text of 3
        (
            "Daily briefing",
            "Stocks rallied on Tuesday after a cut in interest rates.",
            "https://b.example/4",
        ),  # a title too short to count
        ("Baidu opens its robotaxi service in Wuhan", wire, "https://b.example/5"),  # too old
    ]
    wanted = [(story_keys(*item), later) for item in items]
    assert all(keys.bands for keys, _ in wanted)
    band_queries: list[str] = []

    def record(_conn: object, _cur: object, sql: str, *_: object) -> None:
        if "story_log" in sql and "BETWEEN" in sql:
            band_queries.append(sql)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.read() as conn:
            found = StoryWriter().candidates_many(conn, wanted)
        skipped = len(items) - len(band_queries)
        band_queries.clear()
        settle_nothing = stories._query
        monkeypatch.setattr(
            stories, "_query", lambda keys, at: replace(
                settle_nothing(keys, at), settles=(), settles_in_window=()
            ),
        )  # fmt: skip
        with db.read() as conn:
            every = StoryWriter().candidates_many(conn, wanted)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(band_queries) == len(items)
    assert skipped == 2  # the items with the URL of 1 and the title of 2

    def decided(candidates: list[list[Candidate]]) -> list[tuple[str | None, str]]:
        out = []
        for (keys, at), cands in zip(wanted, candidates, strict=True):
            decision = decide(keys, at, cands)
            out.append((decision.duplicate_of, decision.reason.split(" (")[0]))
        return out

    assert (
        decided(found)
        == decided(every)
        == [
            (article(1).id, "same canonical URL"),
            (article(2).id, "same title within 72h"),
            (article(3).id, "near-identical text"),
            (None, "new story"),
            (article(3).id, "near-identical text"),  # 5's title is too old to settle it
        ]
    )


def test_a_settling_match_skips_bands_only_when_the_exact_lookup_was_complete(
    db: Database,
) -> None:
    """When the exact-key lookup hit its row limit, a settling match may be among the rows
    left out: the band keys are looked up then."""
    from feedbot.store import entries

    with db.write() as conn:
        for i in range(3):
            store.upsert_article(conn, article(i), T0)
        ids = [article(i).id for i in range(3)]
        entries.add_story_keys_many(conn, [
            (ids[0], ["u:same"], 1, T0),
            (ids[1], ["u:same"], 1, T0),
            (ids[2], ["b0:01"], 1, T0),  # found only through the band (a band key of 1)
        ])  # fmt: skip
    query = entries.StoryQuery(("u:same",), ("b0:01",), 1, T0, settles=("u:same",))
    with db.read() as conn:
        (complete,) = entries.story_candidates(conn, [query], window=timedelta(hours=1),
                                               near_bits=3, limit=10)  # fmt: skip
        (cut,) = entries.story_candidates(conn, [query], window=timedelta(hours=1),
                                          near_bits=3, limit=1)  # fmt: skip
    assert set(complete) == {ids[0], ids[1]}  # settled: no band lookup
    assert ids[2] in cut  # the exact lookup was cut at 1 row: bands looked up


def test_story_candidate_queries_read_one_index_each(tmp_path: Path) -> None:
    """The exact-key lookup is answered from one B-tree holding every column it reads (on
    SQLite the table's primary key: a table without rowid), never a scan nor a visit to
    another for each key found. A band lookup that no mirror covers reads the story log
    by date, through its index."""
    from sqlalchemy import event

    from feedbot.store import entries

    database = Database(f"sqlite:///{tmp_path / 'plan.sqlite3'}")
    seen: list[tuple[str, object]] = []

    def record(_conn: object, _cur: object, sql: str, params: object, *_: object) -> None:
        if "story_keys" in sql or "story_log" in sql:
            seen.append((sql, params))

    event.listen(database.engine, "before_cursor_execute", record)
    query = entries.StoryQuery(("u:one", "t:two"), ("b0:aa", "b1:bb"), 12345, T0)
    try:
        with database.read() as conn:
            entries.story_candidates(conn, [query], window=timedelta(hours=72), near_bits=20)
            event.remove(database.engine, "before_cursor_execute", record)
            plans = [
                [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
                for sql, params in seen
            ]
    finally:
        database.close()
    assert len(plans) == 2  # the exact keys, then the item's bands
    assert plans[0] == ["SEARCH story_keys USING PRIMARY KEY (key=?)"], plans[0]
    assert plans[1] == [
        "SEARCH story_log USING INDEX ix_story_log_published (published>? AND published<?)"
    ], plans[1]


def test_story_candidates_filter_bands_by_date_and_hamming_in_the_database(db: Database) -> None:
    """Without a mirror, the story log is read: exact keys match at any date; a shared band
    key only within the window and when the stored hash is close (in the database), and
    only a band the story logged. Hashes with the top bit set (negative when stored) included."""
    from feedbot.relevance.similarity import band_keys
    from feedbot.store import entries
    from feedbot.store.dialect import hamming

    h = 0xF0F0_1234_5678_9ABC
    flip3 = h ^ 0b1011  # 3 bits away
    far = h ^ ((1 << 40) - 1)  # 40 bits away
    top = band_keys(h)[7]  # "b7:f0", the top byte: the band all three share
    with db.write() as conn:
        for i in range(6):
            store.upsert_article(conn, article(i), T0)
        ids = [article(i).id for i in range(6)]
        entries.add_story_keys_many(conn, [
            (ids[0], [top], h, T0),  # same hash, shared band
            (ids[1], [top], flip3, T0 + timedelta(hours=5)),  # near, in the window
            (ids[2], [top], far, T0),  # shared band but far: filtered in SQL
            (ids[3], [top], flip3, T0 + timedelta(days=30)),  # near but out of window
            (ids[4], ["u:same-url"], far, T0 - timedelta(days=400)),  # exact, any date
            (ids[5], [band_keys(flip3)[0]], flip3, T0),  # near, but shares no band logged
        ])  # fmt: skip
    query = entries.StoryQuery(("u:same-url",), (top,), h, T0)
    with db.read() as conn:
        (found,) = entries.story_candidates(conn, [query], window=timedelta(hours=72), near_bits=20)
        sql_distance = conn.execute(
            select(hamming(conn.dialect.name, literal(-5, BigInteger), literal(3, BigInteger)))
        ).scalar_one()
    assert set(found) == {ids[0], ids[1], ids[4]}
    assert found[ids[1]][0] == flip3  # unsigned again
    assert sql_distance == 61


def test_hamming_in_sql_counts_every_bit_of_signed_64_bit_hashes(db: Database) -> None:
    """The database's Hamming distance equals Python's for stored (signed) hashes: both,
    either or neither negative, the extremes, and random pairs."""
    from feedbot.store.dialect import hamming, signed64

    rng = random.Random(7)
    edges = [0, 1, -1, 2**63 - 1, -(2**63), 12345, -12345]
    pairs = [(a, b) for a in edges for b in edges]
    pairs += [(signed64(rng.getrandbits(64)), signed64(rng.getrandbits(64))) for _ in range(200)]
    a, b = bindparam("a", type_=BigInteger), bindparam("b", type_=BigInteger)
    query = select(hamming(db.engine.dialect.name, a, b))
    with db.read() as conn:
        got = [conn.execute(query, {"a": x, "b": y}).scalar_one() for x, y in pairs]
    assert got == [((x ^ y) & (2**64 - 1)).bit_count() for x, y in pairs]


def test_sqlite_timestamps_are_stored_as_sqlalchemy_stores_them(tmp_path: Path) -> None:
    """On SQLite, ``UTCDateTime`` writes the text SQLAlchemy's own DATETIME writes, so
    stores written before compare and sort the same; values come back aware UTC, also
    those written without microseconds or by other tools."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert
    from sqlalchemy.dialects import sqlite

    from feedbot.store.schema import UTCDateTime

    engine = create_engine(f"sqlite:///{tmp_path / 'times.sqlite3'}")
    table = Table(
        "t", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime)
    )
    table.metadata.create_all(engine)
    values = [
        datetime(2026, 1, 31, 12, 0, tzinfo=UTC),
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2026, 3, 1, 1, 2, 3, 999_999, tzinfo=UTC),
        datetime(2026, 7, 1, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai")),
    ]
    sqlalchemys = sqlite.DATETIME().bind_processor(engine.dialect)
    try:
        with engine.begin() as conn:
            conn.execute(insert(table), [{"id": n, "at": v} for n, v in enumerate(values)])
            conn.exec_driver_sql("INSERT INTO t (id, at) VALUES (9, '2026-05-01 10:00:00')")
            stored = [r[0] for r in conn.exec_driver_sql("SELECT at FROM t ORDER BY id")]
            back = conn.execute(select(table.c.at).order_by(table.c.id)).scalars().all()
            later = (
                conn.execute(
                    select(table.c.id).where(table.c.at > datetime(2026, 3, 1, 1, 2, 3, tzinfo=UTC))
                )
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    assert stored[:4] == [sqlalchemys(v.astimezone(UTC).replace(tzinfo=None)) for v in values]
    assert stored[3] == "2026-07-01 00:00:00.000000"
    assert back == [*values, datetime(2026, 5, 1, 10, 0, tzinfo=UTC)]
    assert all(v.tzinfo is UTC for v in back)
    assert sorted(later) == [2, 3, 9]
