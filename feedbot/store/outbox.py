"""The transactional outbox: delivery rows written with their article, claimed with leases.

Every state change after a claim is *fenced*: the claim bumps ``fence`` and the outcome is
written only ``WHERE id = ? AND fence = ?``, so a worker whose lease expired (and whose row
was re-claimed by another) cannot overwrite the newer outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select, update

from feedbot.store.dialect import insert_ignore
from feedbot.store.schema import deliveries, webhook_state

CHUNK = 500  # ids per IN list
PENDING, DONE, DEAD = "pending", "done", "dead"


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    id: str
    article_id: str
    webhook: str
    event: str
    status: str
    attempts: int
    next_attempt: datetime
    fence: int
    last_error: str | None
    last_status: int | None
    created_at: datetime
    done_at: datetime | None


def _row(r: Any) -> StoredDelivery:
    return StoredDelivery(
        r.id, r.article_id, r.webhook, r.event, r.status, r.attempts, r.next_attempt,
        r.fence, r.last_error, r.last_status, r.created_at, r.done_at,
    )  # fmt: skip


def enqueue(
    conn: Connection, article_id: str, webhooks: Sequence[str], event: str, now: datetime
) -> int:
    """One pending delivery per webhook; enqueueing the same (article, webhook, event) twice is a no-op."""
    rows = [
        {
            "id": str(uuid.uuid4()),
            "article_id": article_id,
            "webhook": w,
            "event": event,
            "status": PENDING,
            "attempts": 0,
            "next_attempt": now,
            "fence": 0,
            "created_at": now,
        }
        for w in webhooks
    ]
    return insert_ignore(conn, deliveries, rows, ("article_id", "webhook", "event"))


def claim(
    conn: Connection,
    now: datetime,
    *,
    owner: str,
    lease: timedelta,
    limit: int,
    webhooks: Sequence[str] = (),
) -> list[StoredDelivery]:
    """Claim due pending deliveries (oldest first) until ``now + lease``.

    One SELECT (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and one UPDATE per 500 rows; the
    claim bumps each row's fence.
    """
    free = or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now)
    cond = and_(deliveries.c.status == PENDING, deliveries.c.next_attempt <= now, free)
    if webhooks:
        cond = and_(cond, deliveries.c.webhook.in_(list(webhooks)))
    rows = conn.execute(
        select(deliveries)
        .where(cond)
        .order_by(deliveries.c.next_attempt, deliveries.c.created_at, deliveries.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    claimed = [_row(r) for r in rows]
    for start in range(0, len(claimed), CHUNK):
        ids = [d.id for d in claimed[start : start + CHUNK]]
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(ids))
            .values(lease_owner=owner, lease_until=now + lease, fence=deliveries.c.fence + 1)
        )
    return [replace(d, fence=d.fence + 1) for d in claimed]


def due_counts(conn: Connection, now: datetime, names: Sequence[str]) -> dict[str, int]:
    """Pending, due and unleased rows per webhook (what a claim could take now)."""
    if not names:
        return {}
    free = or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now)
    rows = conn.execute(
        select(deliveries.c.webhook, func.count())
        .where(
            and_(
                deliveries.c.status == PENDING,
                deliveries.c.next_attempt <= now,
                free,
                deliveries.c.webhook.in_(list(names)),
            )
        )
        .group_by(deliveries.c.webhook)
    ).all()
    return {name: int(count) for name, count in rows}


def _fenced(conn: Connection, d: StoredDelivery, values: dict[str, Any]) -> bool:
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.id == d.id, deliveries.c.fence == d.fence)
        .values(**values, lease_owner=None, lease_until=None)
    )
    return result.rowcount == 1


def mark_done(conn: Connection, d: StoredDelivery, now: datetime, status: int | None) -> bool:
    return _fenced(
        conn,
        d,
        {
            "status": DONE,
            "done_at": now,
            "attempts": d.attempts + 1,
            "last_status": status,
            "last_error": None,
        },
    )


def mark_done_many(
    conn: Connection, done: Sequence[tuple[StoredDelivery, int | None]], now: datetime
) -> int:
    """``mark_done`` for many rows in one statement; returns how many were still ours."""
    if not done:
        return 0
    stmt = (
        update(deliveries)
        .where(deliveries.c.id == bindparam("b_id"), deliveries.c.fence == bindparam("b_fence"))
        .values(
            status=DONE,
            done_at=now,
            attempts=bindparam("b_attempts"),
            last_status=bindparam("b_status"),
            last_error=None,
            lease_owner=None,
            lease_until=None,
        )
    )
    params = [
        {"b_id": d.id, "b_fence": d.fence, "b_attempts": d.attempts + 1, "b_status": status}
        for d, status in done
    ]
    if not conn.dialect.supports_sane_multi_rowcount:
        return sum(int(conn.execute(stmt, [p]).rowcount) for p in params)
    return int(conn.execute(stmt, params).rowcount)


def mark_retry(
    conn: Connection,
    d: StoredDelivery,
    next_attempt: datetime,
    error: str,
    status: int | None,
    *,
    count: bool = True,
) -> bool:
    """Schedule another attempt; a rate-limit wait (``count=False``) does not use up an attempt."""
    attempts = d.attempts + 1 if count else d.attempts
    return _fenced(
        conn,
        d,
        {
            "next_attempt": next_attempt,
            "attempts": attempts,
            "last_error": error,
            "last_status": status,
        },
    )


def mark_dead(
    conn: Connection, d: StoredDelivery, now: datetime, error: str, status: int | None
) -> bool:
    return _fenced(
        conn,
        d,
        {
            "status": DEAD,
            "done_at": now,
            "attempts": d.attempts + 1,
            "last_error": error,
            "last_status": status,
        },
    )


def release(conn: Connection, d: StoredDelivery) -> bool:
    """Give a claimed delivery back untouched (shutdown, or the webhook is throttled)."""
    return _fenced(conn, d, {})


def list_deliveries(
    conn: Connection, *, status: str | None = None, limit: int = 100
) -> list[StoredDelivery]:
    q = select(deliveries).order_by(deliveries.c.created_at.desc(), deliveries.c.id).limit(limit)
    if status:
        q = q.where(deliveries.c.status == status)
    return [_row(r) for r in conn.execute(q).all()]


def retry(conn: Connection, ids: Sequence[str], now: datetime, *, all_dead: bool = False) -> int:
    """Put dead (or any not-done) deliveries back in the queue with a fresh attempt budget."""
    cond = deliveries.c.status == DEAD if all_dead else deliveries.c.id.in_(list(ids))
    result = conn.execute(
        update(deliveries)
        .where(cond, deliveries.c.status != DONE)
        .values(
            status=PENDING,
            attempts=0,
            next_attempt=now,
            done_at=None,
            lease_owner=None,
            lease_until=None,
        )
    )
    return int(result.rowcount)


@dataclass(frozen=True, slots=True)
class OutboxDepth:
    webhook: str
    pending: int
    dead: int
    oldest_pending: datetime | None


def depth(conn: Connection) -> list[OutboxDepth]:
    """Pending and dead deliveries per webhook (webhooks with neither are absent), by name.

    Delivered rows, most of the table, are not read: the ``(status, next_attempt)`` index
    leads to the pending and dead ones.
    """
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


def set_webhook_state(conn: Connection, name: str, **values: Any) -> None:
    if (
        conn.execute(
            update(webhook_state).where(webhook_state.c.name == name).values(**values)
        ).rowcount
        == 0
    ):
        insert_ignore(conn, webhook_state, [{"name": name, **values}], ("name",))


def webhook_states(conn: Connection) -> dict[str, dict[str, Any]]:
    return {r.name: dict(r._mapping) for r in conn.execute(select(webhook_state)).all()}


def prune_done(conn: Connection, before: datetime) -> int:
    result = conn.execute(
        delete(deliveries).where(deliveries.c.status == DONE, deliveries.c.done_at < before)
    )
    return int(result.rowcount)
