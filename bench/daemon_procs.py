"""Processes and the loopback world of the daemon benchmark (see bench/daemon.py).

``world_server`` runs bench/daemon_server.py, ``feedbot_run`` runs ``python -m feedbot.cli
run``; both die with the benchmark (``PR_SET_PDEATHSIG``) and are stopped on the way out.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 (a made-up signing key)
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # monotonic seconds
    cpu: float  # utime + stime, seconds
    rss_kib: int


@dataclass(frozen=True, slots=True)
class World:
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.2:{self.port}{path}"

    def feed_url(self, index: int, hosts: int) -> str:
        return f"http://127.0.0.{2 + index % hosts}:{self.port}/feeds/{index}.xml"

    def stats(self) -> dict[str, Any]:
        with _NO_PROXY.open(self.url("/stats"), timeout=10) as resp:
            data: dict[str, Any] = json.load(resp)
        return data

    def hooked(self, title: str) -> bool:
        """Whether the receiver got the webhook message of the added item *title*."""
        return self.stats()["items"][title]["hooked"] is not None

    def polls(self) -> int:
        """Feed requests answered so far, any status."""
        return sum(int(v) for v in self.stats()["counts"].values())

    def add_item(self, feed: int) -> str:
        req = urllib.request.Request(self.url(f"/control/add?feed={feed}"), data=b"", method="POST")
        with _NO_PROXY.open(req, timeout=10) as resp:
            return str(json.load(resp)["title"])


def read_sample(pid: int) -> Sample:
    """CPU seconds (all threads) and resident memory of *pid*, from /proc."""
    at = time.monotonic()
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat.rpartition(")")[2].split()  # fields 3.. of proc(5); utime is 14, stime 15
    cpu = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return Sample(at, cpu, rss)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the benchmark dies, however it dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextmanager
def world_server(workdir: Path, *args: str) -> Iterator[World]:
    """Start bench/daemon_server.py; closing its stdin (also on errors) stops it."""
    cmd = [sys.executable, str(HERE / "daemon_server.py"), *args]
    with (workdir / "server.log").open("wb") as err:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            preexec_fn=_die_with_parent,
        )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=60):
                raise RuntimeError(f"the world server did not start; see {workdir}/server.log")
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the world server exited; see {workdir}/server.log")
        yield World(int(json.loads(line)["port"]))
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=10)
        proc.stdout.close()


@contextmanager
def feedbot_run(config: Path, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``feedbot run`` as a child; SIGTERM (then SIGKILL) on the way out."""
    cmd = [sys.executable, "-m", "feedbot.cli", "--config", str(config), "run"]
    with (workdir / "daemon.log").open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=_die_with_parent,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    path: Path,
    world: World,
    feeds: int,
    hosts: int,
    *,
    poll: str = "",
    interval: str | None = None,
    extra: str = "",
) -> None:
    """A config with one [[upstream]] per feed, a generic webhook and one published feed."""
    lines = [
        f'database_url = "sqlite:///{path.parent}/state/feedbot.sqlite3"',
        f'state_dir = "{path.parent}/state"',
        f'feeds_dir = "{path.parent}/feeds"',
        f"[server]\nport = {free_port()}",
        '[[publish]]\nname = "alibaba"\ntitle = "Alibaba"\ntopics = ["alibaba"]',
        f"[poll]\n{poll}",
        f'[[webhook]]\nname = "bench"\nkind = "generic"\nurl = "{world.url("/hook")}"',
        f'secret = "{SECRET}"\ntopics = ["alibaba"]',
        extra,
    ]
    for i in range(feeds):
        lines.append(f'[[upstream]]\nname = "feed-{i}"\nurl = "{world.feed_url(i, hosts)}"')
        if interval is not None:
            lines.append(f'interval = "{interval}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"feedbot run exited with {proc.returncode} waiting for {what}")
        if check():
            return
        time.sleep(1.0)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
