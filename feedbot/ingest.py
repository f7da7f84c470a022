"""From a parsed feed to stored entries, articles and outbox rows.

Two halves, so that no CPU-heavy work runs while a write transaction (and on SQLite the
database's write lock) is held:

- :func:`analyse` is pure: each entry's hash, matched topics and story keys. The poller runs
  it before opening the transaction.
- :class:`Ingest` writes: inside one transaction it compares with what the store knows,
  guards against GUID churn, deduplicates new stories against indexed candidates, and
  writes entries, articles, other reports and deliveries.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import Connection, select

from feedbot.config import WebhookConfig
from feedbot.models import ArticleData, Origin
from feedbot.notify.routing import NEW, UPDATED, wanted_by
from feedbot.poll.feeddata import EntryData, FeedData
from feedbot.relevance.dedup import DEFAULT_WINDOW as DEDUP_WINDOW
from feedbot.relevance.dedup import (
    Candidate,
    StoryKeys,
    churn_check,
    churn_index,
    decide,
    normalize_title,
    story_keys,
)
from feedbot.relevance.similarity import hamming
from feedbot.relevance.topics import Matcher, MatchInput
from feedbot.store import articles as store_articles
from feedbot.store import entries as store_entries
from feedbot.store import outbox
from feedbot.store.dialect import lock_stories
from feedbot.store.schema import articles as articles_table
from feedbot.store.upstreams import StoredUpstream

log = logging.getLogger(__name__)

# A candidate that shares only a SimHash band is compared in full only when its hash is
# this close: unrelated texts sit ~32 bits apart, rewrites of one story 12-18 (docs/dedup.md).
NEAR_HAMMING = 20


class SketchCache:
    """Story keys of recently stored articles, so candidates need not be rebuilt from text.

    Bounded (LRU): a candidate is almost always a story stored in the last few days by this
    very process; a miss (after a restart) rebuilds the keys from the stored text. Shingles
    are kept as compact arrays, not sets, to hold thousands in a few megabytes.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[StoryKeys, array[int], array[int]]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, article_id: str, keys: StoryKeys) -> None:
        compact = replace(keys, shingles=frozenset(), vocab=frozenset())
        item = (compact, array("I", keys.shingles), array("I", keys.vocab))
        with self._lock:
            self._items[article_id] = item
            self._items.move_to_end(article_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, article_id: str) -> StoryKeys | None:
        with self._lock:
            item = self._items.get(article_id)
            if item is not None:
                self._items.move_to_end(article_id)
        if item is None:
            return None
        compact, shingles, vocab = item
        return replace(compact, shingles=frozenset(shingles), vocab=frozenset(vocab))

    def drop(self, article_id: str) -> None:
        with self._lock:
            self._items.pop(article_id, None)


@dataclass(frozen=True, slots=True)
class EntryPlan:
    """What :func:`analyse` found out about one entry, before touching the store."""

    entry: EntryData
    digest: str
    topics: tuple[str, ...]
    terms: tuple[str, ...]
    title_key: str | None
    keys: StoryKeys | None  # story keys, for relevant entries only


@dataclass(slots=True)
class Counts:
    new: int = 0
    updated: int = 0
    duplicates: int = 0
    irrelevant: int = 0
    backfill: int = 0
    rekeyed: int = 0
    announced: int = 0


def entry_hash(e: EntryData) -> str:
    blob = "\x1f".join((e.title, e.summary, e.content, e.link or "", ",".join(e.categories)))
    return "v1:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


def key_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def exact_keys(keys: StoryKeys) -> list[str]:
    """Title and canonical-URL keys as stored in ``story_keys`` (digests fit the column)."""
    out = [f"t:{key_digest(keys.title_key)}"] if keys.title_key else []
    if keys.url_key:
        out.append(f"u:{key_digest(keys.url_key)}")
    return out


def story_index_keys(keys: StoryKeys) -> list[str]:
    """Every key stored for a story: the exact ones and its SimHash bands."""
    return exact_keys(keys) + list(keys.bands)


def backfill_allows(policy: str, position: int, published: datetime | None) -> bool:
    """On a first poll, may the entry at *position* (0 = newest) be announced?"""
    if policy.startswith("latest:"):
        return position < int(policy.split(":", 1)[1])
    if policy.startswith("since:"):
        since = datetime.fromisoformat(policy.split(":", 1)[1]).replace(tzinfo=UTC)
        return published is not None and published >= since
    return False


def unique_entries(entries: Sequence[EntryData]) -> list[EntryData]:
    """The first occurrence of each key (feeds do repeat guids)."""
    seen: set[str] = set()
    out = []
    for e in entries:
        if e.key not in seen:
            seen.add(e.key)
            out.append(e)
    return out


def analyse(feed: FeedData, matcher: Matcher, upstream_topics: Sequence[str]) -> list[EntryPlan]:
    """Pure: hash, topics (limited to the upstream's when it names some) and story keys."""
    plans = []
    for e in unique_entries(feed.entries):
        match = matcher.match(MatchInput(e.title, e.summary, e.content, e.categories, e.link))
        topics = tuple(t for t in match.topics if not upstream_topics or t in upstream_topics)
        terms = tuple(sorted({m.term for m in match.matches if m.topic in topics}))
        keys = story_keys(e.title, e.summary, e.link) if topics else None
        title_key = normalize_title(e.title)[:500] or None
        plans.append(EntryPlan(e, entry_hash(e), topics, terms, title_key, keys))
    return plans


class Ingest:
    """The write half; one instance is shared by every poll worker."""

    def __init__(self, webhooks: Sequence[WebhookConfig], authority: str) -> None:
        self.webhooks = tuple(webhooks)
        self.authority = authority
        self.sketches = SketchCache()

    def apply(
        self,
        conn: Connection,
        up: StoredUpstream,
        feed: FeedData,
        plans: Sequence[EntryPlan],
        now: datetime,
        counts: Counts,
    ) -> str | None:
        """Write one poll's entries; returns a warning for the feed (GUID churn) or None."""
        keys = [p.entry.key for p in plans]
        known = store_entries.known(conn, up.id, keys)
        warning = None
        unknown = [p.entry for p in plans if p.entry.key not in known]
        if plans and len(unknown) * 2 >= len(plans) and store_entries.count_for(conn, up.id):
            warning = self._guard_churn(conn, up, [p.entry for p in plans], unknown, counts)
            if counts.rekeyed:
                known = store_entries.known(conn, up.id, keys)
        first_poll = up.last_success is None
        tombstoned = store_entries.is_tombstoned(conn, "entry", [f"{up.id}:{k}" for k in keys])
        source = Origin(title=feed.title or up.title or up.name, url=up.url)
        fresh: list[dict[str, object]] = []
        for position, plan in enumerate(plans):
            e = plan.entry
            stored = known.get(e.key)
            if f"{up.id}:{e.key}" in tombstoned or (stored and stored.content_hash == plan.digest):
                continue
            if stored is not None:
                self._update(conn, up, plan, stored, source, now, counts)
                continue
            article_id: str | None = None
            backfill = first_poll and not backfill_allows(up.backfill, position, e.published)
            if not plan.topics:
                counts.irrelevant += 1
            else:
                article_id = self._new_story(conn, up, plan, source, now, backfill, counts)
            fresh.append({
                "key": e.key, "link": e.link, "title_key": plan.title_key,
                "content_hash": plan.digest, "article_id": article_id, "backfill": backfill,
            })  # fmt: skip
        store_entries.insert_many(conn, up.id, fresh, now)
        return warning

    def _guard_churn(
        self,
        conn: Connection,
        up: StoredUpstream,
        entries: Sequence[EntryData],
        unknown: Sequence[EntryData],
        counts: Counts,
    ) -> str | None:
        links = [e.link for e in unknown if e.link]
        titles = [normalize_title(e.title)[:500] for e in unknown]
        stored = store_entries.by_links_or_titles(conn, up.id, links, titles)
        if not stored:
            return None
        titles_by_key = _stored_titles(conn, [s.article_id for s in stored if s.article_id])
        index = churn_index(
            (s.key, s.link, titles_by_key.get(s.article_id or "", s.title_key or ""))
            for s in stored
        )
        decision = churn_check([(e.key, e.link, e.title) for e in entries], index)
        if not decision.churned:
            return None
        for new_key, old_key in decision.rekey.items():
            store_entries.rekey(conn, up.id, old_key, new_key)
        counts.rekeyed = len(decision.rekey)
        message = (
            f"entry ids changed for {len(decision.rekey)} entries ({decision.reason}); "
            "re-keyed silently"
        )
        log.warning("upstream %s: %s", up.name, message)
        return message

    def _update(
        self,
        conn: Connection,
        up: StoredUpstream,
        plan: EntryPlan,
        stored: store_entries.KnownEntry,
        source: Origin,
        now: datetime,
        counts: Counts,
    ) -> None:
        e = plan.entry
        if stored.article_id is not None:
            current = store_articles.get_article(conn, stored.article_id)
            if current is not None and current.origin is not None and current.origin.url == up.url:
                article = self._article(
                    stored.article_id, e, source, now, fallback=current.published
                )
                topics = plan.topics or current.topics
                change = store_articles.upsert_article(
                    conn, article, now, topics=topics, terms=plan.terms or current.matched_terms
                )
                if change == "updated":
                    self.sketches.drop(stored.article_id)
                    counts.updated += 1
                    hooks = wanted_by(self.webhooks, topics, up.name, UPDATED)
                    counts.announced += outbox.enqueue(conn, stored.article_id, hooks, UPDATED, now)
        store_entries.upsert(
            conn, up.id, e.key, link=e.link, title_key=plan.title_key, content_hash=plan.digest,
            article_id=stored.article_id, backfill=False, now=now, existing=stored,
        )  # fmt: skip

    def _new_story(
        self,
        conn: Connection,
        up: StoredUpstream,
        plan: EntryPlan,
        source: Origin,
        now: datetime,
        backfill: bool,
        counts: Counts,
    ) -> str:
        e, keys = plan.entry, plan.keys
        assert keys is not None
        published = e.published or e.updated or now
        lock_stories(conn)
        decision = decide(
            keys, published, self._candidates(conn, keys, published), window=DEDUP_WINDOW
        )
        if decision.duplicate_of is not None:
            if e.link:
                store_articles.add_report(
                    conn, decision.duplicate_of, link=e.link, source_title=source.title,
                    source_url=source.url, now=now,
                )  # fmt: skip
            counts.duplicates += 1
            log.debug(
                "%s: %r duplicates %s (%s)",
                up.name,
                e.title,
                decision.duplicate_of,
                decision.reason,
            )
            return decision.duplicate_of
        article_id = f"tag:{self.authority},2026:entry/{up.id}/{key_digest(e.key)}"
        article = self._article(article_id, e, source, now)
        store_articles.upsert_article(
            conn, article, now, topics=plan.topics, terms=plan.terms, upstream_id=up.id
        )
        store_entries.add_story_keys(
            conn, article_id, story_index_keys(keys), keys.simhash, published
        )
        counts.new += 1
        if backfill:
            counts.backfill += 1
        else:
            hooks = wanted_by(self.webhooks, plan.topics, up.name, NEW)
            counts.announced += outbox.enqueue(conn, article_id, hooks, NEW, now)
        return article_id

    def _candidates(
        self, conn: Connection, keys: StoryKeys, published: datetime
    ) -> list[Candidate]:
        """Stored stories worth comparing: any exact-key match, and band matches whose
        SimHash is within ``NEAR_HAMMING``; only those have their keys rebuilt."""
        exact = exact_keys(keys)
        found = store_entries.story_candidates(
            conn, exact, keys.bands, published=published, window=DEDUP_WINDOW
        )
        wanted = [
            article_id
            for article_id, (shared, simhash, _) in found.items()
            if not shared.isdisjoint(exact) or hamming(keys.simhash, simhash) <= NEAR_HAMMING
        ]
        found_published = {article_id: published for article_id, (_, _, published) in found.items()}
        out = []
        missing = []
        for article_id in wanted:
            cached = self.sketches.get(article_id)
            if cached is None:
                missing.append(article_id)
            else:
                out.append(Candidate(article_id, cached, found_published[article_id]))
        if not missing:
            return out
        rows = conn.execute(
            select(
                articles_table.c.id,
                articles_table.c.title,
                articles_table.c.summary,
                articles_table.c.link,
                articles_table.c.published,
            ).where(articles_table.c.id.in_(missing))
        ).all()
        for r in rows:
            keys_of = story_keys(r.title, r.summary, r.link)
            self.sketches.put(r.id, keys_of)
            out.append(Candidate(r.id, keys_of, r.published))
        return out

    @staticmethod
    def _article(
        article_id: str,
        e: EntryData,
        source: Origin,
        now: datetime,
        *,
        fallback: datetime | None = None,
    ) -> ArticleData:
        published = e.published or e.updated or fallback or now
        return ArticleData(
            id=article_id,
            title=e.title or (e.link or "untitled"),
            summary=e.summary,
            content=e.content,
            link=e.link,
            authors=e.authors,
            language=e.language,
            categories=e.categories,
            published=published,
            updated=e.updated or published,
            origin=Origin(title=source.title, url=source.url, link=e.link),
        )


def _stored_titles(conn: Connection, article_ids: Sequence[str]) -> dict[str, str]:
    if not article_ids:
        return {}
    rows = conn.execute(
        select(articles_table.c.id, articles_table.c.title).where(
            articles_table.c.id.in_(list(article_ids))
        )
    ).all()
    return {r.id: r.title for r in rows}
