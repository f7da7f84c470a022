"""Rate budgets per webhook and per channel: sliding windows over an injected "now".

A ``Budget`` is one ``Rate`` applied to one key (``webhook:NAME`` or ``channel:…``). The
throttle remembers when each key last sent and answers "how long until one more request
is allowed"; it never reads a clock and never sleeps, so callers decide what to do with a
wait (the delivery worker releases the rows and comes back later). ``hold`` records a wait
the server imposed (429, or a budget it says is spent).
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

from feedbot.notify.kinds.base import Rate

UNLIMITED = 1_000_000


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``rate.requests`` per ``rate.per_seconds`` for everything sent under ``key``."""

    key: str
    rate: Rate


def webhook_key(name: str) -> str:
    return f"webhook:{name}"


def channel_key(url: str) -> str:
    """Webhooks posting to the same URL share a channel budget (the URL is not kept)."""
    return "channel:" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def rate_from_limit(per_second: float) -> Rate:
    """``rate_limit = 2.5`` → 5 requests per 2 s; ``0.2`` → 1 request per 5 s."""
    if per_second < 1:
        return Rate(1, 1.0 / per_second)
    frac = Fraction(per_second).limit_denominator(100)
    return Rate(frac.numerator, float(frac.denominator))


def budgets_for(
    name: str, url: str, rates: Sequence[Rate], rate_limit: float | None
) -> tuple[Budget, ...]:
    """The budgets of one webhook: its kind's rates, with ``rate_limit`` replacing the
    webhook-scope ones (and adding one for kinds that declare none)."""
    out = []
    for rate in rates:
        if rate.scope == "channel":
            out.append(Budget(channel_key(url), rate))
        elif rate_limit is None:
            out.append(Budget(webhook_key(name), rate))
    if rate_limit is not None:
        out.append(Budget(webhook_key(name), rate_from_limit(rate_limit)))
    return tuple(out)


class Throttle:
    """Sliding-window logs per (key, rate) and server-imposed holds per key; thread-safe."""

    def __init__(self) -> None:
        self._sent: dict[tuple[str, int, float], deque[datetime]] = {}
        self._holds: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def _log(self, budget: Budget, now: datetime) -> deque[datetime]:
        key = (budget.key, budget.rate.requests, budget.rate.per_seconds)
        log = self._sent.setdefault(key, deque())
        horizon = now - timedelta(seconds=budget.rate.per_seconds)
        while log and log[0] <= horizon:
            log.popleft()
        return log

    def _wait(self, budgets: Sequence[Budget], now: datetime, keys: Sequence[str]) -> float:
        wait = 0.0
        for key in keys:
            until = self._holds.get(key)
            if until is not None:
                wait = max(wait, (until - now).total_seconds())
        for budget in budgets:
            log = self._log(budget, now)
            if len(log) >= budget.rate.requests:
                frees = log[len(log) - budget.rate.requests] + timedelta(
                    seconds=budget.rate.per_seconds
                )
                wait = max(wait, (frees - now).total_seconds())
        return max(0.0, wait)

    def wait(self, budgets: Sequence[Budget], now: datetime, holds: Sequence[str] = ()) -> float:
        """Seconds until one more request is allowed under every budget and hold (0: now)."""
        with self._lock:
            return self._wait(budgets, now, [*holds, *(b.key for b in budgets)])

    def available(self, budgets: Sequence[Budget], now: datetime, holds: Sequence[str] = ()) -> int:
        """How many requests every budget allows right now."""
        with self._lock:
            if self._wait((), now, [*holds, *(b.key for b in budgets)]) > 0:
                return 0
            room = UNLIMITED
            for budget in budgets:
                room = min(room, budget.rate.requests - len(self._log(budget, now)))
            return max(0, room)

    def acquire(self, budgets: Sequence[Budget], now: datetime, holds: Sequence[str] = ()) -> float:
        """Take one request from every budget if all allow it (returns 0), else the wait."""
        with self._lock:
            wait = self._wait(budgets, now, [*holds, *(b.key for b in budgets)])
            if wait > 0:
                return wait
            for budget in budgets:
                self._log(budget, now).append(now)
            return 0.0

    def hold(self, key: str, until: datetime) -> None:
        """Nothing is sent under *key* before *until* (keeps the later of two holds)."""
        with self._lock:
            current = self._holds.get(key)
            if current is None or until > current:
                self._holds[key] = until

    def clear_hold(self, key: str) -> None:
        with self._lock:
            self._holds.pop(key, None)
