"""Daemon benchmark: the idle cost of ``feedbot run`` and its end-to-end alert latency.

    .venv/bin/python bench/daemon.py [--feeds 1000] [--hosts 253] [--minutes 10]
        [--sample-seconds 10] [--profile-seconds 0] [--entry-minutes 10]
        [--runs 10] [--interval 5s] [--fast-ticks 0.2s]
        [--skip-idle] [--skip-latency] [--workdir DIR]

Both parts run ``python -m feedbot.cli --config X run`` as a child process (bench/daemon_procs.py)
against a loopback world (bench/daemon_server.py, its own process): small upstream feeds over
127.0.0.2 .. 127.0.0.(hosts+1), a control endpoint that adds an item, and a webhook receiver.

- **Idle**: ``--feeds`` upstreams with production interval settings (nothing set under
  [poll] or [daemon]: ``min_interval`` 5m, adaptive intervals, default ticks, ``per_host`` 2).
  The feeds' entries are 10 minutes apart, so the adaptive interval is the minimum, 5 minutes.
  After the warm-up (every feed answered 200 once; from then on they answer 304) the daemon's
  CPU time (utime + stime of /proc/PID/stat) and RSS (VmRSS) are sampled every
  ``--sample-seconds`` for ``--minutes``. ``--profile-seconds N`` then records N seconds of
  the idle daemon with py-spy and prints where its CPU goes. ``--entry-minutes 2880`` makes
  the feeds adapt to the 24 h maximum, so the window measures the ticks alone.
- **Latency**: a few feeds polled at ``poll.min_interval = interval = --interval``; ``--runs``
  times, after a random pause an item naming Alibaba is added to one feed, and the time until
  the receiver gets its webhook message is measured, with its processing part (from the
  upstream request that served the item to the webhook POST); once with the default ticks,
  once with ``--fast-ticks`` (poll and deliver ticks), which shows the work without the waits.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon_procs import (
    Sample,
    feedbot_run,
    read_sample,
    wait_until,
    world_server,
    write_config,
)

from feedbot.config import DaemonConfig, parse_duration

CPU_TARGET_PERCENT = 1.0
FLAT_MIB = 1.0  # a fitted rise over the window below this is "flat"
# where an idle sample's CPU goes, by the first of these found in its stack (outermost first)
_STAGES = (
    ("poll: fetch (304)", "Fetcher."),
    ("poll: write-back", "Pipeline."),
    ("poll: claim", "Poller._claim"),
    ("poll: cycle", "Poller."),
    ("deliver tick", "deliver_tick"),
    ("publish tick", "publish_tick"),
    ("housekeeping tick", "housekeeping_tick"),
    ("scheduler", "apscheduler/"),
    ("web server", "waitress/"),
    ("main loop", "Daemon.run"),
)


def _mib(kib: float) -> float:
    return kib / 1024


def _slope_mib_per_hour(samples: list[Sample]) -> float:
    if len(samples) < 2:
        return 0.0
    xs = [(s.at - samples[0].at) / 3600 for s in samples]
    ys = [_mib(s.rss_kib) for s in samples]
    return statistics.linear_regression(xs, ys).slope


# ----------------------------------------------------------------------- idle
def idle(args: argparse.Namespace, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    server_args = ["--feeds", str(args.feeds), "--hosts", str(args.hosts)]
    poll = ""
    step = 10.0  # minutes between entries: an adaptive interval of 5 minutes
    if args.idle_min_interval:  # smoke runs only; the figures are for the production default
        step = 2 * parse_duration(args.idle_min_interval).total_seconds() / 60
        poll = f'min_interval = "{args.idle_min_interval}"'
    if args.entry_minutes:  # e.g. 2880: feeds adapt to max_interval, the window is ticks only
        step = args.entry_minutes
    server_args += ["--step-minutes", str(step)]
    with world_server(workdir, *server_args) as world:
        config = workdir / "config.toml"
        write_config(config, world, args.feeds, args.hosts, poll=poll)
        started = time.monotonic()
        with feedbot_run(config, workdir) as proc:
            print(
                f"idle: warming up (first polls of {args.feeds} feeds, spread over "
                f"{args.idle_min_interval or '5m'})",
                flush=True,
            )
            wait_until(
                lambda: world.stats()["feeds_served"] >= args.feeds,
                9 * 60,
                "every feed's first poll",
                proc,
            )
            time.sleep(args.settle)
            warm = time.monotonic() - started
            print(
                f"idle: warm after {warm:.0f} s; sampling every {args.sample_seconds:.0f} s "
                f"for {args.minutes:g} min",
                flush=True,
            )
            before = world.stats()
            samples = [read_sample(proc.pid)]
            end = samples[0].at + args.minutes * 60
            while (now := time.monotonic()) < end - 1e-3:
                time.sleep(min(args.sample_seconds, end - now))
                if proc.poll() is not None:
                    raise RuntimeError(f"feedbot run exited with {proc.returncode}")
                samples.append(read_sample(proc.pid))
            after = world.stats()
            profile = profile_idle(proc.pid, args.profile_seconds, workdir)
        code = proc.returncode
    print_idle(args, samples, before, after, warm, code)
    if profile:
        print(profile)


def print_idle(
    args: argparse.Namespace,
    samples: list[Sample],
    before: dict[str, Any],
    after: dict[str, Any],
    warm: float,
    code: int | None,
) -> None:
    first, last = samples[0], samples[-1]
    window = last.at - first.at
    cpu = last.cpu - first.cpu
    percent = 100 * cpu / window
    counts = Counter(after["counts"])
    counts.subtract(before["counts"])
    polls = sum(counts.values())
    per_feed = polls / args.feeds
    rss = [s.rss_kib for s in samples]
    slope = _slope_mib_per_hour(samples)
    rise = slope * window / 3600
    d = DaemonConfig()
    print()
    print(
        f"Idle `feedbot run`: {args.feeds} upstreams on {args.hosts} loopback addresses, "
        f"all answering 304"
    )
    if args.idle_min_interval:
        print(
            f"settings: SMOKE RUN with min_interval {args.idle_min_interval} (entries twice "
            "that apart); otherwise defaults"
        )
    elif args.entry_minutes:
        print(
            "settings: defaults ([poll] and [daemon] unset), but entries "
            f"{args.entry_minutes:g} min apart: adaptive interval min({args.entry_minutes / 2:g} "
            "min, max_interval 24h), so the window holds (almost) no polls: the ticks alone,"
        )
    else:
        print(
            "settings: defaults ([poll] and [daemon] unset): min_interval 5m, adaptive "
            "interval (entries 10 min apart -> 5 min),"
        )
    print(
        f"  workers 16, per_host 2, poll_tick {d.poll_tick.seconds}s, deliver_tick "
        f"{d.deliver_tick.seconds}s, publish_tick {d.publish_tick.seconds}s, publish_every "
        f"{d.publish_every.seconds // 60}m; one generic webhook, one published feed; SQLite"
    )
    print(f"warm-up {warm:.0f} s; window {window:.0f} s, {len(samples)} samples")
    print()
    rows = [
        ("CPU seconds in window", f"{cpu:.2f}"),
        ("CPU seconds per hour", f"{cpu / window * 3600:.1f}"),
        (
            "% of one core",
            f"{percent:.2f}  (target < {CPU_TARGET_PERCENT:g}: "
            f"{'PASS' if percent < CPU_TARGET_PERCENT else 'FAIL'})",
        ),
        ("RSS at start MiB", f"{_mib(rss[0]):.1f}"),
        ("RSS max MiB", f"{_mib(max(rss)):.1f}"),
        ("RSS at end MiB", f"{_mib(rss[-1]):.1f}"),
        (
            "RSS slope MiB/h",
            f"{slope:+.2f}  (fitted rise over the window {rise:+.2f} MiB: "
            f"{'flat' if rise < FLAT_MIB else 'RISING'})",
        ),
        (
            "polls in window",
            f"{polls}  ({' '.join(f'{k}:{v}' for k, v in sorted(counts.items()) if v)})",
        ),
        (
            "polls per feed",
            f"{per_feed:.2f}  (one per {window / per_feed / 60:.1f} min)" if polls else "0",
        ),
        ("CPU ms per poll", f"{1000 * cpu / polls:.1f}" if polls else "-"),
        ("daemon exit status", str(code)),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def profile_idle(pid: int, seconds: float, workdir: Path) -> str:
    """py-spy record of the running daemon, summarised by tick and by function."""
    if seconds <= 0:
        return ""
    out = workdir / "idle.pyspy.txt"
    cmd = [
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "100",
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.exists():
        return f"py-spy failed ({done.returncode}): {done.stderr.strip()[-500:]}"
    return summarise_profile(out, seconds)


def summarise_profile(path: Path, seconds: float) -> str:
    by_tick: Counter[str] = Counter()
    by_self: Counter[str] = Counter()
    by_cum: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        total += count
        frames = stack.split(";")
        tick = next((label for label, key in _STAGES if any(key in f for f in frames)), "other")
        by_tick[tick] += count
        by_self[frames[-1]] += count
        for f in set(frames):
            by_cum[f] += count
    lines = [
        "",
        f"py-spy record, {seconds:.0f} s at 100 Hz: {total} samples of threads it judged "
        "active (an upper bound: some blocking waits count; the /proc figures are exact)",
    ]
    lines.append("by stage: " + ", ".join(f"{k} {v}" for k, v in by_tick.most_common()))
    lines.append("top self:")
    lines += [f"  {v:>5}  {k}" for k, v in by_self.most_common(12)]
    lines.append("top cumulative:")
    lines += [f"  {v:>5}  {k}" for k, v in by_cum.most_common(25)]
    return "\n".join(lines)


# -------------------------------------------------------------------- latency
@dataclass(frozen=True, slots=True)
class LatencyRun:
    """One latency variant: its ticks, the timings of each added item, the poll period."""

    label: str
    poll_tick: float
    deliver_tick: float
    items: tuple[dict[str, float], ...]
    period: float
    hooks: int


def latency(args: argparse.Namespace, workdir: Path, label: str, ticks: str | None) -> LatencyRun:
    """``--runs`` items added at random moments to feeds polled at ``--interval``."""
    workdir.mkdir(parents=True, exist_ok=True)
    feeds = args.latency_feeds
    interval = parse_duration(args.interval).total_seconds()
    d = DaemonConfig()
    poll_tick, deliver_tick = d.poll_tick.total_seconds(), d.deliver_tick.total_seconds()
    extra = ""
    if ticks is not None:
        poll_tick = deliver_tick = parse_duration(ticks).total_seconds()
        extra = f'[daemon]\npoll_tick = "{ticks}"\ndeliver_tick = "{ticks}"\n'
    rng = random.Random(args.seed)
    with world_server(workdir, "--feeds", str(feeds), "--hosts", "1") as world:
        config = workdir / "config.toml"
        poll = f'min_interval = "{args.interval}"'
        write_config(config, world, feeds, 1, poll=poll, interval=args.interval, extra=extra)
        with feedbot_run(config, workdir) as proc:
            first = 3 * feeds
            wait_until(lambda: world.polls() >= first, 120, "the first polls", proc)
            polls_before, started = world.polls(), time.monotonic()
            titles = []
            for run in range(args.runs):
                time.sleep(rng.uniform(0, 2 * interval))
                title = world.add_item(rng.randrange(feeds))
                titles.append(title)
                wait_until(
                    functools.partial(world.hooked, title),
                    60 + 3 * interval,
                    f"the webhook message of run {run + 1}",
                    proc,
                )
            stats = world.stats()
            polls = world.polls() - polls_before
            elapsed = time.monotonic() - started
    print(f"latency ({label}): {args.runs} runs done", flush=True)
    items = tuple(stats["items"][t] for t in titles)
    period = elapsed * feeds / polls if polls else float("nan")
    return LatencyRun(label, poll_tick, deliver_tick, items, period, int(stats["hooks"]))


def print_latency(args: argparse.Namespace, runs: list[LatencyRun]) -> None:
    print()
    print(
        f"End-to-end latency: {args.latency_feeds} feeds on 127.0.0.2, poll.min_interval = "
        f'interval = "{args.interval}", {args.runs} items added at random moments'
    )
    print()
    head = f"{'ticks (poll/deliver)':<22} {'seconds':<32} {'min':>6} {'median':>6} {'max':>6}"
    print(head)
    print("-" * len(head))
    for run in runs:
        ticks = f"{run.label} {run.poll_tick:g}s/{run.deliver_tick:g}s"
        rows = (
            ("item added -> webhook received", [i["hooked"] - i["added"] for i in run.items]),
            ("item added -> upstream request", [i["served"] - i["added"] for i in run.items]),
            ("processing: request -> webhook", [i["hooked"] - i["served"] for i in run.items]),
        )
        for n, (label, xs) in enumerate(rows):
            print(
                f"{ticks if n == 0 else '':<22} {label:<32} {min(xs):>6.3f} "
                f"{statistics.median(xs):>6.3f} {max(xs):>6.3f}"
            )
        print(f"{'':<22} observed poll period per feed {run.period:.2f} s, {run.hooks} messages")
    default = runs[0]
    work = [i["hooked"] - i["served"] for i in default.items]
    # at 5 minutes the tick is small beside the interval: a feed is due at 300 s +-10 %
    # and polled at the first poll tick after that, so the mean wait for the next poll is
    # about half the period plus half a tick
    jitter = 0.1  # ScheduleBounds.jitter
    mean_wait = 300 * (1 + jitter**2 / 3) / 2 + default.poll_tick / 2
    worst = 300 * (1 + jitter) + default.poll_tick + max(work)
    print()
    print(
        f'model at the production "5m" with {default.label} ticks: mean ~ {mean_wait:.1f} s '
        f"wait + {statistics.median(work):.2f} s processing (median) = "
        f"{mean_wait + statistics.median(work):.0f} s; worst ~ {worst:.0f} s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=253, help="127.0.0.2 onwards (max 253)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=15.0, help="seconds after warm-up")
    parser.add_argument("--profile-seconds", type=float, default=0.0)
    parser.add_argument("--idle-min-interval", help="smoke runs only (default: production 5m)")
    parser.add_argument(
        "--entry-minutes",
        type=float,
        help="feed entries this far apart (default 10: polls every 5m)",
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--interval", default="5s")
    parser.add_argument("--latency-feeds", type=int, default=3)
    parser.add_argument(
        "--fast-ticks", default="0.2s", help="a second latency run with these ticks ('' = none)"
    )
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--workdir", type=Path, help="keep logs and stores here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="feedbot-daemon-bench-") as tmp:
        base = args.workdir or Path(tmp)
        if not args.skip_latency:
            runs = [latency(args, base / "latency", "default", None)]
            if args.fast_ticks:
                runs.append(latency(args, base / "latency-fast", "fast", args.fast_ticks))
            print_latency(args, runs)
        if not args.skip_idle:
            idle(args, base / "idle")


if __name__ == "__main__":
    main()
