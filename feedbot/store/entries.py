"""Entries seen in upstream feeds (relevant or not), story keys and tombstones."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Select,
    bindparam,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)

from feedbot.relevance.similarity import band_keys
from feedbot.store.bandindex import BandIndex, logged_bands
from feedbot.store.dialect import hamming, signed64
from feedbot.store.direct import insert_rows, select_rows
from feedbot.store.schema import entries, story_keys, story_log, story_sketches, tombstones


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
        rows = conn.execute(_KNOWN, {"upstream_id": upstream_id, "keys": chunk}).all()
        for r in rows:
            out[r.key] = KnownEntry(r.key, r.link, r.title_key, r.content_hash, r.article_id)
    return out


# Statements that every poll runs are built once: building one costs more than running it
# (about 90 µs of 150 for 50 keys), and SQLAlchemy's cache still renders the expanding list.
_KNOWN = select(entries).where(
    entries.c.upstream_id == bindparam("upstream_id"),
    entries.c.key.in_(bindparam("keys", expanding=True)),
)


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
    insert_rows(
        conn,
        entries,
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
    """Index one story's keys; keys it already has are skipped (its exact keys in
    ``story_keys``, its band keys in ``story_log``)."""
    wanted = set(keys)
    if not wanted:
        return
    bands = set(band_keys(simhash))
    exact = wanted - bands
    present = set()
    if exact:
        present = set(
            conn.execute(
                select(story_keys.c.key).where(
                    story_keys.c.article_id == article_id, story_keys.c.key.in_(list(exact))
                )
            ).scalars()
        )
    if wanted & bands:
        logged = conn.execute(
            select(story_log.c.simhash, story_log.c.bands).where(
                story_log.c.article_id == article_id
            )
        )
        present.update(k for h, mask in logged for k in logged_bands(h, mask))
    fresh = [k for k in wanted if k not in present]
    if fresh:
        add_story_keys_many(conn, [(article_id, fresh, simhash, published)])


def add_story_keys_many(
    conn: Connection, stories: Sequence[tuple[str, Iterable[str], int, datetime]]
) -> None:
    """Index the keys of new stories, ``(article_id, keys, simhash, published)`` each (the
    stories hold none of them yet): exact keys (title, canonical URL) in ``story_keys``,
    one executemany; the SimHash band keys among them in ``story_log``, one row a story
    with a bit for each band, which every process mirrors in memory (bandindex.py)."""
    rows = []
    logged = []
    for article_id, keys, simhash, published in stories:
        story = {"article_id": article_id, "published": published, "simhash": signed64(simhash)}
        written = set(keys)
        bands = 0
        for i, key in enumerate(band_keys(simhash)):
            if key in written:
                bands |= 1 << i
                written.discard(key)
        rows += [{"key": k, **story} for k in written]
        if bands:
            logged.append({**story, "bands": bands})
    insert_rows(conn, story_keys, rows)
    insert_rows(conn, story_log, logged)


def add_sketches(conn: Connection, sketches: Sequence[tuple[str, bytes]]) -> None:
    """Store the packed comparison keys of new stories, ``(article_id, sketch)`` each."""
    insert_rows(conn, story_sketches, [{"article_id": a, "sketch": s} for a, s in sketches])


def get_sketches(conn: Connection, article_ids: Sequence[str]) -> dict[str, bytes]:
    """The packed comparison keys of stored stories (older stories may have none)."""
    out: dict[str, bytes] = {}
    for i in range(0, len(article_ids), 500):
        chunk = list(article_ids[i : i + 500])
        rows = conn.execute(_SKETCHES, {"ids": chunk})
        out.update((r.article_id, bytes(r.sketch)) for r in rows)
    return out


_SKETCHES = select(story_sketches).where(
    story_sketches.c.article_id.in_(bindparam("ids", expanding=True))
)


@dataclass(frozen=True, slots=True)
class StoryQuery:
    """What one new item looks for: stories sharing an exact key (canonical URL, title) at
    any date, or a SimHash band key within ``published ± window`` and a hash within
    ``near_bits`` of its own."""

    exact: tuple[str, ...]
    bands: tuple[str, ...]
    simhash: int
    published: datetime
    # exact keys whose match settles the item, so that its band keys need not be looked
    # up: at any date, or within the window (see ``dedup.settled_by_exact_match``)
    settles: tuple[str, ...] = ()
    settles_in_window: tuple[str, ...] = ()


def story_candidates(
    conn: Connection,
    queries: Sequence[StoryQuery],
    *,
    window: timedelta,
    near_bits: int,
    limit: int = 200,
    index: BandIndex | None = None,
) -> list[dict[str, tuple[int, datetime]]]:
    """For each query, the stored stories worth comparing: ``{article_id: (simhash, published)}``
    (simhash unsigned).

    One query for every exact key of the batch (``story_keys``). Then, per item, the
    stories sharing one of its band keys within the window whose SimHash is within
    *near_bits* of its own: from *index* (synced in this transaction) for every window it
    covers, else from ``story_log``, the window's stories filtered by Hamming distance
    inside the database and by shared band here. An item that an exact match settles
    (``StoryQuery.settles``) gets no band lookup, unless the exact query hit its limit.
    """
    out: list[dict[str, tuple[int, datetime]]] = [{} for _ in queries]
    settled = [False] * len(queries)
    wanted: dict[str, list[int]] = {}
    for i, q in enumerate(queries):
        for key in q.exact:
            wanted.setdefault(key, []).append(i)
    if wanted:
        cap = limit * len(queries)
        rows = conn.execute(_EXACT, {"keys": list(wanted), "limit": cap}).all()
        complete = len(rows) < cap  # else a settling match might be among those left out
        for r in rows:
            for i in wanted[r.key]:
                q = queries[i]
                out[i][r.article_id] = (r.simhash % (1 << 64), r.published)
                settled[i] = settled[i] or (complete and _settles(q, r.key, r.published, window))
    for i, q in enumerate(queries):
        if not q.bands or settled[i]:
            continue
        since, until = q.published - window, q.published + window
        if index is not None and index.covers(conn, since):
            near = index.near(q.bands, q.simhash, since, until, near_bits, limit)
        else:
            near = _logged_near(conn, q, since, until, near_bits, limit)
        for article_id, simhash, published in near:
            out[i].setdefault(article_id, (simhash, published))
    return out


def _logged_near(
    conn: Connection, q: StoryQuery, since: datetime, until: datetime, bits: int, limit: int
) -> list[tuple[str, int, datetime]]:
    """``BandIndex.near`` read from ``story_log``: the stories of the window within *bits*
    of the item's hash (filtered in the database), that share one of its band keys."""
    params = {"since": since, "until": until, "simhash": signed64(q.simhash), "bits": bits}
    wanted = set(q.bands)
    out = []
    statement = _logged_near_statement(conn.dialect.name)
    for article_id, simhash, published, mask in select_rows(conn, statement, params):
        if not wanted.isdisjoint(logged_bands(simhash, mask)):
            out.append((article_id, simhash % (1 << 64), published))
            if len(out) >= limit:
                break
    return out


def _settles(query: StoryQuery, key: str, published: datetime, window: timedelta) -> bool:
    """Does a stored story found by its exact *key* settle *query*'s item?"""
    if key in query.settles:
        return True
    return key in query.settles_in_window and abs(published - query.published) <= window


_CANDIDATE_COLUMNS = (story_keys.c.article_id, story_keys.c.simhash, story_keys.c.published)
_EXACT = (
    select(*_CANDIDATE_COLUMNS, story_keys.c.key)
    .where(story_keys.c.key.in_(bindparam("keys", expanding=True)))
    .limit(bindparam("limit"))
)


@cache
def _logged_near_statement(dialect: str) -> Select[tuple[str, int, datetime, int]]:
    """Built once per dialect, so that SQLAlchemy compiles it once."""
    return select(
        story_log.c.article_id, story_log.c.simhash, story_log.c.published, story_log.c.bands
    ).where(
        story_log.c.published.between(bindparam("since"), bindparam("until")),
        hamming(dialect, story_log.c.simhash, bindparam("simhash", type_=BigInteger))
        <= bindparam("bits"),
    )


def is_tombstoned(conn: Connection, kind: str, keys: Sequence[str]) -> set[str]:
    if not keys:
        return set()
    rows = conn.execute(_TOMBSTONED, {"kind": kind, "keys": list(keys)}).all()
    return {r.key for r in rows}


_TOMBSTONED = select(tombstones.c.key).where(
    tombstones.c.kind == bindparam("kind"),
    tombstones.c.key.in_(bindparam("keys", expanding=True)),
)


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
