"""The polling benchmark's runners: one tool, one SQLite file, one process, two timed phases.

Run by ``bench/poll.py``, one child process per tool::

    python bench/poll_workers.py feedbot --urls urls.txt --workdir DIR [--workers 16]
    python bench/poll_workers.py reader  --urls urls.txt --workdir DIR [--workers 16]

Phase "first" polls every feed of a fresh database; phase "304" polls them all again,
when the upstream answers every conditional request with 304. Each phase prints one JSON
line (see ``PhaseResult``). With ``--profile FILE`` py-spy samples one phase (``--profile-phase``, the
thread holding the GIL, as collapsed stacks) into FILE.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PHASES = ("first", "304")


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """One timed phase of one tool. ``entries`` are the entries that phase stored."""

    tool: str
    phase: str
    feeds: int
    seconds: float
    cpu_seconds: float  # user + system CPU during the phase: this process and its workers
    entries: int
    peak_rss_kib: int  # ru_maxrss of this process at the end of the phase
    served: dict[str, int] = field(default_factory=dict)  # upstream responses by status
    outcomes: dict[str, int] = field(default_factory=dict)  # per-feed outcomes the tool saw


def _cpu() -> float:
    """CPU seconds of this process and its children: feedbot's worker processes (alive,
    read from /proc on Linux) and any that have ended."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total + _live_children_cpu()


def _live_children_cpu() -> float:
    """user + system CPU seconds of this process's running children (0 without /proc)."""
    me, ticks, total = os.getpid(), os.sysconf("SC_CLK_TCK"), 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == me:  # ppid; utime and stime follow at fields 14 and 15
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _server_counts(stats_url: str | None) -> dict[str, int]:
    if not stats_url:
        return {}
    with urllib.request.urlopen(stats_url, timeout=10) as resp:
        raw: dict[str, float] = json.load(resp)
    return {k: int(v) for k, v in raw.items() if k.isdigit()}


@contextmanager
def _profiled(path: Path | None) -> Iterator[None]:
    """Sample the thread holding the GIL in this process and in its worker processes with
    py-spy (without pausing them) during the block."""
    if path is None:
        yield
        return
    spy = Path(sys.executable).with_name("py-spy")
    cmd = [
        str(spy),
        "record",
        "--pid",
        str(os.getpid()),
        "--format",
        "raw",
        "--nonblocking",
        "--gil",
        "--subprocesses",
    ]
    cmd += ["--rate", "200", "--output", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # let it attach before the timed work starts
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        if proc.returncode not in (0, -signal.SIGINT):
            log.warning("py-spy exited with %s: %s", proc.returncode, err.decode()[-500:])


def timed_phase(
    tool: str,
    phase: str,
    feeds: int,
    stats_url: str | None,
    run: Callable[[], tuple[int, Counter[str]]],
) -> PhaseResult:
    """Time *run* (which returns entries stored and per-feed outcomes) and describe it."""
    before = _server_counts(stats_url)
    cpu = _cpu()
    started = time.perf_counter()
    entries, outcomes = run()
    seconds = time.perf_counter() - started
    cpu = _cpu() - cpu
    after = _server_counts(stats_url)
    served = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return PhaseResult(tool, phase, feeds, seconds, cpu, entries, peak, served, dict(outcomes))


# ------------------------------------------------------------------------------- feedbot
def run_feedbot(
    urls: list[str], workdir: Path, *, workers: int, connections: int, per_host: int,
    processes: int | None = None,
    stats_url: str | None, profile: Path | None, profile_phase: str = "first",
    cold_workers: bool = False,
) -> Iterator[PhaseResult]:  # fmt: skip
    from feedbot.app import App

    app = App(_feedbot_config(urls, workdir, workers, connections, per_host, processes))
    try:
        app.sync_upstreams()
        poller = app.poller
        if not cold_workers:  # as the daemon does at start; reader is imported untimed too
            poller.start()

        def cycle() -> tuple[int, Counter[str]]:
            result = poller.run_cycle(include_not_due=True)
            stored = sum(r.new + r.irrelevant + r.duplicates for r in result.results)
            return stored, result.by_outcome

        for phase in PHASES:
            with _profiled(profile if phase == profile_phase else None):
                yield timed_phase("feedbot", phase, len(urls), stats_url, cycle)
    finally:
        app.close()


def _feedbot_config(
    urls: list[str],
    workdir: Path,
    workers: int,
    connections: int,
    per_host: int,
    processes: int | None = None,
) -> Any:
    """The run's config; the mapping it is validated from is dropped here, as
    ``load_config`` drops the parsed TOML (10,000 upstreams hold a few MiB)."""
    from feedbot.config import config_from_mapping

    raw: dict[str, Any] = {
        "database_url": "sqlite:///state/feedbot.sqlite3",
        "poll": {
            "workers": workers,
            "connections": connections,
            "per_host": per_host,
            **({} if processes is None else {"processes": processes}),
            "min_interval": "5m",
        },
        "upstream": [{"name": f"feed-{i}", "url": u} for i, u in enumerate(urls)],
        "topics": {"bench-retail": {"terms": ["AliExpress", "Taobao", "Tmall"]}},
    }
    return config_from_mapping(raw, base_dir=workdir, env={})


# -------------------------------------------------------------------------------- reader
def run_reader(
    urls: list[str], workdir: Path, *, workers: int, stats_url: str | None
) -> Iterator[PhaseResult]:
    from reader import make_reader

    reader = make_reader(str(workdir / "reader.sqlite"))
    try:
        for url in urls:
            reader.add_feed(url)

        def update() -> tuple[int, Counter[str]]:
            before = reader.get_entry_counts().total or 0
            outcomes: Counter[str] = Counter()
            for res in reader.update_feeds_iter(scheduled=False, workers=workers):
                if isinstance(res.value, Exception):
                    outcomes["error"] += 1
                elif res.value is None:
                    outcomes["not_modified"] += 1
                else:
                    outcomes["updated"] += 1
            return (reader.get_entry_counts().total or 0) - before, outcomes

        yield timed_phase("reader", "first", len(urls), stats_url, update)
        yield timed_phase("reader", "304", len(urls), stats_url, update)
    finally:
        reader.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tool", choices=("feedbot", "reader"))
    parser.add_argument("--urls", type=Path, required=True, help="one feed URL per line")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--per-host", type=int, default=2, help="feedbot only")
    parser.add_argument("--connections", type=int, default=64, help="feedbot only")
    parser.add_argument("--processes", type=int, help="feedbot only; unset: its default")
    parser.add_argument("--stats-url", help="the upstream's /stats, read between phases")
    parser.add_argument("--profile", type=Path, help="py-spy output for one feedbot phase")
    parser.add_argument("--profile-phase", choices=PHASES, default="first")
    parser.add_argument("--cold-workers", action="store_true", help="feedbot only: start "
                        "the worker processes in the first phase, not before it")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("reader").setLevel(logging.ERROR)  # one bozo warning per feed otherwise
    urls = args.urls.read_text(encoding="utf-8").split()
    args.workdir.mkdir(parents=True, exist_ok=True)
    phases: Iterator[PhaseResult]
    if args.tool == "feedbot":
        phases = run_feedbot(
            urls, args.workdir, workers=args.workers, connections=args.connections,
            per_host=args.per_host, processes=args.processes,
            stats_url=args.stats_url, profile=args.profile, profile_phase=args.profile_phase,
            cold_workers=args.cold_workers,
        )  # fmt: skip
    else:
        phases = run_reader(urls, args.workdir, workers=args.workers, stats_url=args.stats_url)
    for result in phases:
        print(json.dumps(asdict(result)), flush=True)


if __name__ == "__main__":
    main()
