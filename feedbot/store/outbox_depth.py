"""Outbox depth per webhook for the status page and metrics: pending and dead rows only.

``outbox.stats`` also counts delivered rows, which are most of the table (kept for
``notify.keep_done``); this reads only the ``pending`` and ``dead`` rows, through the
``deliveries(status, next_attempt)`` index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from feedbot.store.outbox import DEAD, PENDING
from feedbot.store.schema import deliveries


@dataclass(frozen=True, slots=True)
class OutboxDepth:
    webhook: str
    pending: int
    dead: int
    oldest_pending: datetime | None


def outbox_depth(conn: Connection) -> list[OutboxDepth]:
    """Pending and dead deliveries per webhook (webhooks with neither are absent), by name."""
    rows = conn.execute(
        select(
            deliveries.c.webhook,
            deliveries.c.status,
            func.count(),
            func.min(deliveries.c.created_at),
        )
        .where(deliveries.c.status.in_([PENDING, DEAD]))
        .group_by(deliveries.c.webhook, deliveries.c.status)
    ).all()
    acc: dict[str, dict[str, int]] = {}
    oldest: dict[str, datetime] = {}
    for webhook, status, count, first in rows:
        acc.setdefault(webhook, {PENDING: 0, DEAD: 0})[status] = int(count)
        if status == PENDING and first is not None:
            oldest[webhook] = first
    return [
        OutboxDepth(name, counts[PENDING], counts[DEAD], oldest.get(name))
        for name, counts in sorted(acc.items())
    ]
