"""The CPU-bound part of a poll, parse + analyse, in this process or in a process pool.

A large feed costs tens of milliseconds of pure Python (parsing, text repair, sanitising,
topic matching, story keys); with threads alone only one core does that work. Documents of
``offload_bytes`` or more therefore go to a pool of worker processes (bytes, headers and
the upstream's topics in; frozen dataclasses out), small ones stay in-process where the
round trip would cost more than it saves.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from feedbot.errors import ParseError
from feedbot.ingest import EntryPlan, analyse
from feedbot.poll.feeddata import FeedData
from feedbot.poll.parse import parse_feed
from feedbot.relevance.topics import Matcher, TopicSpec

log = logging.getLogger(__name__)

OFFLOAD_BYTES = 32 * 1024


@dataclass(frozen=True, slots=True)
class Analysed:
    """A parsed feed and its entry plans, or why the document is not a feed."""

    feed: FeedData | None
    plans: tuple[EntryPlan, ...]
    error: str | None


def parse_and_analyse(
    body: bytes, headers: Mapping[str, str], url: str, topics: Sequence[str], matcher: Matcher
) -> Analysed:
    try:
        feed = parse_feed(body, headers, url)
    except ParseError as exc:
        return Analysed(None, (), exc.message)
    return Analysed(feed, tuple(analyse(feed, matcher, topics)), None)


_worker_matcher: Matcher | None = None


def _init_worker(specs: tuple[TopicSpec, ...]) -> None:
    global _worker_matcher
    _worker_matcher = Matcher(specs)


def _in_worker(body: bytes, headers: dict[str, str], url: str, topics: tuple[str, ...]) -> Analysed:
    assert _worker_matcher is not None
    return parse_and_analyse(body, headers, url, topics, _worker_matcher)


class CpuStage:
    """Runs :func:`parse_and_analyse`; ``processes=0`` keeps everything in-process."""

    def __init__(
        self,
        matcher: Matcher,
        specs: Sequence[TopicSpec],
        *,
        processes: int,
        offload_bytes: int = OFFLOAD_BYTES,
    ) -> None:
        self.matcher = matcher
        self.specs = tuple(specs)
        self.processes = processes
        self.offload_bytes = offload_bytes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def run(
        self, body: bytes, headers: Mapping[str, str], url: str, topics: Sequence[str]
    ) -> Analysed:
        if self.processes <= 0 or len(body) < self.offload_bytes:
            return parse_and_analyse(body, headers, url, topics, self.matcher)
        pool = self._get_pool()
        try:
            return pool.submit(_in_worker, body, dict(headers), url, tuple(topics)).result()
        except BrokenProcessPool:
            log.error("a parser process died on %s; restarting the pool", url)
            self._reset(pool)
            return Analysed(None, (), "the parser process died on this document")

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=multiprocessing.get_context("spawn"),  # safe beside threads
                    initializer=_init_worker,
                    initargs=(self.specs,),
                )
            return self._pool

    def _reset(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
