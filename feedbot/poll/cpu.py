"""Worker processes for the CPU-bound half of a poll (parse → relevance → dedup → store).

A 50-entry news feed costs tens of milliseconds of pure Python after its fetch; with
threads alone only one core does that work. Responses of ``offload_bytes`` or more are
therefore processed whole in a pool of worker processes, each with its own ``Processor``
(and connection pool) built from a ``ProcessorRecipe``: the fetched response goes in, a
``PollResult`` comes out, and the store is written by the worker. The polling process
keeps only the network, the claims and small responses, where the round trip would cost
more than it saves. Workers log like the polling process (level, format, masked secrets).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from feedbot.logs import LogSetup, apply_setup, current_setup
from feedbot.poll.fetch import FetchResult
from feedbot.processor import PollResult, Processor, ProcessorRecipe
from feedbot.store.upstreams import StoredUpstream

log = logging.getLogger(__name__)

OFFLOAD_BYTES = 32 * 1024

_worker: Processor | None = None


def _init_worker(recipe: ProcessorRecipe, logs: LogSetup | None) -> None:
    global _worker
    apply_setup(logs)
    _worker = recipe.build()


def _in_worker(up: StoredUpstream, owner: str, res: FetchResult, now: datetime) -> PollResult:
    assert _worker is not None
    return _worker.process(up, owner, res, now)


class CpuStage:
    """Processes responses in this process or in the pool; ``processes=0``: never a pool."""

    def __init__(
        self,
        local: Processor,
        recipe: ProcessorRecipe,
        *,
        processes: int,
        offload_bytes: int = OFFLOAD_BYTES,
    ) -> None:
        self.local = local
        self.recipe = recipe
        self.processes = processes
        self.offload_bytes = offload_bytes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def process(
        self, up: StoredUpstream, owner: str, res: FetchResult, now: datetime
    ) -> PollResult:
        body = res.body
        if self.processes <= 0 or body is None or len(body) < self.offload_bytes:
            return self.local.process(up, owner, res, now)
        pool = self._get_pool()
        try:
            sent = dataclasses.replace(res, headers=dict(res.headers))  # a proxy won't pickle
            return pool.submit(_in_worker, up, owner, sent, now).result()
        except BrokenProcessPool:
            log.error("a worker process died on %s; restarting the pool", up.name)
            self._reset(pool)
            return self.local.process(
                up, owner, res, now, failure="the worker process died on this document"
            )

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=multiprocessing.get_context("spawn"),  # safe beside threads
                    initializer=_init_worker,
                    initargs=(self.recipe, current_setup()),
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
