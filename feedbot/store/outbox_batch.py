"""Set-at-a-time forms of outbox operations, for the delivery worker's hot path.

Same semantics as ``outbox.claim`` / ``outbox.mark_done`` and ``articles.get_article``,
but a constant number of statements per batch instead of one or two per row: a claim is
one SELECT (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) plus one UPDATE; successes are one
executemany of the fenced update; articles are read with two IN queries. ``due_counts``
tells how many rows a claim could take now, per webhook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, func, or_, select, update

from feedbot.models import StoredArticle
from feedbot.store import articles as store_articles
from feedbot.store.outbox import DONE, PENDING, StoredDelivery, _row
from feedbot.store.schema import articles, deliveries

CHUNK = 500  # ids per IN list


def claim(
    conn: Connection, now: datetime, *, owner: str, lease: timedelta, limit: int, webhook: str
) -> list[StoredDelivery]:
    """``outbox.claim`` for one webhook with a single UPDATE for all claimed rows."""
    free = or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now)
    rows = conn.execute(
        select(deliveries)
        .where(
            and_(
                deliveries.c.status == PENDING,
                deliveries.c.next_attempt <= now,
                free,
                deliveries.c.webhook == webhook,
            )
        )
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


def mark_done(
    conn: Connection, done: Sequence[tuple[StoredDelivery, int | None]], now: datetime
) -> int:
    """``outbox.mark_done`` for many rows; returns how many were still ours (fenced)."""
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


def get_articles(conn: Connection, ids: Sequence[str]) -> dict[str, StoredArticle]:
    """``articles.get_article`` for many ids at once; missing ids are absent."""
    unique = list(dict.fromkeys(ids))
    out: dict[str, StoredArticle] = {}
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        rows = conn.execute(select(articles).where(articles.c.id.in_(chunk))).all()
        related = store_articles._related(conn, [r.id for r in rows])
        for r in rows:
            out[r.id] = store_articles._to_stored(r, related.get(r.id, ()))
    return out


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
