"""``feedbot webhooks|deliveries|deliver`` as real subprocesses against loopback receivers."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedbot.cli import main
from feedbot.clock import utcnow
from feedbot.store import outbox
from feedbot.store.db import Database
from tests.conftest import ROOT
from tests.receivers import TOKEN_PATH, Receiver, Reply
from tests.test_deliver import seed

TOKEN = TOKEN_PATH.rsplit("/", 1)[1]


def write_config(tmp_path: Path, hooks: dict[str, tuple[str, str]]) -> Path:
    body = "".join(
        f'[[webhook]]\nname = "{name}"\nkind = "{kind}"\nurl = "{url}"\n'
        for name, (kind, url) in hooks.items()
    )
    config = tmp_path / "config.toml"
    config.write_text(
        'database_url = "sqlite:///state/feedbot.sqlite3"\n[notify]\nread_timeout = "5s"\n' + body,
        encoding="utf-8",
    )
    return config


def open_db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'state' / 'feedbot.sqlite3'}")


def feedbot(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "feedbot.cli", "--config", str(config), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert TOKEN not in proc.stdout
    assert TOKEN not in proc.stderr
    return proc


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """``main`` configures the root logger for the process; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def cli(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The same command in this process (for the quick read-only ones)."""
    code = main(["--config", str(config), *args])
    captured = capsys.readouterr()
    assert TOKEN not in captured.out
    assert TOKEN not in captured.err
    return code, captured.out


def test_deleted_webhook_is_listed_failing_until_webhooks_test_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Receiver("generic") as news, Receiver("discord") as chat:
        chat.reply(Reply(404, b'{"message": "Unknown Webhook", "code": 10015}'))
        config = write_config(
            tmp_path, {"news": ("generic", news.url), "chat": ("discord", chat.url)}
        )
        db = open_db(tmp_path)
        seed(db, 3, ["news"], now=utcnow())
        seed(db, 1, ["chat"], now=utcnow())
        db.close()

        run = feedbot(config, "deliver")
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == (
            "delivered: 3 in 4 messages; to retry: 1; dead: 0; pending: 1; failing webhooks: chat"
        )
        assert len(news.received) == 3
        assert news.problems == []

        code, listed = cli(config, capsys, "webhooks", "list")
        assert code == 0
        line = next(x for x in listed.splitlines() if x.startswith("chat"))
        assert "discord" in line
        assert "failing: HTTP 404" in line
        assert "/hooks/T…/****" in line
        rows = [
            json.loads(x) for x in cli(config, capsys, "webhooks", "list", "--json")[1].splitlines()
        ]
        assert {r["name"]: (r["pending"], r["failing"] is not None) for r in rows} == {
            "news": (0, False),
            "chat": (1, True),
        }

        assert feedbot(config, "deliver").stdout.startswith("delivered: 0 in 0 messages")
        assert len(chat.received) == 1  # nothing sent while failing

        chat.reply(Reply(404, b"still gone"))
        tried = feedbot(config, "webhooks", "test", "chat")
        assert tried.returncode == 1
        assert "chat: failed: HTTP 404: still gone" in tried.stdout

        tested = feedbot(config, "webhooks", "test", "chat")
        assert (tested.returncode, tested.stdout.strip()) == (0, "chat: delivered (204)")
        sample = chat.received[-1].payload
        assert sample["embeds"][0]["title"] == "feedbot test message"

        again = feedbot(config, "deliver")
        assert again.stdout.startswith("delivered: 1 in 1 messages")
        assert "ok" in cli(config, capsys, "webhooks", "list")[1].splitlines()[2]


def test_dead_deliveries_are_listed_and_retried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Receiver("generic") as news:
        news.reply(Reply(422, b"unprocessable: field x"), Reply(422, b"unprocessable: field x"))
        config = write_config(tmp_path, {"news": ("generic", news.url)})
        db = open_db(tmp_path)
        seed(db, 2, ["news"], now=utcnow())

        assert "dead: 2" in feedbot(config, "deliver").stdout
        dead = [
            json.loads(x)
            for x in cli(config, capsys, "deliveries", "list", "--dead", "--json")[1].splitlines()
        ]
        assert [(d["status"], d["last_status"], d["last_error"]) for d in dead] == [
            ("dead", 422, "HTTP 422: unprocessable: field x")
        ] * 2
        table = cli(config, capsys, "deliveries", "list")[1]
        assert table.splitlines()[0].split()[:4] == ["ID", "WEBHOOK", "STATUS", "ATTEMPTS"]

        assert cli(config, capsys, "deliveries", "retry", dead[0]["id"]) == (0, "queued again: 1\n")
        assert cli(config, capsys, "deliveries", "retry", "--dead") == (0, "queued again: 1\n")
        assert feedbot(config, "deliver").stdout.startswith("delivered: 2 in 2 messages")
        with db.read() as conn:
            assert {d.status for d in outbox.list_deliveries(conn)} == {"done"}
        again = cli(config, capsys, "deliveries", "retry", dead[0]["id"])
        assert again == (1, "queued again: 0\n")
        db.close()


@pytest.mark.skipif(importlib.util.find_spec("apprise") is None, reason="apprise not installed")
def test_apprise_kind_delivers_through_the_apprise_package(tmp_path: Path) -> None:
    """In a subprocess: loading apprise's plugins changes this process's state."""
    with Receiver("apprise", path="/notify") as r:
        url = r.url.replace("http://", "json://")
        config = write_config(tmp_path, {"a": ("apprise", url)})
        db = open_db(tmp_path)
        seed(db, 1, ["a"], now=utcnow(), title="Q&A: <b>Alibaba</b> @everyone")
        db.close()
        run = feedbot(config, "deliver")
    assert run.stdout.startswith("delivered: 1 in 1 messages"), run.stderr
    [got] = r.received
    assert got.payload["title"] == "New: Q&A: <b>Alibaba</b> @everyone"
    assert "https://news.example/articles/0" in got.payload["message"]
