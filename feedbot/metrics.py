"""Prometheus metrics: counters the daemon records, gauges read from the store at scrape time.

The daemon records through the module functions (``record_poll`` ...), which feed one
:class:`Metrics` whose registry is :data:`REGISTRY` (feedbot's own, not prometheus_client's
global one). Tests build their own :class:`Metrics`. Store gauges come from
:class:`StoreCollector`, which the web app registers for its store: a few cheap grouped
queries per scrape; a store that cannot be read yields ``feedbot_store_up 0``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from feedbot import __version__
from feedbot.clock import Clock, utcnow
from feedbot.errors import FeedbotError
from feedbot.store import articles as store_articles
from feedbot.store import upstreams as store_upstreams
from feedbot.store.outbox import OutboxDepth
from feedbot.store.outbox import depth as outbox_depth

if TYPE_CHECKING:
    from feedbot.pipeline import PollResult
    from feedbot.store.db import Database

logger = logging.getLogger(__name__)

FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CYCLE_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
PUBLISH_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The daemon's metrics in a registry of their own; ``record_*`` are thread-safe."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.info = Gauge("feedbot_info", "The running feedbot.", ["version"], registry=r)
        self.info.labels(version=__version__).set(1)
        self.polls = Counter("feedbot_polls", "Upstream polls by outcome.", ["outcome"], registry=r)
        self.fetch_seconds = Histogram(
            "feedbot_fetch_duration_seconds",
            "Time to fetch one upstream (HTTP only).",
            buckets=FETCH_BUCKETS,
            registry=r,
        )
        self.entries = Counter(
            "feedbot_entries",
            "Upstream entries by what polling did with them.",
            ["kind"],
            registry=r,
        )
        self.cycles = Counter("feedbot_poll_cycles", "Completed poll cycles.", registry=r)
        self.cycle_polls = Counter(
            "feedbot_poll_cycle_polls", "Polls done by completed poll cycles.", registry=r
        )
        self.cycle_seconds = Histogram(
            "feedbot_poll_cycle_duration_seconds",
            "Wall time of one poll cycle.",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.last_cycle = Gauge(
            "feedbot_last_poll_cycle_timestamp_seconds",
            "When the last poll cycle ended (Unix time).",
            registry=r,
        )
        self.deliveries = Counter(
            "feedbot_deliveries",
            "Webhook delivery attempts by outcome.",
            ["webhook", "outcome"],
            registry=r,
        )
        self.publish_seconds = Histogram(
            "feedbot_publish_duration_seconds",
            "Time to render and write one published feed.",
            ["feed"],
            buckets=PUBLISH_BUCKETS,
            registry=r,
        )

    def record_poll(self, result: PollResult) -> None:
        """Count one poll: its outcome, its fetch time, and its entries by kind."""
        self.polls.labels(outcome=result.outcome).inc()
        if result.fetch_seconds > 0:
            self.fetch_seconds.observe(result.fetch_seconds)
        for kind, count in (
            ("new", result.new),
            ("updated", result.updated),
            ("duplicate", result.duplicates),
            ("irrelevant", result.irrelevant),
        ):
            if count:
                self.entries.labels(kind=kind).inc(count)

    def record_cycle(self, polls: int, seconds: float, *, finished: datetime | None = None) -> None:
        """Count one poll cycle of *polls* polls (each counted by :meth:`record_poll`)."""
        self.cycles.inc()
        self.cycle_polls.inc(polls)
        self.cycle_seconds.observe(seconds)
        self.last_cycle.set((finished or utcnow()).timestamp())

    def record_delivery(self, outcome: str, webhook: str) -> None:
        """Count one delivery attempt: ``delivered``, ``retry``, ``dead``, ``throttled``..."""
        self.deliveries.labels(webhook=webhook, outcome=outcome).inc()

    def record_publish(self, name: str, seconds: float) -> None:
        self.publish_seconds.labels(feed=name).observe(seconds)


_DEFAULT = Metrics()
REGISTRY = _DEFAULT.registry


def record_poll(result: PollResult) -> None:
    _DEFAULT.record_poll(result)


def record_cycle(polls: int, seconds: float, *, finished: datetime | None = None) -> None:
    _DEFAULT.record_cycle(polls, seconds, finished=finished)


def record_delivery(outcome: str, webhook: str) -> None:
    _DEFAULT.record_delivery(outcome, webhook)


def record_publish(name: str, seconds: float) -> None:
    _DEFAULT.record_publish(name, seconds)


@dataclass(frozen=True, slots=True)
class FeedGauge:
    name: str
    enabled: bool
    last_success: datetime | None
    failures: int


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """What the store gauges are computed from, read in one transaction."""

    articles: int
    feeds: tuple[FeedGauge, ...]
    outbox: tuple[OutboxDepth, ...]


def read_snapshot(conn: Connection) -> StoreSnapshot:
    feeds = tuple(
        FeedGauge(u.name, u.enabled, u.last_success, u.consecutive_failures)
        for u in store_upstreams.list_all(conn)
    )
    return StoreSnapshot(store_articles.count_articles(conn), feeds, tuple(outbox_depth(conn)))


_STORE_GAUGES = {
    "feedbot_store_up": ("1 when the last scrape could read the store.", ()),
    "feedbot_articles": ("Articles in the store.", ()),
    "feedbot_upstreams": ("Upstreams by state.", ("state",)),
    "feedbot_upstream_last_success_timestamp_seconds": (
        "When each upstream was last polled successfully (Unix time).",
        ("upstream",),
    ),
    "feedbot_upstream_consecutive_failures": (
        "Failed polls in a row for each upstream.",
        ("upstream",),
    ),
    "feedbot_outbox_pending": ("Deliveries waiting to be sent.", ("webhook",)),
    "feedbot_outbox_dead": ("Deliveries given up on.", ("webhook",)),
    "feedbot_outbox_oldest_pending_age_seconds": (
        "Age of the oldest pending delivery; 0 when none is pending.",
        ("webhook",),
    ),
}


def _families() -> dict[str, GaugeMetricFamily]:
    return {
        name: GaugeMetricFamily(name, doc, labels=list(labels))
        for name, (doc, labels) in _STORE_GAUGES.items()
    }


def store_metrics(
    snapshot: StoreSnapshot | None, now: datetime, webhooks: Sequence[str] = ()
) -> list[Metric]:
    """The store gauges of *snapshot* at *now*; ``None`` means the store was unreadable."""
    fam = _families()
    fam["feedbot_store_up"].add_metric([], 0 if snapshot is None else 1)
    if snapshot is None:
        return [fam["feedbot_store_up"]]
    fam["feedbot_articles"].add_metric([], snapshot.articles)
    enabled = sum(1 for f in snapshot.feeds if f.enabled)
    fam["feedbot_upstreams"].add_metric(["enabled"], enabled)
    fam["feedbot_upstreams"].add_metric(["disabled"], len(snapshot.feeds) - enabled)
    for feed in snapshot.feeds:
        if feed.last_success is not None:
            fam["feedbot_upstream_last_success_timestamp_seconds"].add_metric(
                [feed.name], feed.last_success.timestamp()
            )
        fam["feedbot_upstream_consecutive_failures"].add_metric([feed.name], feed.failures)
    by_hook = {s.webhook: s for s in snapshot.outbox}
    for name in sorted(set(by_hook) | set(webhooks)):
        s = by_hook.get(name)
        pending, dead = (s.pending, s.dead) if s else (0, 0)
        oldest = s.oldest_pending if s else None
        age = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
        fam["feedbot_outbox_pending"].add_metric([name], pending)
        fam["feedbot_outbox_dead"].add_metric([name], dead)
        fam["feedbot_outbox_oldest_pending_age_seconds"].add_metric([name], age)
    return list(fam.values())


class StoreCollector:
    """A prometheus_client collector that reads the store gauges when scraped."""

    def __init__(self, db: Database, clock: Clock, *, webhooks: Sequence[str] = ()) -> None:
        self._db = db
        self._clock = clock
        self._webhooks = tuple(webhooks)

    def describe(self) -> Iterable[Metric]:
        return list(_families().values())

    def collect(self) -> Iterable[Metric]:
        snapshot: StoreSnapshot | None
        try:
            with self._db.read() as conn:
                snapshot = read_snapshot(conn)
        except (SQLAlchemyError, FeedbotError) as exc:
            logger.warning("metrics: cannot read the store %s: %s", self._db.display_url, exc)
            snapshot = None
        return store_metrics(snapshot, self._clock(), self._webhooks)


def store_registry(
    db: Database, clock: Clock, *, webhooks: Sequence[str] = ()
) -> CollectorRegistry:
    """A registry holding only a :class:`StoreCollector` for *db*."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(db, clock, webhooks=webhooks))
    return registry
