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
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, select

from feedbot.config import WebhookConfig
from feedbot.models import ArticleData, Origin
from feedbot.notify.routing import NEW, UPDATED, wanted_by
from feedbot.poll.feeddata import EntryData, FeedData, shorten
from feedbot.relevance.dedup import (
    StoryKeys,
    churn_check,
    churn_index,
    normalize_title,
    story_keys,
)
from feedbot.relevance.topics import Matcher, MatchInput, MatchResult
from feedbot.store import articles as store_articles
from feedbot.store import entries as store_entries
from feedbot.store import outbox
from feedbot.store.schema import articles as articles_table
from feedbot.store.upstreams import StoredUpstream
from feedbot.stories import SKETCHES, NewItem, StoryWriter, key_digest, pack_sketch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EntryPlan:
    """What :func:`analyse` found out about one entry, before touching the store."""

    entry: EntryData
    digest: str
    topics: tuple[str, ...]
    terms: tuple[str, ...]
    title_key: str | None
    keys: StoryKeys | None  # story keys, for relevant entries only
    sanitised: str | None  # the entry's sanitised content, made here for relevant entries
    sketch: bytes  # the story keys packed for the store (b"" without keys), made here too

    @property
    def content(self) -> str:
        """The sanitised content: made by analysis, or now for an entry it did not keep."""
        return self.entry.content if self.sanitised is None else self.sanitised


@dataclass(frozen=True, slots=True)
class Known:
    """What the store holds of one poll's entries (see ``Ingest.look_up``)."""

    entries: Mapping[str, store_entries.KnownEntry]
    tombstoned: AbstractSet[str]
    churn_suspected: bool  # most entries are unknown to a feed with stored entries


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
    """What changes when the upstream changes the entry (the content as the feed gave it)."""
    blob = "\x1f".join((e.title, e.summary, e.html, e.link or "", ",".join(e.categories)))
    return "v2:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


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
    """Pure: hash, topics (limited to the upstream's when it names some), and for the
    relevant entries only, story keys and sanitised content.

    Each step runs over every entry before the next one starts: in one loop of all the
    steps, each step ran slower than on its own, most likely because the others' code
    and tables took its place in the processor's caches at every entry
    (docs/architecture.md)."""
    entries = unique_entries(feed.entries)
    chosen = [_topics(matcher.match(_match_input(e)), upstream_topics) for e in entries]
    keys = [
        story_keys(e.title, e.summary, e.link) if topics else None
        for e, (topics, _) in zip(entries, chosen, strict=True)
    ]
    # the story keys hold the same normalised title (``story_keys`` computes it)
    title_keys = [
        (normalize_title(e.title) if k is None else k.title_key)[:500] or None
        for e, k in zip(entries, keys, strict=True)
    ]
    contents = [
        e.content if topics else None for e, (topics, _) in zip(entries, chosen, strict=True)
    ]
    sketches = [b"" if k is None else pack_sketch(k) for k in keys]
    hashes = [entry_hash(e) for e in entries]
    return [
        EntryPlan(e, digest, topics, terms, title_key, k, content, sketch)
        for e, digest, (topics, terms), title_key, k, content, sketch in zip(
            entries, hashes, chosen, title_keys, keys, contents, sketches, strict=True
        )
    ]


def _match_input(e: EntryData) -> MatchInput:
    cut = bool(e.summary) and e.summary == shorten(e.text)  # no summary of its own
    return MatchInput(e.title, e.summary, e.text, e.categories, e.link, cut)


def _topics(
    match: MatchResult, upstream_topics: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The matched topics the upstream wants (all when it names none), and their terms."""
    if not match.topics:  # most entries match nothing
        return (), ()
    topics = tuple(t for t in match.topics if not upstream_topics or t in upstream_topics)
    return topics, tuple(sorted({m.term for m in match.matches if m.topic in topics}))


class Ingest:
    """The write half; one instance is shared by every poll worker."""

    def __init__(
        self,
        webhooks: Sequence[WebhookConfig],
        authority: str,
        *,
        sketches: int = SKETCHES,
    ) -> None:
        self.webhooks = tuple(webhooks)
        self.authority = authority
        self.stories = StoryWriter(sketches)

    @staticmethod
    def look_up(conn: Connection, up: StoredUpstream, plans: Sequence[EntryPlan]) -> Known:
        """What the store knows of this poll's entries, read before the write transaction.

        Only this upstream's own rows are read, and its lease keeps other pollers from
        writing them meanwhile, so the answer still holds when the write begins; reading
        it there would only hold the (SQLite) write lock longer."""
        keys = [p.entry.key for p in plans]
        tombstoned = store_entries.is_tombstoned(conn, "entry", [f"{up.id}:{k}" for k in keys])
        if up.last_success is None:  # entries are only ever written by a successful poll
            return Known({}, tombstoned, churn_suspected=False)
        known = store_entries.known(conn, up.id, keys)
        unknown = sum(1 for k in keys if k not in known)
        churn = (
            bool(plans) and unknown * 2 >= len(plans) and store_entries.count_for(conn, up.id) > 0
        )
        return Known(known, tombstoned, churn)

    def apply(
        self,
        conn: Connection,
        up: StoredUpstream,
        feed: FeedData,
        plans: Sequence[EntryPlan],
        now: datetime,
        counts: Counts,
        seen: Known | None = None,
    ) -> str | None:
        """Write one poll's entries; returns a warning for the feed (GUID churn) or None.
        *seen* is what ``look_up`` read before the transaction (else it is read now)."""
        if seen is None:
            seen = self.look_up(conn, up, plans)
        known, tombstoned = seen.entries, seen.tombstoned
        warning = None
        if seen.churn_suspected:
            unknown = [p.entry for p in plans if p.entry.key not in known]
            warning = self._guard_churn(conn, up, [p.entry for p in plans], unknown, counts)
            if counts.rekeyed:
                known = store_entries.known(conn, up.id, [p.entry.key for p in plans])
        first_poll = up.last_success is None
        source = Origin(title=feed.title or up.title or up.name, url=up.url)
        fresh: list[dict[str, object]] = []
        relevant: list[tuple[int, EntryPlan, bool]] = []  # (row in fresh, plan, backfill)
        for position, plan in enumerate(plans):
            e = plan.entry
            stored = known.get(e.key)
            if f"{up.id}:{e.key}" in tombstoned or (stored and stored.content_hash == plan.digest):
                continue
            if stored is not None:
                self._update(conn, up, plan, stored, source, now, counts)
                continue
            backfill = first_poll and not backfill_allows(up.backfill, position, e.published)
            if plan.topics:
                relevant.append((len(fresh), plan, backfill))
            else:
                counts.irrelevant += 1
            fresh.append({
                "key": e.key, "link": e.link, "title_key": plan.title_key,
                "content_hash": plan.digest, "article_id": None, "backfill": backfill,
            })  # fmt: skip
        if relevant:
            ids = self._new_stories(conn, up, relevant, source, now, counts)
            for (row, _, _), article_id in zip(relevant, ids, strict=True):
                fresh[row]["article_id"] = article_id
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
                    stored.article_id, plan, source, now, fallback=current.published
                )
                topics = plan.topics or current.topics
                change = store_articles.upsert_article(
                    conn, article, now, topics=topics, terms=plan.terms or current.matched_terms
                )
                if change == "updated":
                    self.stories.sketches.drop(stored.article_id)
                    counts.updated += 1
                    hooks = wanted_by(self.webhooks, topics, up.name, UPDATED)
                    counts.announced += outbox.enqueue(conn, stored.article_id, hooks, UPDATED, now)
        store_entries.upsert(
            conn, up.id, e.key, link=e.link, title_key=plan.title_key, content_hash=plan.digest,
            article_id=stored.article_id, backfill=False, now=now, existing=stored,
        )  # fmt: skip

    def _new_stories(
        self,
        conn: Connection,
        up: StoredUpstream,
        relevant: Sequence[tuple[int, EntryPlan, bool]],
        source: Origin,
        now: datetime,
        counts: Counts,
    ) -> list[str]:
        """Store the relevant new entries of one poll as stories (see ``stories.py``), or
        as other reports of stories already stored; returns each one's article id."""
        items = []
        for _, plan, _ in relevant:
            assert plan.keys is not None
            article_id = f"tag:{self.authority},2026:entry/{up.id}/{key_digest(plan.entry.key)}"
            article = self._article(article_id, plan, source, now)
            items.append(NewItem(article, plan.keys, plan.topics, plan.terms, plan.sketch))
        outcomes = self.stories.add(conn, items, now, upstream_id=up.id)
        for (_, plan, backfill), outcome in zip(relevant, outcomes, strict=True):
            e = plan.entry
            if outcome.duplicate:
                if e.link:
                    store_articles.add_report(
                        conn, outcome.article_id, link=e.link, source_title=source.title,
                        source_url=source.url, now=now,
                    )  # fmt: skip
                counts.duplicates += 1
                log.debug("%s: %r duplicates %s (%s)", up.name, e.title, outcome.article_id,
                          outcome.reason)  # fmt: skip
                continue
            counts.new += 1
            if backfill:
                counts.backfill += 1
            else:
                hooks = wanted_by(self.webhooks, plan.topics, up.name, NEW)
                counts.announced += outbox.enqueue(conn, outcome.article_id, hooks, NEW, now)
        return [o.article_id for o in outcomes]

    @staticmethod
    def _article(
        article_id: str,
        plan: EntryPlan,
        source: Origin,
        now: datetime,
        *,
        fallback: datetime | None = None,
    ) -> ArticleData:
        e = plan.entry
        published = e.published or e.updated or fallback or now
        return ArticleData(
            id=article_id,
            title=e.title or (e.link or "untitled"),
            summary=e.summary,
            content=plan.content,
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
