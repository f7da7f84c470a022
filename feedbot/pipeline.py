"""Poll one upstream end to end: fetch → parse → relevance → dedup → store (+ outbox).

Fetching, parsing and analysis (topics, story keys; see ``ingest.py``) happen outside any
transaction; everything the poll decided is then written in one transaction, fenced by the
upstream's lease: the feed's new state, its entries, new or updated articles with their
topics and story keys, other reports of known stories, and the outbox rows of the webhooks
that want the new articles.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from feedbot.clock import Clock
from feedbot.config import WebhookConfig
from feedbot.ingest import Counts, EntryPlan, Ingest
from feedbot.poll.cpu import CpuStage
from feedbot.poll.feeddata import FeedData
from feedbot.poll.fetch import FeedFetcher, FetchOutcome, FetchRequest, FetchResult
from feedbot.poll.schedule import ScheduleBounds
from feedbot.poll.state import next_state
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


class Pipeline:
    """Polls one claimed upstream. Thread-safe: share one instance between workers."""

    def __init__(
        self,
        db: Database,
        fetcher: FeedFetcher,
        cpu: CpuStage,
        *,
        webhooks: Sequence[WebhookConfig],
        authority: str,
        bounds: ScheduleBounds,
        max_failures: int,
        clock: Clock,
        workers: int = 16,
        rand: random.Random | None = None,
    ) -> None:
        self.db = db
        self.fetcher = fetcher
        self.cpu = cpu
        self.ingest = Ingest(webhooks, authority)
        self.bounds = bounds
        self.max_failures = max_failures
        self.clock = clock
        self.rand = rand or random.Random()
        self.slots = threading.BoundedSemaphore(workers)  # polls processed at once

    def poll(self, up: StoredUpstream, owner: str) -> PollResult:
        """Fetch (any number at once: the caller bounds them), then process the response
        on one of ``workers`` slots."""
        started = time.perf_counter()
        now = self.clock()
        req = FetchRequest(up.url, up.etag, up.last_modified, up.body_hash, up.headers)
        res = self.fetcher.fetch(req, now)
        fetch_seconds = time.perf_counter() - started
        with self.slots:
            return self._process(up, owner, res, now, started, fetch_seconds)

    def _process(
        self,
        up: StoredUpstream,
        owner: str,
        res: FetchResult,
        now: datetime,
        started: float,
        fetch_seconds: float,
    ) -> PollResult:
        feed: FeedData | None = None
        parse_error: str | None = None
        plans: tuple[EntryPlan, ...] = ()
        if res.outcome is FetchOutcome.OK and res.body is not None:
            analysed = self.cpu.run(res.body, res.headers, res.final_url, up.topics)
            feed, parse_error, plans = analysed.feed, analysed.error, analysed.plans
        change = next_state(
            up, res, feed, parse_error, now,
            rand=self.rand, bounds=self.bounds, max_failures=self.max_failures,
        )  # fmt: skip
        counts = Counts()
        notes: list[str] = []
        if feed and feed.warning:
            notes.append(f"feed warning: {feed.warning}")
        with self.db.write() as conn:
            if feed is not None:
                warning = self.ingest.apply(conn, up, feed, plans, now, counts)
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
