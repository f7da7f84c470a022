"""Retention and maintenance: prune old entries (leaving tombstones), old deliveries, optimise."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select

from feedbot.store import entries as store_entries
from feedbot.store import outbox
from feedbot.store.db import Database
from feedbot.store.schema import entries, tombstones

BATCH = 1000


@dataclass(frozen=True, slots=True)
class HousekeepingResult:
    entries_pruned: int
    deliveries_pruned: int
    tombstones_pruned: int


def prune_entries(conn: Connection, before: datetime, now: datetime) -> int:
    """Delete entries first seen before *before*; each leaves a tombstone so a feed that
    still carries it never brings it back as new."""
    rows = conn.execute(
        select(entries.c.upstream_id, entries.c.key)
        .where(entries.c.first_seen < before)
        .limit(BATCH)
    ).all()
    if not rows:
        return 0
    store_entries.add_tombstones(conn, "entry", [f"{r.upstream_id}:{r.key}" for r in rows], now)
    return store_entries.delete_entries(conn, [(r.upstream_id, r.key) for r in rows])


def prune_tombstones(conn: Connection, before: datetime) -> int:
    result = conn.execute(delete(tombstones).where(tombstones.c.deleted_at < before))
    return int(result.rowcount)


def run(
    db: Database, now: datetime, *, keep_entries: timedelta, keep_done: timedelta
) -> HousekeepingResult:
    """One housekeeping pass in short transactions, then optimise the database."""
    pruned = 0
    while True:
        with db.write() as conn:
            n = prune_entries(conn, now - keep_entries, now)
        pruned += n
        if n < BATCH:
            break
    with db.write() as conn:
        done = outbox.prune_done(conn, now - keep_done)
        # a tombstone outlives its entry long enough for every feed to have dropped it
        stones = prune_tombstones(conn, now - 4 * keep_entries)
    with db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA optimize")
        else:
            conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return HousekeepingResult(pruned, done, stones)
