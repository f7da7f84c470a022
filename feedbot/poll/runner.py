"""One poll cycle: claim due upstreams, poll them on a worker pool with a per-host limit.

Claims are taken in small batches as workers free up, so a slow or failing feed only ever
holds its own worker (its fetch is bounded by the deadline) and never delays the others
past their schedule; a host already at its limit is skipped for now, not waited on.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from feedbot.clock import Clock
from feedbot.errors import ProcessingError
from feedbot.pipeline import Pipeline, PollResult
from feedbot.store import upstreams as store_upstreams
from feedbot.store.db import Database
from feedbot.store.upstreams import StoredUpstream

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CycleResult:
    results: tuple[PollResult, ...]
    seconds: float

    @property
    def by_outcome(self) -> Counter[str]:
        return Counter(r.outcome for r in self.results)


@dataclass
class Poller:
    """Runs poll cycles. ``owner`` names this process in claims (leases)."""

    db: Database
    pipeline: Pipeline
    clock: Clock
    connections: int = 64  # polls in flight at once (fetching or processed)
    per_host: int = 2
    lease: timedelta = timedelta(minutes=5)
    owner: str = field(default_factory=lambda: f"poller-{uuid.uuid4().hex[:12]}")
    stop: threading.Event = field(default_factory=threading.Event)
    # one pool for the poller's life: a daemon tick polls a dozen feeds, and starting a
    # thread for each of them every tick cost more CPU than their 304s (see close())
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _pool_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def run_cycle(
        self,
        *,
        names: Sequence[str] = (),
        include_not_due: bool = False,
        progress: Callable[[PollResult], None] | None = None,
    ) -> CycleResult:
        """Poll every due upstream (or those named, or all with *include_not_due*) once."""
        import time

        started = time.perf_counter()
        if not names and not include_not_due and not self._anything_due():
            return CycleResult((), time.perf_counter() - started)
        results: list[PollResult] = []
        busy_hosts: Counter[str] = Counter()
        waiting: deque[StoredUpstream] = deque()
        cursor: list[int] = [0]  # highest id claimed, for cycles over all or named upstreams
        running: dict[Future[PollResult], StoredUpstream] = {}
        exhausted = False
        pool = self._executor()
        try:
            while not self.stop.is_set():
                if not exhausted and len(waiting) < self.connections:
                    limit = self.connections * 2 - len(waiting)
                    batch = self._claim(limit, names, include_not_due, cursor)
                    exhausted = len(batch) < limit  # a short batch: nothing more is due
                    waiting.extend(batch)
                self._start_ready(pool, waiting, running, busy_hosts)
                if not running:
                    if exhausted and not waiting:
                        break
                    if not waiting:
                        continue
                    # every waiting feed's host is busy and nothing runs: cannot happen, but never spin
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    up = running.pop(fut)
                    busy_hosts[_host(up.url)] -= 1
                    result = self._result(fut, up)
                    results.append(result)
                    if progress:
                        progress(result)
        except BaseException:
            wait(list(running))  # the polls started end before the error goes up
            raise
        for fut, up in running.items():  # stopping: finish what runs
            results.append(self._result(fut, up))
        self._release(waiting)
        return CycleResult(tuple(results), time.perf_counter() - started)

    def start(self) -> int:
        """Start the worker processes before the first cycle needs them (see
        ``CpuStage.start``); returns how many started."""
        return self.pipeline.cpu.start()

    def close(self) -> None:
        """Let the pool's threads go once their polls end; never waits for them (the
        daemon's grace period is the wait). Polling again starts a new pool."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.connections, thread_name_prefix="poll")
            return self._pool

    def _anything_due(self) -> bool:
        """A read, so an idle tick never takes the write lock."""
        with self.db.read() as conn:
            due = store_upstreams.next_due(conn)
        return due is not None and due <= self.clock()

    def _claim(
        self, limit: int, names: Sequence[str], include_not_due: bool, cursor: list[int]
    ) -> list[StoredUpstream]:
        if limit <= 0:
            return []
        with self.db.write() as conn:
            batch = store_upstreams.claim_due(
                conn, self.clock(), owner=self.owner, lease=self.lease, limit=limit,
                names=names, include_not_due=include_not_due,
                after_id=cursor[0] if (names or include_not_due) else None,
            )  # fmt: skip
        if batch:
            cursor[0] = max(cursor[0], *(u.id for u in batch))
        return batch

    def _start_ready(
        self,
        pool: ThreadPoolExecutor,
        waiting: deque[StoredUpstream],
        running: dict[Future[PollResult], StoredUpstream],
        busy_hosts: Counter[str],
    ) -> None:
        for _ in range(len(waiting)):
            if len(running) >= self.connections:
                return
            up = waiting.popleft()
            host = _host(up.url)
            if busy_hosts[host] >= self.per_host:
                waiting.append(up)
                continue
            busy_hosts[host] += 1
            running[pool.submit(self.pipeline.poll, up, self.owner)] = up

    def _result(self, fut: Future[PollResult], up: StoredUpstream) -> PollResult:
        try:
            return fut.result()
        except Exception as exc:  # a bug in one feed's processing must not stop the cycle
            if not isinstance(exc, ProcessingError):  # that one was logged where it was raised
                log.exception("polling %s crashed", up.name)
            error = f"{type(exc).__name__}: {exc}"
            with self.db.write() as conn:  # not due again at once: a crash must not spin
                store_upstreams.save_state(conn, up.id, self.owner, {
                    "next_check": self.clock() + self.lease, "last_error": error[:500],
                    "last_error_kind": "crashed",
                })  # fmt: skip
            return PollResult(up.name, "crashed", error)

    def _release(self, waiting: deque[StoredUpstream]) -> None:
        if not waiting:
            return
        with self.db.write() as conn:
            for up in waiting:
                store_upstreams.release(conn, up.id, self.owner)


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()
