"""Poll one upstream end to end: fetch, then process the response (``processor.py``).

The fetch runs on the caller's thread (any number at once: the poller bounds them); the
processing on one of ``workers`` slots, in this process or in a worker process
(``poll/cpu.py``).
"""

from __future__ import annotations

import dataclasses
import threading
import time

from feedbot.clock import Clock
from feedbot.poll.cpu import CpuStage
from feedbot.poll.fetch import FeedFetcher, FetchRequest
from feedbot.processor import PollResult
from feedbot.store.upstreams import StoredUpstream

__all__ = ["Pipeline", "PollResult"]


class Pipeline:
    """Polls one claimed upstream. Thread-safe: share one instance between workers."""

    def __init__(
        self, fetcher: FeedFetcher, cpu: CpuStage, *, clock: Clock, workers: int = 16
    ) -> None:
        self.fetcher = fetcher
        self.cpu = cpu
        self.clock = clock
        # polls processed at once: *workers*, besides the batches the worker processes hold,
        # so that full batches wait while those are written (docs/architecture.md)
        self.slots = threading.BoundedSemaphore(workers + cpu.held)

    def poll(self, up: StoredUpstream, owner: str) -> PollResult:
        """Fetch, then process the response on one of ``workers`` slots."""
        started = time.perf_counter()
        now = self.clock()
        req = FetchRequest(up.url, up.etag, up.last_modified, up.body_hash, up.headers)
        res = self.fetcher.fetch(req, now)
        fetch_seconds = time.perf_counter() - started
        with self.slots:
            result = self.cpu.process(up, owner, res, now)
        return dataclasses.replace(
            result, fetch_seconds=fetch_seconds, seconds=time.perf_counter() - started
        )
