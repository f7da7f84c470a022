"""Worker processes: a response processed in a worker stores what the polling process would,
logs like it, and a worker that dies costs one poll, not the poller."""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from feedbot.app import App
from feedbot.config import config_from_mapping
from feedbot.logs import setup_logging
from feedbot.poll.cpu import GC_THRESHOLD
from feedbot.store.schema import articles, entries
from tests.feedgen_util import Item, news, rss
from tests.loopback import LoopbackServer, Response


def _app(tmp_path: Path, url: str, processes: int, name: str = "a") -> App:
    raw: dict[str, Any] = {
        "poll": {"processes": processes, "deadline": "5s"},
        "upstream": [{"name": name, "url": url}],
    }
    app = App(config_from_mapping(raw, base_dir=tmp_path, env={}))
    app.poller.pipeline.cpu.offload_bytes = 1024
    app.sync_upstreams()
    return app


def _stored(app: App) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with app.db.read() as conn:
        arts = conn.execute(
            select(articles.c.id, articles.c.title, articles.c.content).order_by(articles.c.id)
        ).all()
        ents = conn.execute(
            select(entries.c.key, entries.c.content_hash, entries.c.article_id).order_by(
                entries.c.key
            )
        ).all()
    return [tuple(r) for r in arts], [tuple(r) for r in ents]


def test_worker_and_in_process_store_the_same(tmp_path: Path) -> None:
    items = [*news(40), Item("Weather report", "https://site.example/w", summary="Rain. " * 4000)]
    body = rss(items)
    assert len(body) > 32 * 1024
    with LoopbackServer() as server:
        server.route(
            "/f.xml", lambda _: Response(200, body, {"Content-Type": "application/rss+xml"})
        )
        results = []
        stored = []
        for processes in (0, 1):
            app = _app(tmp_path / str(processes), server.url("/f.xml"), processes)
            try:
                results.append(app.poller.run_cycle(include_not_due=True).results[0])
                stored.append(_stored(app))
                if processes:
                    assert app.poller.pipeline.cpu._pool is not None  # it did run in a worker
            finally:
                app.close()
    local, remote = results
    assert remote.outcome == local.outcome == "ok"
    assert (remote.new, remote.irrelevant, remote.parser) == (local.new, local.irrelevant, "tree")
    assert remote.new == 40
    assert stored[0] == stored[1]
    assert len(stored[1][1]) == 41


def test_a_dead_worker_costs_one_poll(tmp_path: Path) -> None:
    version = {"n": 0}

    def feed(_: object) -> Response:
        version["n"] += 1
        items = [Item(f"Report {version['n']}", "https://site.example/r"), *news(30)]
        return Response(200, rss(items), {"Content-Type": "application/rss+xml"})

    with LoopbackServer() as server:
        server.route("/f.xml", feed)
        app = _app(tmp_path, server.url("/f.xml"), 1)
        try:
            assert app.poller.run_cycle(include_not_due=True).results[0].outcome == "ok"
            pool = app.poller.pipeline.cpu._pool
            assert pool is not None
            for pid in list(pool._processes):  # the worker this test started
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while not pool._broken and time.monotonic() < deadline:
                time.sleep(0.02)
            failed = app.poller.run_cycle(include_not_due=True).results[0]
            assert failed.error is not None
            assert "worker process died" in failed.error
            again = app.poller.run_cycle(include_not_due=True).results[0]
            assert again.outcome == "ok"  # a new pool took over
            assert app.poller.pipeline.cpu._pool is not pool
        finally:
            app.close()


def test_workers_log_like_the_polling_process(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    page = b'<?xml version="1.0"?><inventory>' + b"<item>bolt</item>" * 200 + b"</inventory>"
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    with LoopbackServer() as server:
        server.route("/f.xml", lambda _: Response(200, page, {"Content-Type": "application/xml"}))
        app = _app(tmp_path, server.url("/f.xml"), 1, name="secret-feed-name")
        try:
            mask = setup_logging("info", "json")
            mask.replacements = [("secret-feed-name", "masked-name")]
            result = app.poller.run_cycle(include_not_due=True).results[0]
            assert app.poller.pipeline.cpu._pool is not None
        finally:
            app.close()  # waits for the worker, so its output is flushed
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
    assert result.error is not None
    assert result.outcome == "parse_error"
    lines = [
        json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")
    ]
    failed = [r for r in lines if r["logger"] == "feedbot.processor"]
    assert failed, lines  # logged by the worker, as JSON, with the name masked
    assert "masked-name" in failed[0]["message"]
    assert result.error in failed[0]["message"]
    assert "secret-feed-name" not in json.dumps(lines)


def test_started_workers_are_ready_before_the_first_poll(tmp_path: Path) -> None:
    body = rss(news(40))
    with LoopbackServer() as server:
        server.route(
            "/f.xml", lambda _: Response(200, body, {"Content-Type": "application/rss+xml"})
        )
        app = _app(tmp_path, server.url("/f.xml"), 2)
        try:
            assert app.poller.start() == 2  # both built their processor before it returned
            pool = app.poller.pipeline.cpu._pool
            assert pool is not None
            workers = set(pool._processes)
            assert len(workers) == 2
            for pid in workers:
                os.kill(pid, 0)  # running
            assert app.poller.start() == 0  # started already
            result = app.poller.run_cycle(include_not_due=True).results[0]
            assert (result.outcome, result.new) == ("ok", 40)
            assert app.poller.pipeline.cpu._pool is pool
            assert set(pool._processes) == workers  # no worker had to be started for it
        finally:
            app.close()
        assert app.poller.start() == 0  # shut: nothing to start
    local = _app(tmp_path / "local", "http://127.0.0.1:9/f.xml", 0)
    try:
        assert local.poller.start() == 0  # no worker processes to start
        assert local.poller.pipeline.cpu._pool is None
    finally:
        local.close()


def _gc_state() -> tuple[int, int]:
    """Run in a worker process: its collector's young-generation threshold and how many
    objects it has frozen."""
    return gc.get_threshold()[0], gc.get_freeze_count()


def test_workers_collect_cycles_rarely(tmp_path: Path) -> None:
    """A worker process freezes what it built at start and raises its young generation's
    threshold; the polling process keeps Python's defaults."""
    app = _app(tmp_path, "http://127.0.0.1:9/f.xml", 1)
    try:
        assert app.poller.start() == 1
        pool = app.poller.pipeline.cpu._pool
        assert pool is not None
        threshold, frozen = pool.submit(_gc_state).result(timeout=60)
    finally:
        app.close()
    assert threshold == GC_THRESHOLD > 700
    assert frozen > 10_000  # its imports, topics and connection, never walked again
    assert gc.get_threshold()[0] != GC_THRESHOLD


def test_responses_processed_here_are_parsed_on_one_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whichever poll thread fetched them, the responses processed in the polling process
    are parsed on the stage's one thread (lxml's per-thread parser dictionaries made the
    process's memory grow with the feeds its dozens of threads had parsed). The thread
    exits when idle, and the next response starts another."""
    import threading

    import feedbot.poll.cpu as cpu
    import feedbot.processor as processor

    parsed_on: list[str] = []
    real = processor.parse_feed

    def parse_feed(*args: Any) -> Any:
        parsed_on.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(processor, "parse_feed", parse_feed)
    monkeypatch.setattr(cpu, "_IDLE_SECONDS", 0.2)
    with LoopbackServer() as server:
        for n in range(12):
            body = rss(news(3, prefix=f"https://site{n}.example/news"))
            server.route(
                f"/{n}.xml", lambda _, b=body: Response(200, b, {"Content-Type": "text/xml"})
            )
        raw: dict[str, Any] = {
            "poll": {"processes": 0, "per_host": 12},
            "upstream": [{"name": f"f{n}", "url": server.url(f"/{n}.xml")} for n in range(12)],
        }
        app = App(config_from_mapping(raw, base_dir=tmp_path, env={}))
        try:
            app.sync_upstreams()
            first = app.poller.run_cycle(include_not_due=True).results
            stage = app.poller.pipeline.cpu._group
            deadline = time.monotonic() + 10
            while stage._thread is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            idle = stage._thread
            again = app.poller.run_cycle(include_not_due=True).results
        finally:
            app.close()
    assert [r.outcome for r in first] == ["ok"] * 12
    stories = (sum(r.new for r in first), sum(r.duplicates for r in first))
    assert stories == (3, 33)  # every feed carries the same 3 stories
    assert [r.outcome for r in again] == ["unchanged"] * 12
    assert idle is None  # the idle thread had exited; the second cycle started another
    assert len(parsed_on) == 12
    assert set(parsed_on) == {"cpu-local"}
