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
from feedbot.store.bandindex import BandIndex
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
    one executemany (the stories hold no keys yet), and log the band keys among them in
    ``story_log``, one row a story, for the worker processes' mirrors (bandindex.py)."""
    rows = []
    logged = []  # each story's band keys once more, for the processes that mirror them
    for article_id, keys, simhash, published in stories:
        story = {"article_id": article_id, "published": published, "simhash": signed64(simhash)}
        written = set(keys)
        rows += [{"key": k, **story} for k in written]
        bands = sum(1 << i for i, k in enumerate(band_keys(simhash)) if k in written)
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
    (simhash unsigned), through the ``story_keys`` indexes.

    One query for every exact key of the batch, then one prepared, indexed select of band
    keys per item, filtered by date and by Hamming distance inside the database: a band key
    is shared by about one stored story in 256 of the window, so without the filter the
    rows sent back would grow with the store. An item that an exact match settles
    (``StoryQuery.settles``) gets no band select, unless the exact query hit its limit.
    With *index* (synced in this transaction), band keys are looked up there instead,
    for every item whose window it covers (``store/bandindex.py``).
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
            for article_id, simhash, published in index.near(
                q.bands, q.simhash, since, until, near_bits, limit
            ):
                out[i].setdefault(article_id, (simhash, published))
            continue
        near = _near_statement(conn.dialect.name, len(q.bands))
        params: dict[str, Any] = {f"k{n}": key for n, key in enumerate(q.bands)}
        params.update(
            since=since, until=until, simhash=signed64(q.simhash), bits=near_bits, limit=limit
        )
        for article_id, simhash, published in select_rows(conn, near, params):
            out[i].setdefault(article_id, (simhash % (1 << 64), published))
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
def _near_statement(dialect: str, bands: int) -> Select[tuple[str, int, datetime]]:
    """Built once per dialect and number of band keys (always ``BANDS``), so that
    SQLAlchemy compiles it once: one parameter per key (``k0``, ``k1``…), not an expanding
    list, whose SQL would be rendered again for every item."""
    return (
        select(*_CANDIDATE_COLUMNS)
        .where(
            story_keys.c.key.in_([bindparam(f"k{n}") for n in range(bands)]),
            story_keys.c.published.between(bindparam("since"), bindparam("until")),
            hamming(dialect, story_keys.c.simhash, bindparam("simhash", type_=BigInteger))
            <= bindparam("bits"),
        )
        .limit(bindparam("limit"))
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
