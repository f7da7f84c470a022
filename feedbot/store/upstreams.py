"""Upstream feeds in the store: config sync, CLI management, claims with leases, poll state."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    Update,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row

from feedbot.config import UpstreamConfig
from feedbot.errors import StoreError
from feedbot.store.schema import upstreams


@dataclass(frozen=True, slots=True)
class StoredUpstream:
    id: int
    name: str
    url: str
    config_url: str
    topics: tuple[str, ...]
    interval_s: int | None
    enabled: bool
    headers: tuple[tuple[str, str], ...]
    backfill: str
    managed_by: str
    title: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    redirect_url: str | None
    redirect_count: int
    current_interval_s: int | None
    next_check: datetime
    lease_owner: str | None
    lease_until: datetime | None
    consecutive_failures: int
    last_attempt: datetime | None
    last_success: datetime | None
    last_error: str | None
    last_error_kind: str | None
    disabled_reason: str | None
    warning: str | None
    polls: int
    created_at: datetime


_FIELDS = [f.name for f in fields(StoredUpstream)]


def _row(row: Row[Any]) -> StoredUpstream:
    data = {name: getattr(row, name) for name in _FIELDS}
    data["topics"] = tuple(data["topics"])
    data["headers"] = tuple(sorted(dict(data["headers"]).items()))
    return StoredUpstream(**data)


@dataclass(frozen=True, slots=True)
class SyncResult:
    added: tuple[str, ...]
    updated: tuple[str, ...]
    disabled: tuple[str, ...]


def _config_values(cfg: UpstreamConfig) -> dict[str, Any]:
    return {
        "config_url": cfg.url,
        "topics": list(cfg.topics),
        "interval_s": int(cfg.interval.total_seconds()) if cfg.interval else None,
        "headers": dict(cfg.headers),
        "backfill": cfg.backfill,
    }


def sync_from_config(
    conn: Connection,
    configs: Sequence[UpstreamConfig],
    now: datetime,
    *,
    spread: timedelta = timedelta(minutes=5),
    rand: random.Random | None = None,
) -> SyncResult:
    """Make the store agree with ``[[upstream]]``.

    Precedence: the config owns the upstreams it names (its values overwrite the store's);
    upstreams added with ``feedbot feeds add`` are the store's own and left alone; a
    config-managed upstream that disappeared from the config is disabled, never deleted,
    so its entries and history stay. New upstreams get first polls spread over *spread*.
    """
    rand = rand or random.Random()
    existing = {r.name: r for r in conn.execute(select(upstreams)).all()}
    added, changed, disabled = [], [], []
    for cfg in configs:
        values = _config_values(cfg)
        row = existing.get(cfg.name)
        if row is None:
            offset = timedelta(seconds=rand.uniform(0, spread.total_seconds()))
            conn.execute(
                insert(upstreams).values(
                    name=cfg.name,
                    url=cfg.url,
                    enabled=cfg.enabled,
                    disabled_reason=None if cfg.enabled else BY_CONFIG[0],
                    managed_by="config",
                    next_check=now + offset,
                    created_at=now,
                    **values,
                )
            )
            added.append(cfg.name)
            continue
        current = {k: getattr(row, k) for k in values}
        toggle = _config_toggle(row, cfg, now)
        if row.managed_by != "config" or current != values or toggle:
            extra: dict[str, Any] = {"managed_by": "config"}
            if row.config_url != cfg.url:  # a new URL in the config; a followed redirect stays
                extra.update(
                    url=cfg.url,
                    etag=None,
                    last_modified=None,
                    body_hash=None,
                    redirect_url=None,
                    redirect_count=0,
                )
            conn.execute(
                update(upstreams)
                .where(upstreams.c.id == row.id)
                .values(**values, **extra, **toggle)
            )
            changed.append(cfg.name)
    names = {c.name for c in configs}
    for name, row in existing.items():
        if row.managed_by == "config" and name not in names and row.enabled:
            conn.execute(
                update(upstreams)
                .where(upstreams.c.id == row.id)
                .values(enabled=False, disabled_reason="removed from the config")
            )
            disabled.append(name)
    return SyncResult(tuple(added), tuple(changed), tuple(disabled))


BY_CONFIG = ("disabled in the config", "removed from the config")


def _config_toggle(row: Any, cfg: UpstreamConfig, now: datetime) -> dict[str, Any]:
    """``enabled = false`` in the config disables; ``true`` re-enables only what the config
    itself disabled. A feed disabled by 410 Gone or by repeated failures stays disabled
    until ``feedbot feeds enable NAME``."""
    if not cfg.enabled and row.enabled:
        return {"enabled": False, "disabled_reason": BY_CONFIG[0]}
    if cfg.enabled and not row.enabled and row.disabled_reason in BY_CONFIG:
        return {
            "enabled": True,
            "disabled_reason": None,
            "consecutive_failures": 0,
            "next_check": now,
        }
    return {}


def add(conn: Connection, cfg: UpstreamConfig, now: datetime) -> StoredUpstream:
    """Add an upstream managed by the store (``feedbot feeds add``)."""
    if conn.execute(select(upstreams.c.id).where(upstreams.c.name == cfg.name)).first():
        raise StoreError("an upstream with this name exists already", resource=cfg.name)
    conn.execute(
        insert(upstreams).values(
            name=cfg.name,
            url=cfg.url,
            enabled=cfg.enabled,
            managed_by="cli",
            next_check=now,
            created_at=now,
            **_config_values(cfg),
        )
    )
    found = get(conn, cfg.name)
    assert found is not None
    return found


def remove(conn: Connection, name: str) -> None:
    if conn.execute(delete(upstreams).where(upstreams.c.name == name)).rowcount == 0:
        raise StoreError("no such upstream", resource=name)


def set_enabled(conn: Connection, name: str, enabled: bool, now: datetime) -> None:
    values: dict[str, Any] = {"enabled": enabled}
    if enabled:
        values.update(disabled_reason=None, consecutive_failures=0, next_check=now)
    else:
        values.update(disabled_reason="disabled by hand")
    if (
        conn.execute(update(upstreams).where(upstreams.c.name == name).values(**values)).rowcount
        == 0
    ):
        raise StoreError("no such upstream", resource=name)


def get(conn: Connection, name: str) -> StoredUpstream | None:
    row = conn.execute(select(upstreams).where(upstreams.c.name == name)).first()
    return _row(row) if row else None


def get_by_id(conn: Connection, upstream_id: int) -> StoredUpstream | None:
    row = conn.execute(select(upstreams).where(upstreams.c.id == upstream_id)).first()
    return _row(row) if row else None


def list_all(conn: Connection) -> list[StoredUpstream]:
    return [_row(r) for r in conn.execute(select(upstreams).order_by(upstreams.c.name)).all()]


def next_due(conn: Connection) -> datetime | None:
    """The earliest next check of an enabled upstream (through the (enabled, next_check) index)."""
    value = conn.execute(
        select(func.min(upstreams.c.next_check)).where(upstreams.c.enabled.is_(True))
    ).scalar_one_or_none()
    return value if isinstance(value, datetime) else None


def claim_due(
    conn: Connection,
    now: datetime,
    *,
    owner: str,
    lease: timedelta,
    limit: int,
    names: Sequence[str] = (),
    include_not_due: bool = False,
    after_id: int | None = None,
) -> list[StoredUpstream]:
    """Claim up to *limit* due upstreams for *owner* until ``now + lease``.

    With *after_id* (a cycle over all or named upstreams, due or not), only ids above it
    are claimed, in id order, so a cycle visits each upstream once however many there are.

    A claim is a lease in the row: a crashed poller's claims expire by themselves and the
    feed is due again. ``FOR UPDATE SKIP LOCKED`` lets several processes share the work on
    PostgreSQL; on SQLite the write transaction (``BEGIN IMMEDIATE``) serialises claimers.
    """
    free = or_(upstreams.c.lease_until.is_(None), upstreams.c.lease_until <= now)
    cond = and_(upstreams.c.enabled.is_(True), free)
    if not include_not_due:
        cond = and_(cond, upstreams.c.next_check <= now)
    if names:
        cond = and_(cond, upstreams.c.name.in_(list(names)))
    order = (upstreams.c.next_check, upstreams.c.id)
    if after_id is not None:  # one pass over every upstream, in id order (keyset paging)
        cond = and_(cond, upstreams.c.id > after_id)
        order = (upstreams.c.id, upstreams.c.id)
    query = (
        select(upstreams)
        .where(cond)
        .order_by(*order)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = conn.execute(query).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    until = now + lease
    conn.execute(
        update(upstreams)
        .where(upstreams.c.id.in_(ids))
        .values(lease_owner=owner, lease_until=until)
    )
    return [replace(_row(r), lease_owner=owner, lease_until=until) for r in rows]


def save_state(conn: Connection, upstream_id: int, owner: str, values: dict[str, Any]) -> bool:
    """Write the poll outcome and release the lease, only if *owner* still holds it (fenced)."""
    params = {f"v_{name}": value for name, value in values.items()}
    params.update(b_id=upstream_id, b_owner=owner)
    result = conn.execute(_save_statement(tuple(sorted(values))), params)
    return result.rowcount == 1


@lru_cache(maxsize=64)
def _save_statement(columns: tuple[str, ...]) -> Update:
    """``save_state``'s UPDATE for one set of columns, built once: every poll writes one of
    a few sets, and building the statement (a bound parameter and a cache key per value)
    cost more CPU than running it."""
    return (
        update(upstreams)
        .where(upstreams.c.id == bindparam("b_id"), upstreams.c.lease_owner == bindparam("b_owner"))
        .values(
            {name: bindparam(f"v_{name}", type_=upstreams.c[name].type) for name in columns}
            | {"lease_owner": None, "lease_until": None}
        )
    )


def release(conn: Connection, upstream_id: int, owner: str) -> None:
    conn.execute(
        update(upstreams)
        .where(upstreams.c.id == upstream_id, upstreams.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )
