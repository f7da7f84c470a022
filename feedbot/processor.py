"""The half of a poll after its fetch: parse → relevance → dedup → store (+ outbox).

Parsing and analysis (topics, story keys; see ``ingest.py``) happen outside any
transaction; everything the poll decided is then written in one transaction, fenced by the
upstream's lease: the feed's new state, its entries, new or updated articles with their
topics and story keys, other reports of known stories, and the outbox rows of the webhooks
that want the new articles.

A ``Processor`` runs in the polling process, and one more in each worker process of
``poll/cpu.py``, built there from a picklable ``ProcessorRecipe``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from feedbot.config import WebhookConfig
from feedbot.errors import ParseError
from feedbot.ingest import Counts, EntryPlan, Ingest, analyse
from feedbot.poll.feeddata import FeedData
from feedbot.poll.fetch import FetchOutcome, FetchResult
from feedbot.poll.parse import parse_feed
from feedbot.poll.schedule import ScheduleBounds
from feedbot.poll.state import next_state
from feedbot.relevance.topics import Matcher, TopicSpec
from feedbot.store import upstreams as store_upstreams
from feedbot.store.db import Database
from feedbot.store.upstreams import StoredUpstream

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class ProcessorRecipe:
    """Everything a worker process needs to build its own ``Processor`` (picklable)."""

    database_url: str
    specs: tuple[TopicSpec, ...]
    webhooks: tuple[WebhookConfig, ...]
    authority: str
    bounds: ScheduleBounds
    max_failures: int

    def build(self, db: Database | None = None, matcher: Matcher | None = None) -> Processor:
        """A processor over *db* (else a new connection pool to ``database_url``)."""
        return Processor(
            db or Database(self.database_url, apply_migrations=False),
            matcher or Matcher(self.specs),
            webhooks=self.webhooks, authority=self.authority,
            bounds=self.bounds, max_failures=self.max_failures,
        )  # fmt: skip


class Processor:
    """Processes fetched responses; thread-safe, one per process."""

    def __init__(
        self,
        db: Database,
        matcher: Matcher,
        *,
        webhooks: Sequence[WebhookConfig],
        authority: str,
        bounds: ScheduleBounds,
        max_failures: int,
        rand: random.Random | None = None,
    ) -> None:
        self.db = db
        self.matcher = matcher
        self.ingest = Ingest(webhooks, authority)
        self.bounds = bounds
        self.max_failures = max_failures
        self.rand = rand or random.Random()

    def process(
        self,
        up: StoredUpstream,
        owner: str,
        res: FetchResult,
        now: datetime,
        *,
        failure: str | None = None,
    ) -> PollResult:
        """Parse and analyse *res*, then write the poll's outcome in one transaction.

        *failure* records a response that could not be processed (its worker process
        died) as a parse error, without reading it again."""
        feed: FeedData | None = None
        parse_error: str | None = failure
        plans: Sequence[EntryPlan] = ()
        if failure is None and res.outcome is FetchOutcome.OK and res.body is not None:
            try:
                feed = parse_feed(res.body, res.headers, res.final_url)
            except ParseError as exc:
                parse_error = exc.message
            else:
                plans = analyse(feed, self.matcher, up.topics)
        change = next_state(
            up, res, feed, parse_error, now,
            rand=self.rand, bounds=self.bounds, max_failures=self.max_failures,
        )  # fmt: skip
        counts = Counts()
        notes: list[str] = []
        if feed and feed.warning:
            notes.append(f"feed warning: {feed.warning}")
        seen = None
        if feed is not None and plans:
            with self.db.read() as conn:
                seen = self.ingest.look_up(conn, up, plans)
        with self.db.write() as conn:
            if feed is not None:
                warning = self.ingest.apply(conn, up, feed, plans, now, counts, seen)
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
            parser=feed.parser if feed else None,
            notes=tuple(notes),
            **asdict(counts),
        )
