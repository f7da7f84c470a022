"""Entries seen in upstream feeds (relevant or not), story keys and tombstones."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)

from feedbot.store.schema import entries, story_keys, tombstones


@dataclass(frozen=True, slots=True)
class KnownEntry:
    key: str
    link: str | None
    title_key: str | None
    content_hash: str
    article_id: str | None


def known(conn: Connection, upstream_id: int, keys: Sequence[str]) -> dict[str, KnownEntry]:
    """The stored entries of this upstream among *keys* (one indexed query per 500 keys)."""
    out: dict[str, KnownEntry] = {}
    for i in range(0, len(keys), 500):
        chunk = list(keys[i : i + 500])
        rows = conn.execute(
            select(entries).where(entries.c.upstream_id == upstream_id, entries.c.key.in_(chunk))
        ).all()
        for r in rows:
            out[r.key] = KnownEntry(r.key, r.link, r.title_key, r.content_hash, r.article_id)
    return out


def count_for(conn: Connection, upstream_id: int) -> int:
    q = select(func.count()).select_from(entries).where(entries.c.upstream_id == upstream_id)
    return int(conn.execute(q).scalar_one())


def by_links_or_titles(
    conn: Connection, upstream_id: int, links: Sequence[str], title_keys: Sequence[str]
) -> list[KnownEntry]:
    """Stored entries of this upstream whose link or title key is among the given ones."""
    rows: list[Any] = []
    if links:
        rows += conn.execute(
            select(entries).where(
                entries.c.upstream_id == upstream_id, entries.c.link.in_(list(links))
            )
        ).all()
    if title_keys:
        rows += conn.execute(
            select(entries).where(
                entries.c.upstream_id == upstream_id, entries.c.title_key.in_(list(title_keys))
            )
        ).all()
    seen: dict[str, KnownEntry] = {}
    for r in rows:
        seen[r.key] = KnownEntry(r.key, r.link, r.title_key, r.content_hash, r.article_id)
    return list(seen.values())


def upsert(
    conn: Connection,
    upstream_id: int,
    key: str,
    *,
    link: str | None,
    title_key: str | None,
    content_hash: str,
    article_id: str | None,
    backfill: bool,
    now: datetime,
    existing: KnownEntry | None,
) -> None:
    if existing is None:
        conn.execute(
            insert(entries).values(
                upstream_id=upstream_id,
                key=key,
                link=link,
                title_key=title_key,
                content_hash=content_hash,
                article_id=article_id,
                backfill=backfill,
                first_seen=now,
                updated_at=now,
            )
        )
        return
    conn.execute(
        update(entries)
        .where(entries.c.upstream_id == upstream_id, entries.c.key == key)
        .values(
            link=link,
            title_key=title_key,
            content_hash=content_hash,
            article_id=article_id or existing.article_id,
            updated_at=now,
        )
    )


def insert_many(
    conn: Connection, upstream_id: int, rows: Sequence[dict[str, object]], now: datetime
) -> None:
    """Insert new entries in one executemany: each row has key, link, title_key,
    content_hash, article_id and backfill."""
    if rows:
        conn.execute(
            insert(entries),
            [{**r, "upstream_id": upstream_id, "first_seen": now, "updated_at": now} for r in rows],
        )


def rekey(conn: Connection, upstream_id: int, old_key: str, new_key: str) -> None:
    """A feed regenerated an entry's id: move the stored entry to the new key."""
    conn.execute(
        update(entries)
        .where(entries.c.upstream_id == upstream_id, entries.c.key == old_key)
        .values(key=new_key)
    )


def add_story_keys(
    conn: Connection, article_id: str, keys: Iterable[str], simhash: int, published: datetime
) -> None:
    """Index one story's keys; keys it already has are skipped."""
    rows = [{"key": k, "article_id": article_id} for k in set(keys)]
    if not rows:
        return
    present = {
        r.key
        for r in conn.execute(
            select(story_keys.c.key).where(
                story_keys.c.article_id == article_id,
                story_keys.c.key.in_([r["key"] for r in rows]),
            )
        )
    }
    fresh = [r["key"] for r in rows if r["key"] not in present]
    add_story_keys_many(conn, [(article_id, fresh, simhash, published)])


def add_story_keys_many(
    conn: Connection, stories: Sequence[tuple[str, Iterable[str], int, datetime]]
) -> None:
    """Index the keys of new stories, ``(article_id, keys, simhash, published)`` each, in
    one executemany (the stories hold no keys yet)."""
    rows = [
        {"key": k, "article_id": article_id, "published": published, "simhash": _signed(simhash)}
        for article_id, keys, simhash, published in stories
        for k in set(keys)
    ]
    if rows:
        conn.execute(insert(story_keys), rows)


def _signed(simhash: int) -> int:
    return simhash - (1 << 64) if simhash >= (1 << 63) else simhash  # fits BIGINT


def story_candidates(
    conn: Connection,
    exact: Sequence[str],
    near: Sequence[str],
    *,
    since: datetime,
    until: datetime,
    limit: int = 200,
) -> dict[str, tuple[set[str], int, datetime]]:
    """Articles sharing a key with new items, through the ``story_keys`` indexes.

    *exact* keys (canonical URL, title) match at any date; *near* keys (SimHash bands) only
    when published between *since* and *until* (the items' dates ± the dedup window, the
    only span where a near-duplicate counts anyway), so the candidate set stays small
    however large the store grows. Each candidate comes with the keys it shares, its stored
    SimHash (unsigned) and its publication time.
    """
    clauses: list[ColumnElement[bool]] = []
    if exact:
        clauses.append(story_keys.c.key.in_(list(set(exact))))
    if near:
        clauses.append(
            and_(
                story_keys.c.key.in_(list(set(near))), story_keys.c.published.between(since, until)
            )
        )
    if not clauses:
        return {}
    rows = conn.execute(
        select(
            story_keys.c.article_id, story_keys.c.key, story_keys.c.simhash, story_keys.c.published
        )
        .where(or_(*clauses))
        .limit(limit)
    ).all()
    out: dict[str, tuple[set[str], int, datetime]] = {}
    for r in rows:
        out.setdefault(r.article_id, (set(), r.simhash % (1 << 64), r.published))[0].add(r.key)
    return out


def is_tombstoned(conn: Connection, kind: str, keys: Sequence[str]) -> set[str]:
    if not keys:
        return set()
    rows = conn.execute(
        select(tombstones.c.key).where(tombstones.c.kind == kind, tombstones.c.key.in_(list(keys)))
    ).all()
    return {r.key for r in rows}


def add_tombstones(conn: Connection, kind: str, keys: Iterable[str], now: datetime) -> None:
    wanted = set(keys)
    fresh = wanted - is_tombstoned(conn, kind, list(wanted))
    if fresh:
        conn.execute(
            insert(tombstones), [{"kind": kind, "key": k, "deleted_at": now} for k in fresh]
        )


def delete_entries(conn: Connection, pairs: Sequence[tuple[int, str]]) -> int:
    if not pairs:
        return 0
    result = conn.execute(
        delete(entries).where(tuple_(entries.c.upstream_id, entries.c.key).in_(list(pairs)))
    )
    return int(result.rowcount)
