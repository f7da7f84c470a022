"""The in-memory mirror of story band keys (store/bandindex.py), against the SQL it replaces,
on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, event, inspect, select, text

from feedbot.poll.schedule import ScheduleBounds
from feedbot.processor import ProcessorRecipe
from feedbot.relevance.dedup import story_keys
from feedbot.relevance.similarity import band_keys
from feedbot.store import articles as store_articles
from feedbot.store import entries
from feedbot.store.bandindex import BandIndex
from feedbot.store.db import Database
from feedbot.store.schema import story_log
from feedbot.stories import NewItem, StoryWriter, pack_sketch
from tests.test_store import _old_story_keys, _store_at, article

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW = timedelta(hours=72)


def _stored(conn: Connection, i: int, simhash: int, published: datetime, bands: int = 0xFF) -> str:
    """Article *i* with the band keys of *simhash* that *bands* selects (bit i: "b{i}:")."""
    a = article(i, published=published)
    store_articles.upsert_article(conn, a, published)
    keys = [k for n, k in enumerate(band_keys(simhash)) if bands >> n & 1]
    entries.add_story_keys_many(conn, [(a.id, keys, simhash, published)])
    return a.id


def _query(simhash: int, published: datetime) -> entries.StoryQuery:
    return entries.StoryQuery((), band_keys(simhash), simhash, published)


def _near(rng: random.Random, h: int, bits: int) -> int:
    for b in rng.sample(range(64), bits):
        h ^= 1 << b
    return h


def test_the_mirror_finds_what_the_band_select_finds(db: Database) -> None:
    """Stories in clusters of close SimHashes (some with only some of their bands, as an
    article kept from before gets), over three weeks: for every query, the candidates the
    mirror gives are those SQL gives, hashes with the top bit set included."""
    rng = random.Random(7)
    centres = [rng.getrandbits(64) for _ in range(12)]
    with db.write() as conn:
        for i in range(240):
            h = _near(rng, rng.choice(centres), rng.randrange(0, 24))
            bands = 0xFF if i % 5 else rng.randrange(1, 255)
            _stored(conn, i, h, T0 + timedelta(hours=rng.randrange(0, 21 * 24)), bands)
    index = BandIndex()
    queries = [
        _query(_near(rng, rng.choice(centres), rng.randrange(0, 24)),
               T0 + timedelta(hours=rng.randrange(-48, 23 * 24)))
        for _ in range(150)
    ]  # fmt: skip
    with db.write() as conn:
        index.sync(conn, T0 + timedelta(days=30))
        by_sql = entries.story_candidates(conn, queries, window=WINDOW, near_bits=20)
        by_index = entries.story_candidates(conn, queries, window=WINDOW, near_bits=20, index=index)
    assert by_index == by_sql
    assert sum(map(len, by_sql)) > 200  # the queries did find stories
    assert any(h >= 1 << 63 for per in by_sql for h, _ in per.values())


def test_a_story_another_process_stored_is_found_after_the_next_sync(db: Database) -> None:
    """Two mirrors (two worker processes): each reads, at its next sync, only the log rows
    written since its last one, whoever wrote them."""
    h = 0x0123_4567_89AB_CDEF
    first, second = BandIndex(), BandIndex()
    with db.write() as conn:
        first.sync(conn, T0)
        second.sync(conn, T0)
        mine = _stored(conn, 1, h, T0)
    with db.write() as conn:
        theirs = _stored(conn, 2, h ^ 0b111, T0 + timedelta(hours=1))

    reads: list[str] = []
    engine = db.engine

    def count(_c: object, _cur: object, statement: str, *_: object) -> None:
        if "story_log" in statement:
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with db.write() as conn:
            first.sync(conn, T0 + timedelta(hours=2))
            found = {
                a for a, _, _ in first.near(band_keys(h), h, T0 - WINDOW, T0 + WINDOW, 20, 200)
            }
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert found == {mine, theirs}
    assert len(reads) == 1  # the rows since the last sync, no more
    assert "seq >" in reads[0]
    with db.write() as conn:
        second.sync(conn, T0 + timedelta(hours=2))
    assert second.near(band_keys(h), h, T0 - WINDOW, T0 + WINDOW, 20, 200) == first.near(
        band_keys(h), h, T0 - WINDOW, T0 + WINDOW, 20, 200
    )


class _Abort(BaseException):
    """Ends a transaction the way nothing in a poll catches."""


def _item(i: int, title: str, text: str) -> NewItem:
    keys = story_keys(title, text, f"https://site{i}.example/{i}")
    return NewItem(article(i, title=title, published=T0), keys, ("alibaba",), (), pack_sketch(keys))


WIRE = (
    "Alibaba cloud unit posts faster revenue growth as AI demand rises",
    "Alibaba Group said revenue at its cloud intelligence unit grew 26% in the quarter, "
    "helped by demand for artificial intelligence products from enterprise customers.",
)
REWRITE = (
    "Alibaba's cloud unit posts faster revenue growth on AI demand",
    "Alibaba Group said revenue at its cloud intelligence unit grew 26% in the quarter, "
    "helped by demand for artificial intelligence products from its enterprise customers.",
)
OTHER = (
    "Tencent music streaming subscribers climb",
    "Tencent Music said paying users rose to a record in the second quarter of the year.",
)


def _two_polls_then_abort(writer: StoryWriter, conn: Connection) -> None:
    """Two polls of one group commit store a story each, then the transaction fails."""
    assert not writer.add(conn, [_item(1, *WIRE)], T0, upstream_id=None)[0].duplicate
    # the second poll: its sync reads the first one's row, not committed yet
    assert not writer.add(conn, [_item(2, *OTHER)], T0, upstream_id=None)[0].duplicate
    assert writer.bands is not None
    assert writer.bands.entries >= 8
    raise _Abort


def test_a_transaction_that_fails_leaves_no_story_in_the_mirror(db: Database) -> None:
    """A group commit whose second poll read the first poll's story from the log, and then
    failed: once forgotten, the story is not a candidate (it was never stored), and the
    mirror reads the log again."""
    writer = StoryWriter()
    with pytest.raises(_Abort), db.write() as conn:
        _two_polls_then_abort(writer, conn)
    writer.forget_uncommitted()
    with db.write() as conn:
        outcome = writer.add(conn, [_item(3, *REWRITE)], T0, upstream_id=None)[0]
    assert not outcome.duplicate  # the wire story it rewrites was rolled back
    with db.read() as conn:
        logged = conn.execute(select(story_log.c.article_id)).scalars().all()
    assert logged == [article(3).id]


def test_a_worker_processor_forgets_its_mirror_when_its_group_commit_fails(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's ``Processor``: its transaction stores a story and then fails; the mirror,
    which had read the log in it, is empty again and the store holds no story."""
    recipe = ProcessorRecipe(
        db.engine.url.render_as_string(hide_password=False), (), (), "test.example",
        ScheduleBounds(), 20,
    )  # fmt: skip
    processor = recipe.build()
    writer = processor.ingest.stories
    assert writer.bands is not None

    def write(conn: Connection, one: object, alone: bool) -> None:
        _two_polls_then_abort(writer, conn)

    monkeypatch.setattr(processor, "_prepare", lambda job, failure: object())
    monkeypatch.setattr(processor, "_write", write)
    try:
        with pytest.raises(_Abort):
            processor.process_many([object()])  # type: ignore[list-item]
        assert writer.bands.entries == 0
        with db.read() as conn:
            assert conn.execute(select(story_log.c.seq)).all() == []
    finally:
        processor.db.close()


def test_the_mirror_reaches_back_for_older_windows_within_its_reach(db: Database) -> None:
    """It starts with the last ``start`` of stories; an older window lowers its floor and
    reads that stretch of the log; one older than ``reach`` is left to SQL."""
    h = 0x0F0F_0F0F_F0F0_F0F0
    with db.write() as conn:
        old = _stored(conn, 1, h, T0 - timedelta(days=20))
        recent = _stored(conn, 2, h, T0)
        ancient = _stored(conn, 3, h, T0 - timedelta(days=90))
    index = BandIndex(reach=timedelta(days=60), start=timedelta(days=5))

    def found(since: datetime) -> set[str]:
        return {a for a, _, _ in index.near(band_keys(h), h, since, since + 2 * WINDOW, 3, 99)}

    with db.write() as conn:
        index.sync(conn, T0)
        assert found(T0 - WINDOW) == {recent}
        late = _stored(conn, 4, h, T0 - timedelta(days=10))  # logged late, before the floor
    with db.write() as conn:
        index.sync(conn, T0)
        assert index.entries == 8  # not held until a window reaches back to it
        assert index.covers(conn, T0 - timedelta(days=21))
        assert index.entries == 24  # the old one and the late one, once each
        assert found(T0 - timedelta(days=21)) == {old}
        assert found(T0 - timedelta(days=11)) == {late}
        assert not index.covers(conn, T0 - timedelta(days=91))
        (by_sql,) = entries.story_candidates(
            conn, [_query(h, T0 - timedelta(days=90))], window=WINDOW, near_bits=3, index=index
        )
    assert set(by_sql) == {ancient}


def test_stories_behind_the_reach_are_dropped_as_newer_ones_come(db: Database) -> None:
    """Once the floor is a day further behind the newest story than ``reach``, the older
    stories go, and their windows are left to SQL."""
    h = 0x1111_2222_3333_4444
    index = BandIndex(reach=timedelta(days=10), start=timedelta(days=5))
    with db.write() as conn:
        first = _stored(conn, 1, h, T0)
        index.sync(conn, T0)
        _stored(conn, 2, h, T0 + timedelta(days=5))
    with db.write() as conn:
        index.sync(conn, T0 + timedelta(days=5))
        assert index.entries == 16  # the floor (T0 - 5 days) is within the reach
        later = _stored(conn, 3, h, T0 + timedelta(days=12))
    with db.write() as conn:
        index.sync(conn, T0 + timedelta(days=12))
        assert index.entries == 16  # the first one went: the floor is now T0 + 2 days
        near = {a for a, _, _ in index.near(band_keys(h), h, T0, T0 + timedelta(days=30), 3, 99)}
        assert first not in near
        assert later in near
        assert not index.covers(conn, T0 - WINDOW)
        (by_sql,) = entries.story_candidates(
            conn, [_query(h, T0)], window=WINDOW, near_bits=3, index=index
        )
    assert set(by_sql) == {first}


def test_a_story_dated_in_the_future_does_not_move_the_reach(db: Database) -> None:
    h = 0x5555_AAAA_5555_AAAA
    index = BandIndex(reach=timedelta(days=10), start=timedelta(days=5))
    with db.write() as conn:
        _stored(conn, 1, h, T0)
        index.sync(conn, T0)
        _stored(conn, 2, h, T0 + timedelta(days=3650))
    with db.write() as conn:
        index.sync(conn, T0)
        assert index.covers(conn, T0 - timedelta(days=9))
        fresh = BandIndex(reach=timedelta(days=10), start=timedelta(days=5))
        fresh.sync(conn, T0)  # a mirror that starts with the future story in the log
        assert fresh.covers(conn, T0 - timedelta(days=9))


def test_migration_0006_logs_the_band_keys_of_stored_stories(db_url: str) -> None:
    """Band keys stored before the log existed are logged, one row per article, date and
    hash, with the bands it has; a mirror then finds them. Other keys are not logged."""
    h = 0xFEDC_BA98_7654_3210
    bands = band_keys(h)

    keys = [(k, h - (1 << 64)) for k in (*bands[:3], bands[5], "u:one", "t:two")]
    _store_at(db_url, "0005", then=_old_story_keys(keys))
    database = Database(db_url)  # migrates to the head
    index = BandIndex()
    try:
        with database.write() as conn:
            rows = conn.execute(select(story_log.c.article_id, story_log.c.bands)).all()
            index.sync(conn, datetime(2026, 1, 2, tzinfo=UTC))
            near = index.near(bands, h, datetime(2025, 12, 31, tzinfo=UTC),
                              datetime(2026, 1, 2, tzinfo=UTC), 0, 99)  # fmt: skip
    finally:
        database.close()
    assert [tuple(r) for r in rows] == [("a", 0b100111)]
    assert [a for a, _, _ in near] == ["a"] * 4


def test_every_processor_mirrors_band_keys_and_story_keys_hold_only_exact_ones(
    db: Database,
) -> None:
    """The polling process's processor and a worker's both look band keys up in their own
    mirror: a rewrite of a story the other one stored is found as its duplicate, without
    a band lookup in the database. Band keys are in the log alone; ``story_keys`` holds
    the title and URL keys."""
    recipe = ProcessorRecipe(
        db.engine.url.render_as_string(hide_password=False), (), (), "test.example",
        ScheduleBounds(), 20,
    )  # fmt: skip
    local = recipe.build(db).ingest.stories
    worker = recipe.build()
    reads: list[str] = []

    def count(_c: object, _cur: object, statement: str, *_: object) -> None:
        if "story_log" in statement and "INSERT" not in statement:
            reads.append(statement)

    try:
        event.listen(db.engine, "before_cursor_execute", count)
        event.listen(worker.db.engine, "before_cursor_execute", count)
        with worker.db.write() as conn:
            (stored,) = worker.ingest.stories.add(conn, [_item(1, *WIRE)], T0, upstream_id=None)
        with db.write() as conn:
            (rewrite,) = local.add(conn, [_item(2, *REWRITE)], T0, upstream_id=None)
            (other,) = local.add(conn, [_item(3, *OTHER)], T0, upstream_id=None)
        with worker.db.write() as conn:
            (again,) = worker.ingest.stories.add(conn, [_item(4, *OTHER)], T0, upstream_id=None)
        with db.read() as conn:
            keys = conn.execute(select(text("key")).select_from(text("story_keys"))).scalars()
            prefixes = sorted({k.split(":", 1)[0] for k in keys})
            logged = conn.execute(select(story_log.c.article_id)).scalars().all()
    finally:
        worker.db.close()
    assert (rewrite.duplicate, rewrite.article_id) == (True, stored.article_id)
    assert not other.duplicate
    assert (again.duplicate, again.article_id) == (True, other.article_id)
    assert prefixes == ["t", "u"]
    assert logged == [stored.article_id, other.article_id]
    # the worker's story in both; the polling process reads its own at its next look
    assert (local.bands.entries, worker.ingest.stories.bands.entries) == (8, 16)
    assert reads  # the mirrors' syncs; no band lookup read the log by date
    assert not [r for r in reads if "BETWEEN" in r]


def test_migration_0007_keeps_band_keys_in_the_log_alone(db_url: str) -> None:
    """Band keys written to ``story_keys`` before are deleted (the log holds them, since
    0006), the exact keys stay, and a lookup without a mirror still finds the story
    through its logged bands. Downgrading writes the logged band keys back."""
    from alembic import command

    from feedbot.store import db as db_module

    h = 0x0BAD_CAFE_1234_5678
    bands = band_keys(h)
    before = sorted((*bands[:3], bands[5], "t:two", "u:one"))

    cfg = _store_at(db_url, "0005", then=_old_story_keys([(k, h) for k in before]))

    def keys() -> list[str]:
        with database.read() as conn:
            return sorted(conn.execute(text("SELECT key FROM story_keys")).scalars())

    database = Database(db_url)  # migrates to the head: 0006 logs, 0007 deletes
    try:
        assert keys() == ["t:two", "u:one"]
        query = entries.StoryQuery((), (bands[5],), h, datetime(2026, 1, 1, tzinfo=UTC))
        with database.read() as conn:
            (found,) = entries.story_candidates(conn, [query], window=WINDOW, near_bits=0)
            indexes = {i["name"] for i in inspect(conn).get_indexes("story_log")}
        assert list(found) == ["a"]
        assert "ix_story_log_article_id" in indexes
        engine = db_module.make_engine(db_url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006")
        engine.dispose()
        assert keys() == before
    finally:
        database.close()


def test_a_story_indexed_again_writes_only_the_keys_it_lacks(db: Database) -> None:
    """An article kept from before (its entry was pruned) is indexed again: keys it has are
    skipped, exact ones in ``story_keys`` and band ones in the log; a changed text logs only
    the band keys that are new to it."""
    h = 0x1357_9BDF_2468_ACE0
    moved = h ^ 0xFF  # another lowest byte: one band key differs
    with db.write() as conn:
        a = _stored(conn, 1, h, T0)
        entries.add_story_keys(conn, a, ["u:one", *band_keys(h)], h, T0)
        entries.add_story_keys(conn, a, ["u:one", "t:two", *band_keys(h)], h, T0)
        entries.add_story_keys(conn, a, ["t:two", *band_keys(moved)], moved, T0)
        rows = conn.execute(select(story_log.c.simhash, story_log.c.bands)).all()
        exact = sorted(conn.execute(text("SELECT key FROM story_keys")).scalars())
    assert [(s % (1 << 64), b) for s, b in rows] == [(h, 0xFF), (moved, 0b1)]
    assert exact == ["t:two", "u:one"]
