"""Where a SQLite WAL checkpoint runs, measured with two writer processes.

Run: ``.venv/bin/python bench/sqlite_writers.py [--transactions 300] [--cpu-ms 30] [--rounds 2]``

Two processes share one SQLite file through ``feedbot.store.db.Database``; each alternates
``--cpu-ms`` of pure CPU (a poll's parse and analysis) with one write transaction of 60
rows of 2.5 KB (a poll's entries and articles), ``--transactions`` times. Three ways to
checkpoint the WAL are compared, alternating, ``--rounds`` times:

- ``in commit``: SQLite's automatic checkpoint (1,000 pages), inside the ``COMMIT`` that
  crosses it, while the writer holds the write lock;
- ``after, same thread``: after the write lock is released, on the writer's own thread;
- ``after, own thread``: after the write lock is released, on a thread of its own
  (feedbot's way, ``store/db._Checkpointer``).

Each row gives the wall time of the slower process; with the CPU work alone, it would be
``transactions × cpu-ms`` (9 s with the defaults) on two free cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

MODES = ("in commit", "after, same thread", "after, own thread")


def _writer(path: str, mode: str, transactions: int, cpu_ms: float, out: object) -> None:
    from sqlalchemy import event

    import feedbot.store.db as db_module

    if mode == "in commit":
        db_module.CHECKPOINT_BYTES = 1 << 62  # never by feedbot, so only SQLite's own
    db = db_module.Database(f"sqlite:///{path}", apply_migrations=False)
    if mode == "in commit":

        @event.listens_for(db.engine, "connect")
        def _auto(dbapi_conn: object, _record: object) -> None:
            dbapi_conn.execute("PRAGMA wal_autocheckpoint = 1000")  # type: ignore[attr-defined]

    checkpoints = db._checkpoints
    assert checkpoints is not None
    if mode == "after, same thread":
        wal = f"{path}-wal"

        def after_write() -> None:
            if os.path.getsize(wal) >= db_module.CHECKPOINT_BYTES:
                checkpoints._checkpoint()

        checkpoints.after_write = after_write  # type: ignore[method-assign]
    blob = os.urandom(2500)
    started = time.perf_counter()
    for _ in range(transactions):
        until = time.process_time() + cpu_ms / 1000
        while time.process_time() < until:
            pass
        with db.write() as conn:
            conn.exec_driver_sql("INSERT INTO t (pid, x) VALUES (?, ?)", [(os.getpid(), blob)] * 60)
    out.put(time.perf_counter() - started)  # type: ignore[attr-defined]
    db.close()


def run(mode: str, transactions: int, cpu_ms: float) -> float:
    with tempfile.TemporaryDirectory(prefix="feedbot-writers-") as tmp:
        path = str(Path(tmp) / "w.sqlite3")
        setup = sqlite3.connect(path)
        setup.execute("PRAGMA journal_mode = WAL")
        setup.execute("CREATE TABLE t (pid INTEGER, x BLOB)")
        setup.commit()
        setup.close()
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_writer, args=(path, mode, transactions, cpu_ms, out))
            for _ in range(2)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        return max(out.get() for _ in procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=300)
    parser.add_argument("--cpu-ms", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            times[mode].append(run(mode, args.transactions, args.cpu_ms))
    floor = args.transactions * args.cpu_ms / 1000
    print(f"{args.transactions} transactions x 2 processes, {args.cpu_ms:g} ms CPU before each")
    print(f"{'checkpoint':22s} {'median s':>9s} {'runs':>20s} {'over CPU floor':>15s}")
    for mode in MODES:
        median = statistics.median(times[mode])
        runs = ", ".join(f"{t:.2f}" for t in times[mode])
        print(f"{mode:22s} {median:9.2f} {runs:>20s} {median - floor:14.2f}s")


if __name__ == "__main__":
    main()
