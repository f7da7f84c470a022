"""Story-level deduplication of one poll's relevant new entries, written in bulk.

A poll brings a few relevant entries at once (on a first poll, dozens). Each is compared
with the stories the store already holds *and* with the ones stored earlier in the same
batch, then every new story is written with a handful of bulk statements: one candidate
query for the whole batch, one insert each for articles, their topics and story keys.
Per entry, the store used to see five or six statements; that was most of a poll's cost
in the process that holds the write lock.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeAlias

from sqlalchemy import Connection, select

from feedbot.models import ArticleData
from feedbot.relevance.dedup import DEFAULT_WINDOW as DEDUP_WINDOW
from feedbot.relevance.dedup import (
    Candidate,
    StoryKeys,
    could_decide,
    decide,
    settled_by_exact_match,
    story_keys,
)
from feedbot.relevance.similarity import hamming
from feedbot.store import articles as store_articles
from feedbot.store import entries as store_entries
from feedbot.store.bandindex import BandIndex
from feedbot.store.dialect import lock_stories
from feedbot.store.entries import StoryQuery
from feedbot.store.schema import articles as articles_table

# A candidate that shares only a SimHash band is compared in full only when its hash is
# this close: unrelated texts sit ~32 bits apart, rewrites of one story 12-18 (docs/dedup.md).
NEAR_HAMMING = 20
CANDIDATES_PER_ITEM = 200
SKETCHES = 256  # sketches a process keeps by default (see SketchCache)


def key_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def exact_keys(keys: StoryKeys) -> list[str]:
    """Title and canonical-URL keys as stored in ``story_keys`` (digests fit the column)."""
    return [k for k in _title_and_url_keys(keys) if k]


def _title_and_url_keys(keys: StoryKeys) -> tuple[str | None, str | None]:
    title = f"t:{key_digest(keys.title_key)}" if keys.title_key else None
    return title, f"u:{key_digest(keys.url_key)}" if keys.url_key else None


def _query(keys: StoryKeys, published: datetime) -> StoryQuery:
    """What the store is asked for one new item: its exact keys, and its bands unless an
    exact match settles it (``dedup.settled_by_exact_match``)."""
    by_url, by_title = settled_by_exact_match(keys)
    title, url = _title_and_url_keys(keys)
    return StoryQuery(
        tuple(k for k in (title, url) if k), keys.bands, keys.simhash, published,
        settles=(url,) if by_url and url else (),
        settles_in_window=(title,) if by_title and title else (),
    )  # fmt: skip


def story_index_keys(keys: StoryKeys) -> list[str]:
    """Every key stored for a story: the exact ones and its SimHash bands."""
    return exact_keys(keys) + list(keys.bands)


class SketchCache:
    """Story keys of recently stored articles, so candidates need not be rebuilt from text.

    Bounded (LRU): a candidate is most often a story this process stored recently; a miss
    reads the story's stored sketch (or, for a story stored before sketches existed,
    rebuilds its keys from its text). Shingles are kept as compact arrays, not sets: a
    sketch read from the store goes in as the arrays it was unpacked to (``put_compact``).
    """

    def __init__(self, size: int = SKETCHES) -> None:
        self.size = size
        self._items: OrderedDict[str, Compact] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, article_id: str, keys: StoryKeys) -> None:
        self.put_compact(article_id, compact(keys))

    def put_compact(self, article_id: str, item: Compact) -> None:
        with self._lock:
            self._items[article_id] = item
            self._items.move_to_end(article_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get_many(self, article_ids: Iterable[str]) -> dict[str, Compact]:
        """The cached ones among *article_ids* (one lock for all of them)."""
        out: dict[str, Compact] = {}
        with self._lock:
            items = self._items
            for article_id in article_ids:
                item = items.get(article_id)
                if item is not None:
                    items.move_to_end(article_id)
                    out[article_id] = item
        return out

    def drop(self, article_id: str) -> None:
        with self._lock:
            self._items.pop(article_id, None)


# Story keys without their shingles and vocabulary, then those as arrays of 32-bit ids
# (far smaller than sets of ints), which ``expand`` makes into sets again for comparing.
Compact: TypeAlias = "tuple[StoryKeys, array[int], array[int]]"


def compact(keys: StoryKeys) -> Compact:
    head = replace(keys, shingles=frozenset(), vocab=frozenset())
    return head, array("I", keys.shingles), array("I", keys.vocab)


def expand(item: Compact) -> StoryKeys:
    head, shingles, vocab = item
    return StoryKeys(
        url_key=head.url_key, title_key=head.title_key, simhash=head.simhash,
        bands=head.bands, shingles=frozenset(shingles), names=head.names,
        vocab=frozenset(vocab),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class NewItem:
    """A relevant entry that its upstream has not delivered before, as the article it
    becomes if it is a new story."""

    article: ArticleData
    keys: StoryKeys
    topics: tuple[str, ...]
    terms: tuple[str, ...]
    sketch: bytes  # ``pack_sketch(keys)``, made before the write lock (``ingest.analyse``)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The story an item belongs to: its own new article, or the one it duplicates."""

    article_id: str
    duplicate: bool
    reason: str


class StoryWriter:
    """Deduplicates and stores new items; one instance is shared by every poll worker."""

    def __init__(self, sketches: int = SKETCHES) -> None:
        self.sketches = SketchCache(sketches)
        self.bands = BandIndex()  # band keys, mirrored in memory

    def forget_uncommitted(self) -> None:
        """After a transaction that ``add`` ran in failed: what it read of other polls'
        uncommitted stories (within its group commit) must not outlive it."""
        self.bands.reset()

    def add(
        self, conn: Connection, items: Sequence[NewItem], now: datetime, *, upstream_id: int
    ) -> list[Outcome]:
        """Decide each item in order (earlier items of the batch count as stored), then
        write the new stories. Serialised across processes by the story lock."""
        if not items:
            return []
        lock_stories(conn)
        self.bands.sync(conn, now)
        wanted = [(i.keys, i.article.published) for i in items]
        stored = self.candidates_many(conn, wanted, bands=self.bands)
        batch: list[Candidate] = []  # new stories of this batch, as candidates
        outcomes: list[Outcome] = []
        fresh: list[NewItem] = []
        for item, found in zip(items, stored, strict=True):
            article = item.article
            near = [c for c in batch if _shares_key(item.keys, c.keys)]
            decision = decide(item.keys, article.published, found + near, window=DEDUP_WINDOW)
            if decision.duplicate_of is not None:
                outcomes.append(Outcome(decision.duplicate_of, True, decision.reason))
                continue
            outcomes.append(Outcome(article.id, False, decision.reason))
            batch.append(Candidate(article.id, item.keys, article.published))
            fresh.append(item)
        changes = store_articles.upsert_articles(
            conn, [(i.article, i.topics, i.terms) for i in fresh], now, upstream_id=upstream_id
        )
        added = [i for i, change in zip(fresh, changes, strict=True) if change == "added"]
        store_entries.add_sketches(conn, [(i.article.id, i.sketch) for i in added])
        store_entries.add_story_keys_many(conn, [
            (i.article.id, story_index_keys(i.keys), i.keys.simhash, i.article.published)
            for i in added
        ])  # fmt: skip
        for item, change in zip(fresh, changes, strict=True):
            if change != "added":  # an article kept from before (its entry was pruned)
                store_entries.add_story_keys(
                    conn, item.article.id, story_index_keys(item.keys), item.keys.simhash,
                    item.article.published,
                )  # fmt: skip
            self.sketches.put(item.article.id, item.keys)
        return outcomes

    def candidates_many(
        self,
        conn: Connection,
        wanted: Sequence[tuple[StoryKeys, datetime]],
        *,
        bands: BandIndex | None = None,
    ) -> list[list[Candidate]]:
        """Stored stories that could be each item's story: exact-key matches, and band
        matches within the window whose SimHash is within ``NEAR_HAMMING``, that
        ``could_decide`` keeps, judged on their compact keys (from the cache, a stored
        sketch or their text). Only those are made into sets: most band candidates share a
        band and little text. *bands*, synced in this transaction, answers the band lookups
        it covers; the others read ``story_log``."""
        found = store_entries.story_candidates(
            conn,
            [_query(keys, published) for keys, published in wanted],
            window=DEDUP_WINDOW,
            near_bits=NEAR_HAMMING,
            limit=CANDIDATES_PER_ITEM,
            index=bands,
        )
        known = self._compact_of(conn, sorted({a for per_item in found for a in per_item}))
        expanded: dict[str, StoryKeys] = {}
        out: list[list[Candidate]] = []
        for (keys, _), per_item in zip(wanted, found, strict=True):
            kept = []
            for a, (_, published) in per_item.items():
                item = known.get(a)
                if item is None:
                    continue
                head, shingles, _ = item
                if not could_decide(keys, head.url_key, head.title_key, head.bands, shingles):
                    continue
                full = expanded.get(a)
                if full is None:
                    full = expanded[a] = expand(item)
                kept.append(Candidate(a, full, published))
            out.append(kept)
        return out

    def candidates(self, conn: Connection, keys: StoryKeys, published: datetime) -> list[Candidate]:
        """``candidates_many`` for one item."""
        return self.candidates_many(conn, [(keys, published)])[0]

    def _compact_of(self, conn: Connection, article_ids: Sequence[str]) -> dict[str, Compact]:
        """Candidates' compact keys: from the cache, else their stored sketch, else their
        text."""
        out = self.sketches.get_many(article_ids)
        missing = [a for a in article_ids if a not in out]
        if not missing:
            return out
        for article_id, packed in store_entries.get_sketches(conn, missing).items():
            item = unpack_compact(packed)
            if item is not None:
                out[article_id] = item
                self.sketches.put_compact(article_id, item)
        rebuild = [a for a in missing if a not in out]  # stored before sketches existed
        if rebuild:
            rows = conn.execute(
                select(
                    articles_table.c.id,
                    articles_table.c.title,
                    articles_table.c.summary,
                    articles_table.c.link,
                ).where(articles_table.c.id.in_(rebuild))
            ).all()
            for r in rows:
                out[r.id] = compact(story_keys(r.title, r.summary, r.link))
                self.sketches.put_compact(r.id, out[r.id])
        return out


_SKETCH_VERSION = b"\x01"


def pack_sketch(keys: StoryKeys) -> bytes:
    """*keys* as bytes: a version byte, a length-prefixed JSON head (URL and title keys,
    SimHash, bands, names, shingle count), then shingles and vocabulary as little-endian
    32-bit ids. About a quarter of the size of the same in JSON, and fast to read."""
    head = json.dumps(
        [keys.url_key, keys.title_key, keys.simhash, keys.bands, sorted(keys.names),
         len(keys.shingles)],
        ensure_ascii=False,
    ).encode("utf-8")  # fmt: skip
    ids = array("I", sorted(keys.shingles))
    ids.extend(sorted(keys.vocab))
    if sys.byteorder == "big":
        ids.byteswap()
    return _SKETCH_VERSION + struct.pack("<I", len(head)) + head + ids.tobytes()


def unpack_sketch(packed: bytes) -> StoryKeys | None:
    """The keys ``pack_sketch`` wrote, or None for bytes it did not write."""
    item = unpack_compact(packed)
    return None if item is None else expand(item)


def unpack_compact(packed: bytes) -> Compact | None:
    """``unpack_sketch``, with shingles and vocabulary left as the arrays they are stored as."""
    try:
        if packed[:1] != _SKETCH_VERSION:
            return None
        (size,) = struct.unpack_from("<I", packed, 1)
        url_key, title_key, simhash, bands, names, count = json.loads(packed[5 : 5 + size])
        ids = array("I")
        ids.frombytes(packed[5 + size :])
    except (ValueError, struct.error, TypeError):
        return None
    if sys.byteorder == "big":
        ids.byteswap()
    head = StoryKeys(
        url_key=url_key, title_key=title_key, simhash=simhash, bands=tuple(bands),
        shingles=frozenset(), names=frozenset(names),
    )  # fmt: skip
    return head, ids[:count], ids[count:]


def _shares_key(a: StoryKeys, b: StoryKeys) -> bool:
    """Would the store's index have offered *b* as a candidate for *a*?"""
    if a.url_key and a.url_key == b.url_key:
        return True
    if a.title_key and a.title_key == b.title_key:
        return True
    return not set(a.bands).isdisjoint(b.bands) and hamming(a.simhash, b.simhash) <= NEAR_HAMMING
