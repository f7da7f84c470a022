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

from sqlalchemy import Connection

from feedbot.config import WebhookConfig
from feedbot.errors import ParseError, ProcessingError
from feedbot.ingest import Counts, EntryPlan, Ingest, Known, analyse
from feedbot.poll.feeddata import FeedData
from feedbot.poll.fetchdata import FetchOutcome, FetchResult
from feedbot.poll.parse import parse_feed
from feedbot.poll.schedule import ScheduleBounds
from feedbot.poll.state import StateChange, next_state
from feedbot.relevance.topics import Matcher, TopicSpec
from feedbot.store import upstreams as store_upstreams
from feedbot.store.db import Database
from feedbot.store.upstreams import StoredUpstream
from feedbot.stories import SKETCHES

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


# A worker process's page cache (SQLite; its one busy connection). One write transaction
# of a group commit (up to 16 first polls) touches more pages than SQLite's default 2 MiB
# holds; with 8 MiB it holds the write lock about a tenth less long (docs/architecture.md).
WORKER_CACHE_KIB = 8 * 1024
# A worker process's sketch cache (stories): a first poll of many feeds compares each new
# story with stories stored by every worker, and a miss reads and unpacks a stored sketch
# inside the write lock. 8,192 compact sketches are about 17 MiB (docs/architecture.md).
WORKER_SKETCHES = 8192


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
        """A processor over *db* (the polling process's own), else over a new connection
        pool to ``database_url`` (a worker process's, which reads before it writes)."""
        return Processor(
            db or Database(
                self.database_url, apply_migrations=False, cache_kib=WORKER_CACHE_KIB
            ),
            matcher or Matcher(self.specs),
            webhooks=self.webhooks, authority=self.authority,
            bounds=self.bounds, max_failures=self.max_failures, read_first=db is None,
            sketches=WORKER_SKETCHES if db is None else SKETCHES,
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
        read_first: bool = False,
        sketches: int = SKETCHES,
    ) -> None:
        self.db = db
        self.matcher = matcher
        self.ingest = Ingest(webhooks, authority, sketches=sketches)
        self.bounds = bounds
        self.max_failures = max_failures
        self.rand = rand or random.Random()
        # read what the store knows of the entries before the write lock (``look_up``):
        # right for a worker process, one connection and a held-up lock to save; in the
        # polling process, dozens of threads would each hold a connection (and its page
        # cache) for it
        self.read_first = read_first

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
        result = self.process_many([Job(up, owner, res, now)], failure=failure)[0]
        if isinstance(result, ProcessingError):
            raise result
        return result

    def process_many(
        self, jobs: Sequence[Job], *, failure: str | None = None
    ) -> list[PollResult | ProcessingError]:
        """``process`` for several polls, written in one transaction (a group commit).

        Each poll is written under a savepoint: a lost lease or a bug drops that poll's
        writes only. A poll that raised is returned as a ``ProcessingError`` (and logged)."""
        prepared: list[_Prepared | ProcessingError] = []
        for job in jobs:
            try:
                prepared.append(self._prepare(job, failure))
            except Exception as exc:  # a bug in one poll must not lose the others
                prepared.append(self._crash(job, exc))
        ready = [p for p in prepared if isinstance(p, _Prepared) and p.plans]
        if ready and self.read_first:
            with self.db.read() as conn:
                for item in ready:
                    item.seen = self.ingest.look_up(conn, item.job.up, item.plans)
        out: list[PollResult | ProcessingError] = []
        try:
            with self.db.write() as conn:
                for one in prepared:
                    alone = len(prepared) == 1
                    out.append(
                        one if isinstance(one, ProcessingError) else self._write(conn, one, alone)
                    )
        except BaseException:
            self.ingest.stories.forget_uncommitted()
            raise
        for one, result in zip(prepared, out, strict=True):
            if isinstance(one, _Prepared) and isinstance(result, PollResult):
                _log_change(one.job.up, one.change, result)
        return out

    def _prepare(self, job: Job, failure: str | None) -> _Prepared:
        """Parse and analyse (pure CPU, no transaction)."""
        up, res = job.up, job.res
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
            up, res, feed, parse_error, job.now,
            rand=self.rand, bounds=self.bounds, max_failures=self.max_failures,
        )  # fmt: skip
        return _Prepared(job, feed, plans, change)

    def _write(self, conn: Connection, p: _Prepared, alone: bool) -> PollResult | ProcessingError:
        """Write one poll; under a savepoint unless it is *alone* in its transaction (an
        idle daemon's polls come one at a time: two statements fewer each)."""
        up, feed, change = p.job.up, p.feed, p.change
        counts = Counts()
        notes = [f"feed warning: {feed.warning}"] if feed and feed.warning else []
        savepoint = None if alone else conn.begin_nested()
        undo = savepoint.rollback if savepoint is not None else conn.rollback
        try:
            if feed is not None:
                warning = self.ingest.apply(conn, up, feed, p.plans, p.job.now, counts, p.seen)
                if warning:
                    change.values["warning"] = warning
                    notes.append(warning)
            if not store_upstreams.save_state(conn, up.id, p.job.owner, change.values):
                undo()
                log.warning("lease on %s was lost; the result of this poll is dropped", up.name)
                return PollResult(up.name, "lease_lost", "the lease expired before the poll ended")
        except Exception as exc:
            undo()
            return self._crash(p.job, exc)
        if savepoint is not None:
            savepoint.commit()
        return PollResult(
            upstream=up.name,
            outcome=change.outcome,
            error=change.error,
            disabled=change.disabled,
            parser=feed.parser if feed else None,
            notes=tuple(notes),
            **asdict(counts),
        )

    @staticmethod
    def _crash(job: Job, exc: Exception) -> ProcessingError:
        log.error("processing %s crashed", job.up.name, exc_info=exc)
        return ProcessingError(f"{type(exc).__name__}: {exc}", resource=job.up.name)


@dataclass(frozen=True, slots=True)
class Job:
    """One fetched response to process, with the lease it is written under."""

    up: StoredUpstream
    owner: str
    res: FetchResult
    now: datetime


@dataclass(slots=True)
class _Prepared:
    job: Job
    feed: FeedData | None
    plans: Sequence[EntryPlan]
    change: StateChange
    seen: Known | None = None


def _log_change(up: StoredUpstream, change: StateChange, result: PollResult) -> None:
    if result.outcome == "lease_lost":
        return
    if change.error:
        log.warning("poll %s failed (%s): %s", up.name, change.outcome, change.error)
    if change.disabled:
        log.error("upstream %s disabled: %s", up.name, change.disabled)
    if change.moved_to:
        log.info("upstream %s moved permanently to %s", up.name, change.moved_to)
