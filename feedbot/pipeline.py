"""Poll one upstream end to end: fetch → parse → relevance → dedup → store (+ outbox).

Fetching and parsing happen outside any transaction; everything the poll decided is then
written in one transaction, fenced by the upstream's lease: the feed's new state, its
entries, new or updated articles with their topics and story keys, other reports of known
stories, and the outbox rows of the webhooks that want the new articles.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from feedbot.clock import Clock
from feedbot.config import WebhookConfig
from feedbot.errors import ParseError
from feedbot.models import ArticleData, Origin
from feedbot.notify.routing import NEW, UPDATED, wanted_by
from feedbot.poll.feeddata import EntryData, FeedData
from feedbot.poll.fetch import FeedFetcher, FetchOutcome, FetchRequest
from feedbot.poll.schedule import ScheduleBounds
from feedbot.poll.state import next_state
from feedbot.relevance.dedup import (
    DEFAULT_WINDOW as DEDUP_WINDOW,
)
from feedbot.relevance.dedup import (
    Candidate,
    StoryKeys,
    churn_check,
    churn_index,
    decide,
    normalize_title,
    story_keys,
)
from feedbot.relevance.topics import Matcher, MatchInput
from feedbot.store import articles as store_articles
from feedbot.store import entries as store_entries
from feedbot.store import outbox
from feedbot.store import upstreams as store_upstreams
from feedbot.store.db import Database
from feedbot.store.dialect import lock_stories
from feedbot.store.schema import articles as articles_table
from feedbot.store.upstreams import StoredUpstream

log = logging.getLogger(__name__)

Parser = Callable[[bytes, Any, str], FeedData]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PollResult:
    """What polling one upstream did."""

    upstream: str
    outcome: str
    error: str | None = None
    new: int = 0
    updated: int = 0
    duplicates: int = 0
    irrelevant: int = 0
    backfill: int = 0
    rekeyed: int = 0
    announced: int = 0
    disabled: str | None = None
    fetch_seconds: float = 0.0
    seconds: float = 0.0
    parser: str | None = None
    notes: tuple[str, ...] = field(default=())


@dataclass(slots=True)
class _Counts:
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


def _key_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def exact_keys(keys: StoryKeys) -> list[str]:
    """Title and canonical-URL keys as stored in ``story_keys`` (digests fit the column)."""
    out = [f"t:{_key_digest(keys.title_key)}"] if keys.title_key else []
    if keys.url_key:
        out.append(f"u:{_key_digest(keys.url_key)}")
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


class Pipeline:
    """Polls one claimed upstream. Thread-safe: share one instance between workers."""

    def __init__(
        self,
        db: Database,
        fetcher: FeedFetcher,
        matcher: Matcher,
        *,
        parse: Parser,
        webhooks: Sequence[WebhookConfig],
        authority: str,
        bounds: ScheduleBounds,
        max_failures: int,
        clock: Clock,
        rand: random.Random | None = None,
    ) -> None:
        self.db = db
        self.fetcher = fetcher
        self.matcher = matcher
        self.parse = parse
        self.webhooks = tuple(webhooks)
        self.authority = authority
        self.bounds = bounds
        self.max_failures = max_failures
        self.clock = clock
        self.rand = rand or random.Random()

    def poll(self, up: StoredUpstream, owner: str) -> PollResult:
        started = time.perf_counter()
        now = self.clock()
        req = FetchRequest(up.url, up.etag, up.last_modified, up.body_hash, up.headers)
        res = self.fetcher.fetch(req, now)
        fetch_seconds = time.perf_counter() - started
        feed: FeedData | None = None
        parse_error: str | None = None
        if res.outcome is FetchOutcome.OK and res.body is not None:
            try:
                feed = self.parse(res.body, res.headers, res.final_url)
            except ParseError as exc:
                parse_error = exc.message
        change = next_state(
            up, res, feed, parse_error, now,
            rand=self.rand, bounds=self.bounds, max_failures=self.max_failures,
        )  # fmt: skip
        counts = _Counts()
        notes: list[str] = []
        if feed and feed.warning:
            notes.append(f"feed warning: {feed.warning}")
        with self.db.write() as conn:
            if feed is not None:
                warning = self._ingest(conn, up, feed, now, counts)
                if warning:
                    change.values["warning"] = warning
                    notes.append(warning)
            if not store_upstreams.save_state(conn, up.id, owner, change.values):
                conn.rollback()
                log.warning("lease on %s was lost; the result of this poll is dropped", up.name)
                return PollResult(up.name, "lease_lost", "the lease expired before the poll ended")
        if change.error:
            log.warning("poll %s failed (%s): %s", up.name, change.outcome, change.error)
        if change.disabled:
            log.error("upstream %s disabled: %s", up.name, change.disabled)
        if change.moved_to:
            log.info("upstream %s moved permanently to %s", up.name, change.moved_to)
        return PollResult(
            upstream=up.name,
            outcome=change.outcome,
            error=change.error,
            disabled=change.disabled,
            fetch_seconds=fetch_seconds,
            seconds=time.perf_counter() - started,
            parser=feed.parser if feed else None,
            notes=tuple(notes),
            **asdict(counts),
        )

    # ----------------------------------------------------------------- ingest
    def _ingest(
        self, conn: Connection, up: StoredUpstream, feed: FeedData, now: datetime, counts: _Counts
    ) -> str | None:
        entries = _unique(feed.entries)
        known = store_entries.known(conn, up.id, [e.key for e in entries])
        warning = None
        unknown = [e for e in entries if e.key not in known]
        if entries and len(unknown) * 2 >= len(entries) and store_entries.count_for(conn, up.id):
            warning = self._guard_churn(conn, up, entries, unknown, counts)
            if counts.rekeyed:
                known = store_entries.known(conn, up.id, [e.key for e in entries])
        first_poll = up.last_success is None
        tombstoned = store_entries.is_tombstoned(
            conn, "entry", [f"{up.id}:{e.key}" for e in entries]
        )
        source = Origin(title=feed.title or up.title or up.name, url=up.url)
        for position, e in enumerate(entries):
            if f"{up.id}:{e.key}" in tombstoned:
                continue
            digest = entry_hash(e)
            stored = known.get(e.key)
            if stored is not None and stored.content_hash == digest:
                continue
            match = self.matcher.match(
                MatchInput(e.title, e.summary, e.content, e.categories, e.link)
            )
            topics = [t for t in match.topics if not up.topics or t in up.topics]
            terms = sorted({m.term for m in match.matches if m.topic in topics})
            title_key = normalize_title(e.title)[:500] or None
            if stored is not None:
                self._update(
                    conn, up, e, stored, digest, topics, terms, title_key, source, now, counts
                )
                continue
            article_id: str | None = None
            backfill = first_poll and not backfill_allows(up.backfill, position, e.published)
            if not topics:
                counts.irrelevant += 1
            else:
                article_id = self._new_story(
                    conn, up, e, topics, terms, source, now, backfill, counts
                )
            store_entries.upsert(
                conn, up.id, e.key, link=e.link, title_key=title_key, content_hash=digest,
                article_id=article_id, backfill=backfill, now=now, existing=None,
            )  # fmt: skip
        return warning

    def _guard_churn(
        self,
        conn: Connection,
        up: StoredUpstream,
        entries: Sequence[EntryData],
        unknown: Sequence[EntryData],
        counts: _Counts,
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
        message = f"entry ids changed for {len(decision.rekey)} entries ({decision.reason}); re-keyed silently"
        log.warning("upstream %s: %s", up.name, message)
        return message

    def _update(
        self,
        conn: Connection,
        up: StoredUpstream,
        e: EntryData,
        stored: store_entries.KnownEntry,
        digest: str,
        topics: list[str],
        terms: list[str],
        title_key: str | None,
        source: Origin,
        now: datetime,
        counts: _Counts,
    ) -> None:
        if stored.article_id is not None:
            current = store_articles.get_article(conn, stored.article_id)
            if current is not None and current.origin is not None and current.origin.url == up.url:
                article = self._article(
                    stored.article_id, e, source, now, fallback=current.published
                )
                change = store_articles.upsert_article(
                    conn,
                    article,
                    now,
                    topics=topics or current.topics,
                    terms=terms or current.matched_terms,
                )
                if change == "updated":
                    counts.updated += 1
                    hooks = wanted_by(self.webhooks, topics or current.topics, up.name, UPDATED)
                    counts.announced += outbox.enqueue(conn, stored.article_id, hooks, UPDATED, now)
        store_entries.upsert(
            conn, up.id, e.key, link=e.link, title_key=title_key, content_hash=digest,
            article_id=stored.article_id, backfill=False, now=now, existing=stored,
        )  # fmt: skip

    def _new_story(
        self,
        conn: Connection,
        up: StoredUpstream,
        e: EntryData,
        topics: list[str],
        terms: list[str],
        source: Origin,
        now: datetime,
        backfill: bool,
        counts: _Counts,
    ) -> str:
        keys = story_keys(e.title, e.summary, e.link)
        published = e.published or e.updated or now
        lock_stories(conn)
        candidates = self._candidates(conn, keys, published)
        decision = decide(keys, published, candidates, window=DEDUP_WINDOW)
        if decision.duplicate_of is not None:
            if e.link:
                store_articles.add_report(
                    conn, decision.duplicate_of, link=e.link, source_title=source.title,
                    source_url=source.url, now=now,
                )  # fmt: skip
            counts.duplicates += 1
            log.debug(
                "%s: %r is a duplicate of %s (%s)",
                up.name,
                e.title,
                decision.duplicate_of,
                decision.reason,
            )
            return decision.duplicate_of
        article_id = f"tag:{self.authority},2026:entry/{up.id}/{_key_digest(e.key)}"
        article = self._article(article_id, e, source, now)
        store_articles.upsert_article(
            conn, article, now, topics=topics, terms=terms, upstream_id=up.id
        )
        store_entries.add_story_keys(
            conn, article_id, story_index_keys(keys), keys.simhash, published
        )
        counts.new += 1
        if backfill:
            counts.backfill += 1
        else:
            hooks = wanted_by(self.webhooks, topics, up.name, NEW)
            counts.announced += outbox.enqueue(conn, article_id, hooks, NEW, now)
        return article_id

    def _candidates(
        self, conn: Connection, keys: StoryKeys, published: datetime
    ) -> list[Candidate]:
        found = store_entries.story_candidates(
            conn, exact_keys(keys), keys.bands, published=published, window=DEDUP_WINDOW
        )
        if not found:
            return []
        rows = conn.execute(
            select(
                articles_table.c.id,
                articles_table.c.title,
                articles_table.c.summary,
                articles_table.c.link,
                articles_table.c.published,
            ).where(articles_table.c.id.in_(list(found)))
        ).all()
        return [Candidate(r.id, story_keys(r.title, r.summary, r.link), r.published) for r in rows]

    def _article(
        self,
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


def _unique(entries: Sequence[EntryData]) -> list[EntryData]:
    """The first occurrence of each key (feeds do repeat guids)."""
    seen: set[str] = set()
    out = []
    for e in entries:
        if e.key not in seen:
            seen.add(e.key)
            out.append(e)
    return out


def _stored_titles(conn: Connection, article_ids: Sequence[str]) -> dict[str, str]:
    if not article_ids:
        return {}
    rows = conn.execute(
        select(articles_table.c.id, articles_table.c.title).where(
            articles_table.c.id.in_(list(article_ids))
        )
    ).all()
    return {r.id: r.title for r in rows}
