"""Polling benchmark: feedbot against the ``reader`` library on the same loopback upstream.

    .venv/bin/python bench/poll.py [--feeds 1000] [--latency-ms 50] [--workers 16]
        [--connections 64] [--hosts 32] [--per-host 2] [--processes N] [--cold-workers]
        [--skip-reader] [--rounds 3]
        [--memory-feeds 10000]
        [--profile-feeds 200] [--profile-phase first|304]

One upstream process (bench/poll_server.py) serves every feed, spread round-robin over
127.0.0.2 .. 127.0.0.(hosts+1), for the whole run. Each tool then runs in its own child
process (bench/poll_workers.py) with its own SQLite file, one after the other: a first poll
of every feed, then an all-304 poll. feedbot's poll includes storage and relevance (it is
``Poller.run_cycle``); its worker processes are started before the first poll, as the
daemon starts them, and as reader is imported, before either tool's clock starts
(``--cold-workers`` times their start too). Prints one table and the targets of issue 3,
PASS/FAIL each: first poll >= 10x reader's first update, all-304 poll >= 1.5x reader's,
and feedbot's peak RSS for ``--memory-feeds`` feeds <= 1.2x that for ``--feeds``.
``--rounds N`` runs both tools N times, alternating which goes first, and judges the speed
targets on the median of the rounds' ratios.
``--profile-feeds N`` then samples feedbot's first poll of N feeds with py-spy and prints
where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from poll_server import ENTRIES, STYLES, feed_url
from poll_workers import PhaseResult

HERE = Path(__file__).resolve().parent
FIRST_TARGET = 10.0
NOT_MODIFIED_TARGET = 1.5
MEMORY_TARGET = 1.2


@dataclass(frozen=True, slots=True)
class Upstream:
    port: int
    hosts: int
    stats_url: str

    def urls(self, feeds: int, entries: int = ENTRIES) -> list[str]:
        return [feed_url(i, self.port, self.hosts, entries) for i in range(feeds)]


@dataclass(frozen=True, slots=True)
class ChildRun:
    """The phases one child printed, and its whole-life peak RSS from ``wait4``."""

    phases: tuple[PhaseResult, ...]
    peak_rss_kib: int


@contextmanager
def upstream_server(
    feeds: int,
    hosts: int,
    latency_ms: float,
    log: Path,
    *,
    pregenerate: int = 0,
    style: str = "news",
) -> Iterator[Upstream]:
    """Start bench/poll_server.py; closing its stdin on exit (also on errors) stops it."""
    cmd = [sys.executable, str(HERE / "poll_server.py"), "--feeds", str(feeds)]
    cmd += ["--pregenerate", str(pregenerate), "--style", style]
    cmd += ["--hosts", str(hosts), "--latency-ms", str(latency_ms)]
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=60):
                raise RuntimeError(f"upstream server did not start; see {log}")
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"upstream server exited; see {log}")
        port = int(json.loads(line)["port"])
        yield Upstream(port, hosts, f"http://127.0.0.2:{port}/stats")
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=10)
        proc.stdout.close()


def run_child(tool: str, urls: list[str], workdir: Path, args: argparse.Namespace,
              upstream: Upstream, *, profile: Path | None = None) -> ChildRun:  # fmt: skip
    """Run one tool in bench/poll_workers.py and collect its phases and peak RSS."""
    workdir.mkdir(parents=True, exist_ok=True)
    url_file = workdir / "urls.txt"
    url_file.write_text("\n".join(urls) + "\n", encoding="utf-8")
    cmd = [sys.executable, str(HERE / "poll_workers.py"), tool, "--urls", str(url_file)]
    cmd += ["--workdir", str(workdir), "--workers", str(args.workers)]
    cmd += ["--per-host", str(args.per_host), "--stats-url", upstream.stats_url]
    cmd += ["--connections", str(args.connections)]
    if args.processes is not None:
        cmd += ["--processes", str(args.processes)]
    if profile is not None:
        cmd += ["--profile", str(profile), "--profile-phase", args.profile_phase]
    if args.cold_workers and tool == "feedbot":
        cmd.append("--cold-workers")
    log = workdir / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        phases = []
        try:
            for line in proc.stdout:
                phases.append(PhaseResult(**json.loads(line)))
                print(f"  {tool} {phases[-1].phase}: {phases[-1].seconds:.1f} s", flush=True)
        finally:
            proc.stdout.close()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{tool} child exited with {proc.returncode}:\n{tail}")
    return ChildRun(tuple(phases), usage.ru_maxrss)


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def print_table(runs: list[tuple[str, ChildRun]]) -> None:
    head = f"{'tool':<16} {'phase':<6} {'feeds':>6} {'seconds':>8} {'feeds/s':>8} "
    head += f"{'entries/s':>10} {'CPU s':>7} {'RSS MiB':>8} {'upstream':>16}"
    print(head)
    print("-" * len(head))
    for label, run in runs:
        for p in run.phases:
            served = " ".join(f"{k}:{v}" for k, v in sorted(p.served.items()))
            print(
                f"{label:<16} {p.phase:<6} {p.feeds:>6} {p.seconds:>8.2f} "
                f"{_rate(p.feeds, p.seconds):>8.1f} {_rate(p.entries, p.seconds):>10.0f} "
                f"{p.cpu_seconds:>7.1f} {p.peak_rss_kib / 1024:>8.0f} {served:>16}"
            )
            bad = {
                k: v for k, v in p.outcomes.items() if k not in ("ok", "updated", "not_modified")
            }
            if bad:
                print(f"{'':<16} unexpected outcomes: {bad}")
    print(
        "CPU s is the child's user + system time in the phase, feedbot's worker processes "
        "included (read from /proc)."
    )
    print(
        "RSS MiB is the child's ru_maxrss at the end of the phase (a running peak), without "
        "worker processes."
    )


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_targets(
    pairs: list[tuple[ChildRun | None, ChildRun]],
    memory: tuple[ChildRun, ChildRun] | None,
    args: argparse.Namespace,
) -> None:
    """The targets; with several rounds, each speed target is judged on the median of the
    rounds' ratios (each round's reader against the same round's feedbot), all listed."""
    print("\ntargets")
    measured = [(reader, feedbot) for reader, feedbot in pairs if reader is not None]
    if measured:
        for phase, target in (("first", FIRST_TARGET), ("304", NOT_MODIFIED_TARGET)):
            ratios = [_ratio(feedbot, reader, phase) for reader, feedbot in measured]
            ratio = statistics.median(ratios)
            print(f"  {phase:<5} poll feeds/s, feedbot / reader: {ratio:6.2f}  "
                  f"(target >= {target:g})  {_verdict(ratio >= target)}")  # fmt: skip
            if len(ratios) > 1:
                listed = ", ".join(f"{r:.2f}" for r in ratios)
                print(
                    f"    the median of {len(ratios)} rounds: {listed} (lowest {min(ratios):.2f})"
                )
    if memory is not None:
        small, large = memory
        ratio = large.peak_rss_kib / small.peak_rss_kib
        print(
            f"  peak RSS, {args.memory_feeds} feeds / {args.feeds} feeds: {ratio:6.2f}  "
            f"(target <= {MEMORY_TARGET:g})  {_verdict(ratio <= MEMORY_TARGET)}"
        )
        print(
            f"    {large.peak_rss_kib / 1024:.0f} / {small.peak_rss_kib / 1024:.0f} MiB: the "
            f"whole feedbot child (first + 304 poll), {args.memory_entries} entries per feed"
        )


def _ratio(feedbot: ChildRun, reader: ChildRun, phase: str) -> float:
    ours, theirs = _by_phase(feedbot, phase), _by_phase(reader, phase)
    return _rate(ours.feeds, ours.seconds) / _rate(theirs.feeds, theirs.seconds)


def _by_phase(run: ChildRun, phase: str) -> PhaseResult:
    return next(p for p in run.phases if p.phase == phase)


# ------------------------------------------------------------------------------- profile
# (stage, path fragments, function names in feedbot/text.py); the innermost frame of a
# sample that matches decides its stage, so ftfy inside sanitize_html counts as repair.
_STAGES: tuple[tuple[str, tuple[str, ...], set[str]], ...] = (
    ("text repair", ("ftfy/",), {"repair_text", "clean_text", "_iso16_sub", "_cp1250_sub"}),
    ("sanitise", ("nh3", "html/parser.py", "_markupbase.py"), {"sanitize_html", "html_to_text"}),
    ("parse", ("poll/parse.py", "poll/fastpath.py", "poll/feeddata.py", "feedparser/",
               "lxml", "dateutil"), set()),
    ("fetch", ("poll/fetch.py", "poll/http_limits.py", "requests/", "urllib3/",
               "http/client.py", "socket.py", "ssl.py"), set()),
    ("match", ("relevance/topics.py", "relevance/normalize.py", "opencc"), set()),
    ("dedup", ("relevance/dedup.py", "relevance/similarity.py", "relevance/urls.py",
               "feedbot/stories.py", "w3lib"), set()),
    ("store", ("feedbot/store/", "sqlalchemy/", "sqlite3"), set()),
    ("pipeline (hash, state)", ("feedbot/pipeline.py", "feedbot/processor.py", "feedbot/ingest.py",
                                "poll/state.py", "poll/schedule.py", "hashlib"), set()),
    ("claims, threads, processes", ("poll/runner.py", "poll/cpu.py", "concurrent/futures",
                                    "threading.py", "multiprocessing/", "pickle"), set()),
)  # fmt: skip
_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>.*?)(?::\d+)?\)$")


def _stage(frames: list[str]) -> str:
    for frame in reversed(frames):
        m = _FRAME.match(frame)
        func, path = (m["func"], m["path"]) if m else (frame, "")
        for stage, fragments, text_funcs in _STAGES:
            if any(f in path for f in fragments):
                return stage
            if path.endswith("feedbot/text.py") and func.rsplit(".", 1)[-1] in text_funcs:
                return stage
        if path.endswith("feedbot/text.py"):
            return "sanitise"
    return "other"


def _function(frame: str) -> str:
    m = _FRAME.match(frame)
    return f"{m['func']} ({m['path']})" if m else frame


def print_profile(path: Path, phase: str, rate: int = 200, top: int = 15) -> None:
    """Summarise py-spy's collapsed stacks: samples per stage, top self and cumulative."""
    stages: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        stages[_stage(frames)] += n
        self_time[_function(frames[-1])] += n
        for fn in {_function(f) for f in frames if _FRAME.match(f)}:  # not process names
            cumulative[fn] += n
    if not total:
        print("profile: no samples")
        return
    print(f"profile of feedbot's {phase} poll: {total} samples of each process's GIL holder "
          f"(the poller and its workers) at {rate} Hz (~{total / rate:.1f} s of GIL time)")  # fmt: skip
    print(f"{'stage':<24} {'share':>6} {'thread-s':>9}")
    for stage, n in stages.most_common():
        print(f"{stage:<24} {n / total:>6.1%} {n / rate:>9.2f}")
    for title, counter in (("self", self_time), ("cumulative", cumulative)):
        print(f"\ntop {top} functions by {title} samples")
        for fn, n in counter.most_common(top):
            print(f"  {n / total:>6.1%}  {fn[:110]}")


def _round(
    n: int, args: argparse.Namespace, up: Upstream, work: Path, runs: list[tuple[str, ChildRun]]
) -> tuple[ChildRun | None, ChildRun]:
    """Round *n* (from 0): reader and feedbot on the same feeds, reader first when *n* is
    even (rounds #1, #3, …), so that neither tool always runs right after the other."""
    tools = ("feedbot",) if args.skip_reader else ("reader", "feedbot")
    done: dict[str, ChildRun] = {}
    for tool in tools if n % 2 == 0 else tools[::-1]:
        suffix = f"-{n + 1}" if args.rounds > 1 else ""
        done[tool] = run_child(tool, up.urls(args.feeds), work / f"{tool}{suffix}", args, up)
        runs.append((f"{tool} #{n + 1}" if args.rounds > 1 else tool, done[tool]))
    return done.get("reader"), done["feedbot"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--hosts", type=int, default=32, help="loopback addresses, 1..253")
    parser.add_argument("--per-host", type=int, default=2, help="feedbot's poll.per_host")
    parser.add_argument(
        "--connections", type=int, default=64, help="feedbot's poll.connections (its default)"
    )
    parser.add_argument(
        "--processes", type=int, help="feedbot's poll.processes (default: its own, one per core)"
    )
    parser.add_argument(
        "--cold-workers", action="store_true", help="feedbot starts its worker processes "
        "in the first poll (by default it starts them before, as its daemon does at start)"
    )  # fmt: skip
    parser.add_argument("--skip-reader", action="store_true")
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of both tools (first + 304 poll each), "
        "alternating which goes first; the speed targets take the median of their ratios"
    )  # fmt: skip
    parser.add_argument("--memory-feeds", type=int, default=10_000, help="0 skips the run")
    parser.add_argument(
        "--memory-entries", type=int, default=5, help=f"entries per feed in the memory runs "
        f"(both sizes); {ENTRIES} reuses the main run as the small one"
    )  # fmt: skip
    parser.add_argument("--profile-feeds", type=int, default=0, help="0 skips profiling")
    parser.add_argument("--profile-phase", choices=("first", "304"), default="first")
    parser.add_argument("--workdir", type=Path, help="kept afterwards (default: a temp dir)")
    parser.add_argument(
        "--style", choices=STYLES, default="news",
        help="the feeds' markup (bench/poll_server.py): news (default) or light",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="feedbot-bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        served = max(args.feeds, args.memory_feeds, args.profile_feeds)
        print(f"upstream: {served} feeds over {args.hosts} loopback addresses, "
              f"{args.latency_ms:g} ms latency; {args.workers} workers; feedbot per_host "
              f"{args.per_host}, connections {args.connections}; {args.style} markup; "
              f"work in {work}", flush=True)  # fmt: skip
        ready = max(args.feeds, args.profile_feeds)  # 50-entry bodies, made before serving
        with upstream_server(
            served,
            args.hosts,
            args.latency_ms,
            work / "server.log",
            pregenerate=ready,
            style=args.style,
        ) as up:
            runs: list[tuple[str, ChildRun]] = []
            pairs = [_round(n, args, up, work, runs) for n in range(args.rounds)]
            feedbot = pairs[0][1]
            memory = None
            if args.memory_feeds:
                small, memory = feedbot, None
                if args.memory_entries != ENTRIES:
                    urls = up.urls(args.feeds, args.memory_entries)
                    small = run_child("feedbot", urls, work / "memory-small", args, up)
                    runs.append((f"feedbot x{args.memory_entries}", small))
                urls = up.urls(args.memory_feeds, args.memory_entries)
                memory = run_child("feedbot", urls, work / "memory-large", args, up)
                runs.append((f"feedbot x{args.memory_entries}", memory))
            profile = None
            if args.profile_feeds:
                profile = work / "profile.txt"
                urls = up.urls(args.profile_feeds)
                run = run_child("feedbot", urls, work / "profile", args, up, profile=profile)
                runs.append(("feedbot+py-spy", run))
        print()
        print_table(runs)
        print_targets(pairs, (small, memory) if memory else None, args)
        if profile is not None:
            print()
            print_profile(profile, args.profile_phase)


if __name__ == "__main__":
    main()
