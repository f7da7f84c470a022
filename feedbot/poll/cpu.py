"""Worker processes for the CPU-bound half of a poll (parse → relevance → dedup → store).

A 50-entry news feed costs tens of milliseconds of pure Python after its fetch; with
threads alone only one core does that work. Responses of ``offload_bytes`` or more are
therefore processed whole in a pool of worker processes, each with its own ``Processor``
(and connection pool) built from a ``ProcessorRecipe``: fetched responses go in,
``PollResult``s come out, and the store is written by the worker. The polling process
keeps only the network, the claims and small responses, where the round trip would cost
more than it saves. Workers log like the polling process (level, format, masked secrets).

Group commit: the responses that are waiting when a worker frees up (at most ``batch``)
go to it together and are written in one transaction, a savepoint each. On SQLite every
write transaction queues for the one write lock and pays for its commit, and that lock,
not the CPU, bounded a first poll of many feeds. Nothing waits to fill a batch: an idle
poller sends batches of one.

Responses processed in this process are group-committed too (``_LocalGroup``), by one
thread that processes everything waiting at once. A daemon's tick fetches its due feeds
together, so their write-backs (mostly 304s) become one transaction instead of one each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import TypeVar

from feedbot.errors import ProcessingError
from feedbot.logs import LogSetup, apply_setup, current_setup
from feedbot.poll.fetchdata import FetchResult
from feedbot.processor import Job, PollResult, Processor, ProcessorRecipe
from feedbot.store.upstreams import StoredUpstream

log = logging.getLogger(__name__)

OFFLOAD_BYTES = 32 * 1024
BATCH = 16
DIED = "the worker process died on this document or another of its batch"
GC_THRESHOLD = 10_000  # a worker's young-generation threshold (Python's is 700)
_IDLE_SECONDS = 5.0  # a thread of this stage with nothing to do for this long exits

_T = TypeVar("_T")

_worker: Processor | None = None


def _init_worker(
    recipe: ProcessorRecipe, logs: LogSetup | None, started: multiprocessing.Queue[int]
) -> None:
    global _worker
    apply_setup(logs)
    _worker = recipe.build()
    _tune_gc()
    started.put(os.getpid())


def _tune_gc() -> None:
    """Collect cycles less often in a worker process: what it built at start is frozen
    (never walked again) and the young generation waits for ``GC_THRESHOLD`` allocations.
    A poll's objects are freed by reference counting; see docs/architecture.md."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def _nothing() -> None:
    """A task that makes the pool start one more worker process (see ``CpuStage.start``)."""


def _in_worker(jobs: Sequence[Job]) -> list[PollResult | ProcessingError]:
    assert _worker is not None
    return _worker.process_many(jobs)


class _WorkerDiedError(Exception):
    """The batch's worker process died; its polls are recorded as failed, in-process."""


def _settle(
    batch: Sequence[tuple[Job, Future[PollResult]]],
    results: Sequence[PollResult | BaseException],
) -> None:
    """Hand each waiting caller its poll's result, or the error it raises."""
    for (_, done), result in zip(batch, results, strict=True):
        if isinstance(result, BaseException):
            done.set_exception(result)
        else:
            done.set_result(result)


def _running(
    thread: threading.Thread | None, target: Callable[[], None], name: str
) -> threading.Thread:
    """*thread* if it still runs, else a new daemon thread running *target*, started."""
    if thread is not None and thread.is_alive():
        return thread
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def _next_batch(
    ready: threading.Condition,
    waiting: deque[_T],
    size: int,
    stop: Callable[[], bool] = lambda: False,
) -> list[_T]:
    """Holding *ready*: up to *size* of what waits, once something does; empty after
    ``_IDLE_SECONDS`` with nothing, or once *stop* says so with nothing waiting."""
    if not ready.wait_for(lambda: waiting or stop(), timeout=_IDLE_SECONDS) or not waiting:
        return []
    return [waiting.popleft() for _ in range(min(len(waiting), size))]


class _LocalGroup:
    """Group commit in this process, on one thread of its own: each caller queues its job
    and waits; the thread processes what waits (up to ``batch``) in one transaction.

    One thread, not whichever caller comes first: lxml keeps a parser dictionary per
    thread that grows with the documents parsed there, and parsing on the poll's dozens
    of threads made the polling process's memory grow with the number of feeds."""

    def __init__(self, local: Processor, batch: int) -> None:
        self.local = local
        self.batch = batch
        self._waiting: deque[tuple[Job, Future[PollResult]]] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    def process(self, job: Job) -> PollResult:
        done: Future[PollResult] = Future()
        with self._ready:
            self._waiting.append((job, done))
            self._ready.notify()
            self._thread = _running(self._thread, self._loop, "cpu-local")
        return done.result()  # raises the poll's ProcessingError

    def _loop(self) -> None:
        """Process what waits; exit after an idle while (the next job starts a new one)."""
        while True:
            with self._ready:
                batch = _next_batch(self._ready, self._waiting, self.batch)
                if not batch:
                    self._thread = None
                    return
            self._run(batch)

    def _run(self, batch: list[tuple[Job, Future[PollResult]]]) -> None:
        try:
            _settle(batch, self.local.process_many([job for job, _ in batch]))
        except BaseException as exc:  # the store failed: every poll still waiting fails
            waiting = [(job, done) for job, done in batch if not done.done()]
            _settle(waiting, [exc] * len(waiting))  # and this thread goes on


class CpuStage:
    """Processes responses in this process or in the pool; ``processes=0``: never a pool."""

    def __init__(
        self,
        local: Processor,
        recipe: ProcessorRecipe,
        *,
        processes: int,
        offload_bytes: int = OFFLOAD_BYTES,
        batch: int = BATCH,
    ) -> None:
        self.local = local
        self._group = _LocalGroup(local, batch)
        self.recipe = recipe
        self.processes = processes
        self.offload_bytes = offload_bytes
        self.batch = batch
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._waiting: deque[tuple[Job, Future[PollResult]]] = deque()
        self._ready = threading.Condition()
        self._free = threading.Semaphore(max(processes, 1))  # batches in flight
        self._dispatcher: threading.Thread | None = None
        self._closed = False
        self._context = multiprocessing.get_context("spawn")  # safe beside threads
        # each worker reports here once its processor is built (made with the pool: a
        # queue's lock starts multiprocessing's resource tracker process)
        self._started: multiprocessing.Queue[int] | None = None

    @property
    def held(self) -> int:
        """Responses the worker processes hold at most: a batch each, in flight."""
        return max(self.processes, 0) * self.batch

    def start(self, timeout: float = 60.0) -> int:
        """Start the worker processes now, and wait (at most *timeout* seconds) until each
        has built its processor; returns how many did. Otherwise the first poll that needs
        a worker starts them, and pays for their start-up (imports, topics, a connection:
        about a second of CPU each). The daemon calls it at start."""
        with self._lock:
            if self.processes <= 0 or self._pool is not None or self._closed:
                return 0  # no pool, or started already
        try:
            pool = self._get_pool()
            started = self._started
            assert started is not None  # made with the pool
            with contextlib.suppress(queue.Empty):
                while True:  # what workers of an earlier pool reported
                    started.get_nowait()
            # a process pool starts one more worker for each task that no idle worker takes
            tasks = [pool.submit(_nothing) for _ in range(self.processes)]
        except RuntimeError:  # shut (or broken) meanwhile: the next poll starts a pool
            return 0
        ready: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(ready) < self.processes and time.monotonic() < deadline and not self._closed:
            try:
                ready.add(started.get(timeout=0.1))
            except queue.Empty:
                if any(t.done() and (t.cancelled() or t.exception()) for t in tasks):
                    break  # the pool broke or was shut: the next poll starts a new one
        if len(ready) < self.processes:
            log.warning("%d of %d worker processes started", len(ready), self.processes)
        return len(ready)

    def process(
        self, up: StoredUpstream, owner: str, res: FetchResult, now: datetime
    ) -> PollResult:
        body = res.body
        small = body is None or len(body) < self.offload_bytes
        if self.processes <= 0 or small or self._closed:
            return self._group.process(Job(up, owner, res, now))
        job = Job(up, owner, dataclasses.replace(res, headers=dict(res.headers)), now)
        done: Future[PollResult] = Future()  # headers: a read-only proxy does not pickle
        with self._ready:
            self._waiting.append((job, done))
            self._ready.notify()
            self._dispatcher = _running(self._dispatcher, self._dispatch, "cpu-dispatch")
        try:
            return done.result()
        except _WorkerDiedError:
            return self.local.process(up, owner, res, now, failure=DIED)

    def _dispatch(self) -> None:
        """Send what waits to a free worker, up to ``batch`` at once; exit when idle."""
        while True:
            self._free.acquire()
            with self._ready:
                batch = _next_batch(self._ready, self._waiting, self.batch, lambda: self._closed)
                if not batch:  # idle or closed: the next job starts a new one
                    self._dispatcher = None
                    self._free.release()
                    return
            self._send(batch)

    def _send(self, batch: list[tuple[Job, Future[PollResult]]]) -> None:
        try:
            pool = self._get_pool()
            running = pool.submit(_in_worker, [job for job, _ in batch])
        except BrokenProcessPool:
            self._free.release()
            self._died(pool, batch)
            return
        except RuntimeError as exc:  # closed meanwhile (the poller has finished by then)
            self._free.release()
            for _, done in batch:
                done.set_exception(exc)
            return
        running.add_done_callback(lambda f: self._finished(f, pool, batch))

    def _finished(
        self,
        running: Future[list[PollResult | ProcessingError]],
        pool: ProcessPoolExecutor,
        batch: list[tuple[Job, Future[PollResult]]],
    ) -> None:
        self._free.release()
        try:
            results = running.result()
        except BrokenProcessPool:
            self._died(pool, batch)
            return
        except Exception as exc:  # the batch could not be sent or returned (a bug)
            _settle(batch, [exc] * len(batch))
            return
        _settle(batch, results)

    def _died(self, pool: ProcessPoolExecutor, batch: list[tuple[Job, Future[PollResult]]]) -> None:
        names = ", ".join(job.up.name for job, _ in batch)
        log.error("a worker process died on %s; restarting the pool", names)
        self._reset(pool)
        for _, done in batch:
            done.set_exception(_WorkerDiedError())

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker processes were shut down")
            if self._pool is None:
                if self._started is None:
                    self._started = self._context.Queue()
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=self._context,
                    initializer=_init_worker,
                    initargs=(self.recipe, current_setup(), self._started),
                )
            return self._pool

    def _reset(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        with self._lock:  # _get_pool makes no pool once _closed is set; shut the last one
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
