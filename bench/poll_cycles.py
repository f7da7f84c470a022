"""CPU per 304 poll when cycles are as small as a daemon tick's.

    .venv/bin/python bench/poll_cycles.py [--feeds 1000] [--cycle 17] [--rounds 3]

An idle daemon polls about a dozen due feeds per tick (1,000 feeds every 5 minutes, a tick
every 5 seconds), so what a cycle costs beside its fetches counts as much as the fetches.
This runs in one process, without the scheduler's waits, so it shows that cost with far
less noise than ``bench/daemon.py`` (whose idle figure moved by a third between runs):

- the upstream is ``bench/poll_server.py`` (its own process) with ``--feeds`` 5-entry feeds
  over 32 loopback addresses and no added latency;
- feedbot polls every feed once (so each has an ETag), then ``--rounds`` times polls them
  all again in cycles of ``--cycle`` named feeds (``Poller.run_cycle``), each answered 304;
- each round prints the CPU time of this process (every thread) per poll.

To compare two versions, run this script with each one's virtualenv, alternately.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from poll import upstream_server
from poll_workers import _feedbot_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--cycle", type=int, default=17, help="feeds per cycle")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    from feedbot.app import App

    with tempfile.TemporaryDirectory(prefix="feedbot-cycles-") as tmp:
        work = Path(tmp)
        with upstream_server(args.feeds, 32, 0, work / "server.log") as upstream:
            config = _feedbot_config(upstream.urls(args.feeds, entries=5), work, 16, 64, 2)
            names = [u.name for u in config.upstream]
            app = App(config)
            try:
                app.sync_upstreams()
                first = app.poller.run_cycle(include_not_due=True).by_outcome
                print(f"{args.feeds} feeds polled once: {dict(first)}; cycles of {args.cycle}")
                print(f"{'round':>5}  {'polls':>6}  {'CPU s':>6}  {'ms per poll':>11}  outcomes")
                for n in range(1, args.rounds + 1):
                    outcomes: dict[str, int] = {}
                    cpu = time.process_time()
                    for i in range(0, len(names), args.cycle):
                        result = app.poller.run_cycle(
                            names=names[i : i + args.cycle], include_not_due=True
                        )
                        for outcome, count in result.by_outcome.items():
                            outcomes[outcome] = outcomes.get(outcome, 0) + count
                    cpu = time.process_time() - cpu
                    polls = sum(outcomes.values())
                    print(
                        f"{n:>5}  {polls:>6}  {cpu:>6.2f}  {cpu / polls * 1000:>11.2f}  {outcomes}"
                    )
            finally:
                app.close()


if __name__ == "__main__":
    main()
