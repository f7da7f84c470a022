"""`feedbot run` in a real subprocess against loopback upstreams and a webhook receiver."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from tests.feedgen_util import Item, rss
from tests.loopback import LoopbackServer, Request, Response

pytestmark = pytest.mark.slow

STORY = Item(
    "Alibaba Cloud opens a new data centre in Mexico",
    "https://news.example/2026/alibaba-cloud-mexico?utm_source=feed&utm_medium=rss",
    summary="Alibaba Cloud said its new region in Mexico will serve retailers and banks across Latin America.",
)
SAME_STORY = Item(
    "Alibaba Cloud opens a new data centre in Mexico",
    "https://www.news.example/2026/alibaba-cloud-mexico/?fbclid=xyz",
    guid="other-feed-guid-1",
    summary=STORY.summary,
)
UNRELATED = Item(
    "Bakery wins the regional bread prize", "https://news.example/bread", summary="Sourdough."
)
OLD = Item("Weather: rain expected on Sunday", "https://news.example/weather", summary="Umbrellas.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Daemon:
    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log_path = config, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "feedbot.cli", "--config", str(self.config), "run"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        return self.proc

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 25) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    feeds: dict[str, list[Item]] = {"a": [OLD], "b": [OLD]}
    hooks: list[Request] = []

    def receiver(req: Request) -> Response:
        hooks.append(req)
        return Response(204)

    with LoopbackServer() as upstream, LoopbackServer() as webhook:
        upstream.route("/a", lambda r: Response(200, rss(feeds["a"], title="Feed A")))
        upstream.route("/b", lambda r: Response(200, rss(feeds["b"], title="Feed B")))
        webhook.route("/hook", receiver)
        port = free_port()
        config = tmp_path / "config.toml"
        config.write_text(
            f"""
database_url = "sqlite:///state/feedbot.sqlite3"
[server]
port = {port}
[[publish]]
name = "watch"
title = "Watch"
topics = ["alibaba"]
[poll]
min_interval = "1s"
[daemon]
poll_tick = "0.5s"
deliver_tick = "0.5s"
publish_tick = "0.5s"
grace = "10s"
[notify]
lease = "5s"
[[upstream]]
name = "a"
url = "{upstream.url("/a")}"
interval = "1s"
[[upstream]]
name = "b"
url = "{upstream.url("/b")}"
interval = "1s"
[[webhook]]
name = "team"
kind = "generic"
url = "{webhook.url("/hook")}"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
topics = ["alibaba"]
""",
            encoding="utf-8",
        )
        daemon = Daemon(config, tmp_path / "daemon.log")
        try:
            yield {"feeds": feeds, "hooks": hooks, "upstream": upstream, "daemon": daemon,
                   "base": f"http://127.0.0.1:{port}", "config": config, "tmp": tmp_path}  # fmt: skip
        finally:
            daemon.kill()


def worker_processes(pid: int) -> int:
    """Running poll worker processes (multiprocessing's spawned children) of *pid*."""
    count = 0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((proc / "stat").read_text().rpartition(")")[2].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        count += ppid == pid and b"spawn_main" in cmdline
    return count


def polls_of(upstream: LoopbackServer, path: str) -> int:
    return sum(1 for r in upstream.requests if r.path == path)


def entries(base: str) -> list[str]:
    try:
        body = requests.get(f"{base}/watch.atom", timeout=2).content
    except requests.ConnectionError:
        return []
    return [e.title for e in feedparser.parse(body).entries]


def test_daemon_end_to_end(world: dict[str, Any]) -> None:
    daemon: Daemon = world["daemon"]
    feeds, hooks, upstream, base = world["feeds"], world["hooks"], world["upstream"], world["base"]
    daemon.start()
    wait_for(
        lambda: polls_of(upstream, "/a") >= 2 and polls_of(upstream, "/b") >= 2, 30, "first polls"
    )
    assert requests.get(f"{base}/healthz", timeout=2).status_code == 200
    if Path("/proc/self/stat").exists() and (os.cpu_count() or 1) > 1:
        # started with the daemon, though these small feeds are processed without them
        assert daemon.proc is not None
        pid = daemon.proc.pid
        wait_for(lambda: worker_processes(pid) >= 2, 30, "the worker processes")

    # a second daemon on the same state directory refuses to start
    second = subprocess.run(
        [sys.executable, "-m", "feedbot.cli", "--config", str(world["config"]), "run"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert second.returncode == 2
    assert "another feedbot is already running on this state directory" in second.stderr

    feeds["a"] = [STORY, UNRELATED, OLD]
    wait_for(lambda: STORY.title in entries(base), 30, "the story in the served feed")
    wait_for(lambda: len(hooks) >= 1, 30, "the webhook message")
    assert UNRELATED.title not in entries(base)
    feeds["b"] = [SAME_STORY, OLD]
    seen_b = polls_of(upstream, "/b")
    wait_for(lambda: polls_of(upstream, "/b") >= seen_b + 3, 30, "more polls of feed b")
    time.sleep(1.5)  # a few delivery ticks
    assert entries(base).count(STORY.title) == 1
    assert len(hooks) == 1
    payload = json.loads(hooks[0].body)
    assert payload["data"]["title"] == STORY.title
    assert hooks[0].headers["webhook-id"]
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(
            requests.get(f"{base}/metrics", timeout=5).text
        )
        for s in family.samples
    }
    assert samples[("feedbot_deliveries_total", (("outcome", "done"), ("webhook", "team")))] == 1
    assert samples[("feedbot_polls_total", (("outcome", "ok"),))] >= 2
    assert samples[("feedbot_outbox_pending", (("webhook", "team"),))] == 0

    # SIGHUP with a broken config keeps the running one
    good = world["config"].read_text(encoding="utf-8")
    world["config"].write_text(good + "\nbogus_key = 1\n", encoding="utf-8")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: "reload failed, keeping the running config" in daemon.log(), 15, "the reload error"
    )
    assert "bogus_key: unknown key" in daemon.log()
    assert requests.get(f"{base}/healthz", timeout=2).status_code == 200
    world["config"].write_text(good, encoding="utf-8")

    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 12

    # restart: nothing is announced twice
    daemon.start()
    seen_a = polls_of(upstream, "/a")
    wait_for(lambda: polls_of(upstream, "/a") >= seen_a + 3, 30, "polls after restart")
    time.sleep(1.5)
    assert len(hooks) == 1
    assert daemon.stop() == 0


def test_offline_start_serves_the_example_feed(tmp_path: Path) -> None:
    """The shipped config on a machine without internet: it starts, serves, keeps running."""
    port = free_port()
    shipped = (ROOT / "config.toml").read_text(encoding="utf-8")
    shipped = shipped.replace("port = 8080", f"port = {port}")
    shipped = shipped.replace(
        'import_paths = ["examples/articles"]', f'import_paths = ["{ROOT}/examples/articles"]'
    )
    shipped += '\n[[upstream]]\nname = "unreachable"\nurl = "http://127.0.0.1:9/feed.xml"\n'
    shipped = shipped.replace('min_interval = "5m"', 'min_interval = "1s"')
    config = tmp_path / "config.toml"
    config.write_text(shipped, encoding="utf-8")
    daemon = Daemon(config, tmp_path / "daemon.log")
    daemon.start()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ok(f"{base}/alibaba.atom"), 30, "the example feed")
        titles = [
            e.title
            for e in feedparser.parse(
                requests.get(f"{base}/alibaba.atom", timeout=2).content
            ).entries
        ]
        assert len(titles) >= 4
        wait_for(
            lambda: "unreachable" in daemon.log() and "connection" in daemon.log().lower(),
            30,
            "the upstream error",
        )
        assert daemon.proc is not None
        assert daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False
