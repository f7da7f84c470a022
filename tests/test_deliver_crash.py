"""Crash safety: ``feedbot deliver --loop`` killed with SIGKILL mid-send, then restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedbot.clock import utcnow
from feedbot.store import outbox
from feedbot.store.db import Database
from tests.conftest import ROOT
from tests.receivers import TOKEN_PATH, Receiver, Reply, wait_until
from tests.test_deliver import seed

ARTICLES = 12


def write_config(tmp_path: Path, urls: dict[str, str]) -> Path:
    hooks = "".join(
        f'[[webhook]]\nname = "{name}"\nkind = "generic"\nurl = "{url}"\ndigest_threshold = 1000\n'
        for name, url in urls.items()
    )
    config = tmp_path / "config.toml"
    config.write_text(
        'database_url = "sqlite:///state/feedbot.sqlite3"\n'
        '[notify]\nlease = "2s"\nread_timeout = "10s"\nconnect_timeout = "2s"\n' + hooks,
        encoding="utf-8",
    )
    return config


class Worker:
    """One ``feedbot deliver --loop`` subprocess with its stderr in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "feedbot.cli", "--config", str(config), "deliver", "--loop"],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._out,
        )

    def stop(self, sig: int) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self._out.close()
        return code


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.proc.poll() is None:
            worker.stop(signal.SIGKILL)


def by_article(receiver: Receiver) -> dict[str, set[str]]:
    """article id -> the webhook-ids it arrived with (every attempt that reached us)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for got in receiver.received:
        seen[got.payload["data"]["id"]].add(got.headers["webhook-id"])
    return seen


def test_sigkill_mid_send_then_restart_delivers_everything_with_stable_ids(
    tmp_path: Path, workers: list[Worker]
) -> None:
    gate = threading.Event()
    with Receiver("generic") as a, Receiver("generic", path="/hooks/b/other-secret-token") as b:
        for r in (a, b):  # two answers, then requests held open until the kill
            r.reply(Reply(204), Reply(204), Reply(204, hold=gate))
        config = write_config(tmp_path, {"a": a.url, "b": b.url})
        db = Database(f"sqlite:///{tmp_path / 'state' / 'feedbot.sqlite3'}")
        try:
            expected = set(seed(db, ARTICLES, ["a", "b"], now=utcnow()))
            log = tmp_path / "deliver.log"
            first = Worker(config, log)
            workers.append(first)
            assert wait_until(lambda: len(a.received) >= 3 and len(b.received) >= 3, 30)
            assert first.stop(signal.SIGKILL) == -signal.SIGKILL
            gate.set()
            second = Worker(config, log)
            workers.append(second)
            assert wait_until(lambda: set(by_article(a)) == set(by_article(b)) == expected, 30)

            def all_done() -> bool:
                with db.read() as conn:
                    rows = outbox.list_deliveries(conn, limit=1000)
                return len(rows) == 2 * ARTICLES and {d.status for d in rows} == {"done"}

            assert wait_until(all_done, 30)
            assert second.stop(signal.SIGTERM) == 0
        finally:
            db.close()
    for r in (a, b):
        ids = by_article(r)
        assert set(ids) == expected
        assert all(len(webhook_ids) == 1 for webhook_ids in ids.values())  # same id on resend
        assert len(r.received) > ARTICLES  # the held and unrecorded ones did arrive twice
        assert r.problems == []
    text = log.read_text(encoding="utf-8")
    assert "signal 15: stopping" in text
    assert TOKEN_PATH.rsplit("/", 1)[1] not in text
    assert "other-secret-token" not in text
