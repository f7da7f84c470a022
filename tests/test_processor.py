"""Group commit: several polls written in one transaction, a savepoint each, so one poll's
lost lease or crash drops that poll's writes only."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

import feedbot.processor as processor_module
from feedbot.app import App
from feedbot.config import config_from_mapping
from feedbot.errors import ProcessingError, StoreError
from feedbot.poll.fetch import FetchRequest
from feedbot.processor import Job, PollResult
from feedbot.store import upstreams as store_upstreams
from feedbot.store.schema import entries
from tests.feedgen_util import news, rss
from tests.loopback import LoopbackServer, Response


def _setup(
    tmp_path: Path, server: LoopbackServer, names: list[str], db_url: str
) -> tuple[App, list[Job]]:
    for name in names:
        body = rss(news(5, prefix=f"https://site.example/{name}"))
        server.route(
            f"/{name}.xml",
            lambda _, b=body: Response(200, b, {"Content-Type": "application/rss+xml"}),
        )
    raw: dict[str, Any] = {
        "database_url": db_url,
        "poll": {"processes": 0},
        "upstream": [{"name": n, "url": server.url(f"/{n}.xml")} for n in names],
    }
    app = App(config_from_mapping(raw, base_dir=tmp_path, env={}))
    app.sync_upstreams()
    now = app.clock()
    with app.db.write() as conn:
        ups = store_upstreams.claim_due(
            conn, now, owner="me", lease=timedelta(minutes=5), limit=10, include_not_due=True
        )
    jobs = []
    for up in sorted(ups, key=lambda u: u.name):
        res = app.fetcher.fetch(FetchRequest(up.url), now)
        jobs.append(Job(up, "me", res, now))
    return app, jobs


def _break_analysis(monkeypatch: pytest.MonkeyPatch, *, crash: str, slow: str = "") -> None:
    """Analysing upstream *crash*'s feed raises (a bug); *slow*'s takes 0.6 s."""
    real = processor_module.analyse

    def analyse(feed: Any, matcher: Any, topics: Any) -> Any:
        if slow and f"/{slow}.xml" in feed.url:
            time.sleep(0.6)
        if f"/{crash}.xml" in feed.url:
            raise KeyError("a bug")
        return real(feed, matcher, topics)

    monkeypatch.setattr(processor_module, "analyse", analyse)


def _entries_of(app: App) -> dict[int, int]:
    with app.db.read() as conn:
        rows = conn.execute(
            select(entries.c.upstream_id, func.count()).group_by(entries.c.upstream_id)
        ).all()
    return {r[0]: r[1] for r in rows}


def test_a_lost_lease_drops_only_its_own_poll(tmp_path: Path, db_url: str) -> None:
    with LoopbackServer() as server:
        app, jobs = _setup(tmp_path, server, ["a", "b", "c"], db_url)
        try:
            stolen = jobs[1]
            with app.db.write() as conn:  # another poller took "b" over
                store_upstreams.release(conn, stolen.up.id, "me")
            results = app.poller.pipeline.cpu.local.process_many(jobs)
            stored = _entries_of(app)
        finally:
            app.close()
    assert [r.outcome for r in results if isinstance(r, PollResult)] == ["ok", "lease_lost", "ok"]
    assert stored == {jobs[0].up.id: 5, jobs[2].up.id: 5}


def test_a_crash_in_one_poll_keeps_the_others(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_analysis(monkeypatch, crash="b")
    with LoopbackServer() as server:
        app, jobs = _setup(tmp_path, server, ["a", "b", "c"], db_url)
        try:
            results = app.poller.pipeline.cpu.local.process_many(jobs)
            stored = _entries_of(app)
        finally:
            app.close()
    crash = results[1]
    assert isinstance(crash, ProcessingError)
    assert crash.resource == "b"
    assert "KeyError" in crash.message
    assert [r.outcome for r in (results[0], results[2]) if isinstance(r, PollResult)] == [
        "ok",
        "ok",
    ]
    assert stored == {jobs[0].up.id: 5, jobs[2].up.id: 5}


def test_a_crash_in_a_cycle_is_logged_once_and_recorded(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _break_analysis(monkeypatch, crash="b")
    with LoopbackServer() as server:
        app, jobs = _setup(tmp_path, server, ["a", "b"], db_url)
        try:
            with app.db.write() as conn:  # _setup claimed them; the cycle claims its own
                for job in jobs:
                    store_upstreams.release(conn, job.up.id, "me")
            caplog.clear()
            with caplog.at_level("ERROR"):
                cycle = app.poller.run_cycle(include_not_due=True)
            with app.db.read() as conn:
                b = store_upstreams.get(conn, "b")
        finally:
            app.close()
    assert sorted((r.upstream, r.outcome) for r in cycle.results) == [("a", "ok"), ("b", "crashed")]
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, [r.getMessage() for r in caplog.records]
    assert "processing b crashed" in tracebacks[0].getMessage()
    assert b is not None
    assert "KeyError" in (b.last_error or "")


def _in_threads(app: App, jobs: list[Job], slow: str) -> list[PollResult | BaseException]:
    """Each job on its own thread through the stage; the first (*slow*) starts alone, the
    others arrive while it is being processed."""
    cpu = app.poller.pipeline.cpu
    out: list[PollResult | BaseException] = [RuntimeError("not run")] * len(jobs)

    def run(i: int) -> None:
        job = jobs[i]
        try:
            out[i] = cpu.process(job.up, job.owner, job.res, job.now)
        except BaseException as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    threads[0].start()
    assert slow in jobs[0].up.name
    time.sleep(0.2)  # the first is being processed (slowly) when the others arrive
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return out


def test_polls_ready_together_in_this_process_share_a_transaction(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_analysis(monkeypatch, crash="c", slow="a")
    with LoopbackServer() as server:
        app, jobs = _setup(tmp_path, server, ["a", "b", "c", "d", "e"], db_url)
        commits: list[int] = []
        event.listen(app.db.engine, "commit", lambda conn: commits.append(1))
        try:
            out = _in_threads(app, jobs, slow="a")
            transactions = len(commits)
            stored = _entries_of(app)
        finally:
            app.close()
    outcomes = [r.outcome if isinstance(r, PollResult) else type(r).__name__ for r in out]
    assert outcomes == ["ok", "ok", "ProcessingError", "ok", "ok"]
    assert transactions == 2  # "a" alone, then the four that waited meanwhile
    assert stored == {j.up.id: 5 for j in jobs if j.up.name != "c"}


def test_a_store_failure_reaches_every_poll_of_the_group_and_none_hangs(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LoopbackServer() as server:
        app, jobs = _setup(tmp_path, server, ["a", "b", "c"], db_url)
        local = app.poller.pipeline.cpu.local
        real = local.process_many

        def process_many(batch: Any, **kw: Any) -> Any:
            time.sleep(0.4)
            raise StoreError("the disk is full", resource="store")

        try:
            monkeypatch.setattr(local, "process_many", process_many)
            out = _in_threads(app, jobs, slow="a")
            monkeypatch.setattr(local, "process_many", real)
            again = _in_threads(app, jobs, slow="a")
        finally:
            app.close()
    assert [type(r).__name__ for r in out] == ["StoreError"] * 3
    assert all(isinstance(r, PollResult) and r.outcome == "ok" for r in again)


def test_a_bug_in_the_group_fails_its_polls_and_the_next_ones_still_run(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results that do not match their batch (a bug) fail the batch's polls, none hangs,
    and the stage's thread goes on with the next ones."""
    with LoopbackServer() as server:
        app, jobs = _setup(tmp_path, server, ["a", "b", "c"], db_url)
        local = app.poller.pipeline.cpu.local
        real = local.process_many
        try:
            monkeypatch.setattr(local, "process_many", lambda batch, **kw: [])
            out = _in_threads(app, jobs, slow="a")
            monkeypatch.setattr(local, "process_many", real)
            again = _in_threads(app, jobs, slow="a")
        finally:
            app.close()
    assert [type(r).__name__ for r in out] == ["ValueError"] * 3  # zip(strict=True)
    assert all(isinstance(r, PollResult) and r.outcome == "ok" for r in again)


def test_each_new_story_is_stored_with_the_sketch_of_its_own_keys(
    tmp_path: Path, db_url: str
) -> None:
    """Sketches are packed during analysis, before the write lock; each stored one is still
    its own story's keys (and the keys a fresh writer reads back)."""
    from feedbot.relevance.dedup import story_keys
    from feedbot.store.schema import articles, story_sketches
    from feedbot.stories import unpack_sketch

    with LoopbackServer() as server:
        app, jobs = _setup(tmp_path, server, ["a", "b"], db_url)
        try:
            results = app.poller.pipeline.cpu.local.process_many(jobs)
            with app.db.read() as conn:
                rows = conn.execute(
                    select(articles.c.title, articles.c.summary, articles.c.link,
                           story_sketches.c.sketch)
                    .join(story_sketches, story_sketches.c.article_id == articles.c.id)
                ).all()  # fmt: skip
        finally:
            app.close()
    assert sum(r.new for r in results if isinstance(r, PollResult)) == len(rows) == 5  # b: reports
    for r in rows:
        assert unpack_sketch(bytes(r.sketch)) == story_keys(r.title, r.summary, r.link)


def test_worker_processes_write_with_a_larger_sqlite_page_cache(tmp_path: Path) -> None:
    """A worker's Processor (built from its recipe) reads and writes through an 8 MiB page
    cache; the polling process keeps SQLite's default, as it may hold many connections."""
    app = App(config_from_mapping({}, base_dir=tmp_path, env={}))
    worker = app.poller.pipeline.cpu.recipe.build()
    try:
        with worker.db.write() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -8192
        with app.db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -2000
    finally:
        worker.db.close()
        app.close()


def test_a_worker_remembers_more_story_sketches_than_the_polling_process(
    tmp_path: Path,
) -> None:
    """A worker's processor keeps the sketches of the last 4,096 stories it wrote or read,
    the polling process's the last 256: a story stored 300 stories ago is compared from a
    worker's memory, with no read of its stored sketch inside the write lock, and from
    the store in the polling process."""
    import random
    from datetime import UTC, datetime

    from feedbot.models import ArticleData
    from feedbot.relevance.dedup import story_keys
    from feedbot.store.schema import story_sketches
    from feedbot.stories import NewItem, pack_sketch

    rng = random.Random(7)
    words = [f"w{n}" for n in range(2000)]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def story(n: int) -> NewItem:
        title = f"Story {n}: " + " ".join(rng.sample(words, 8))
        summary = " ".join(rng.sample(words, 30))
        link = f"https://example.org/{n}"
        keys = story_keys(title, summary, link)
        art = ArticleData(
            id=f"tag:test.example,2026:s/{n}", title=title, summary=summary, content="",
            link=link, authors=(), language="en", categories=(), published=t0, updated=t0,
        )  # fmt: skip
        return NewItem(art, keys, ("alibaba",), (), pack_sketch(keys))

    app = App(config_from_mapping({}, base_dir=tmp_path, env={}))
    worker = app.poller.pipeline.cpu.recipe.build()
    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and story_sketches.name in statement:
            reads.append(statement)

    try:
        for name, proc, offset in (
            ("worker", worker, 0),
            ("poller", app.poller.pipeline.cpu.local, 1000),
        ):
            items = [story(offset + n) for n in range(300)]
            writer = proc.ingest.stories
            with proc.db.write() as conn:
                outcomes = writer.add(conn, items, t0, upstream_id=None)
            assert not any(o.duplicate for o in outcomes), name
            reads.clear()
            event.listen(proc.db.engine, "before_cursor_execute", count)
            try:
                with proc.db.read() as conn:
                    (found,) = writer.candidates_many(conn, [(items[0].keys, t0)])
            finally:
                event.remove(proc.db.engine, "before_cursor_execute", count)
            assert [(c.article_id, c.keys) for c in found] == [
                (items[0].article.id, items[0].keys)
            ], name
            assert len(reads) == (0 if name == "worker" else 1), name
    finally:
        worker.db.close()
        app.close()


def test_a_worker_process_starts_without_the_migration_tool_or_http(tmp_path: Path) -> None:
    """A worker process imports what processing needs and builds its processor over a
    migrated store without importing alembic (with mako and pygments) or requests: about
    100 ms of every worker's start. The polling process migrates the store and fetches."""
    import subprocess
    import sys

    app = App(config_from_mapping({}, base_dir=tmp_path, env={}))  # migrates the store
    recipe = app.poller.pipeline.cpu.recipe
    app.close()
    code = (
        "import pickle, sys\n"
        "import feedbot.poll.cpu, feedbot.processor\n"
        "recipe = pickle.loads(sys.stdin.buffer.read())\n"
        "worker = recipe.build()\n"
        "with worker.db.write() as conn:\n"
        "    pass\n"
        "worker.db.close()\n"
        "print(sorted(m for m in ('alembic', 'mako', 'pygments', 'requests', 'urllib3')"
        " if m in sys.modules))\n"
    )
    import pickle

    done = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(recipe), capture_output=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.decode().strip() == "[]", done.stderr.decode()
