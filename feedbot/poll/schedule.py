"""When to check a feed next: adaptive interval, failure backoff, jitter, first-poll spread.

Pure functions: the caller passes "now" (aware UTC) and a ``random.Random``.
"""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from feedbot.clock import as_utc

MIN_CONFIGURED = timedelta(minutes=1)
RECENT_ENTRIES = 20  # how many of the newest entries the observed rate is taken from
_MAX_DOUBLINGS = 40  # beyond this 2**n overflows timedelta long before any cap matters

# RSS 1.0 syndication module (sy:updatePeriod); months and years taken as 30 and 365 days.
_PERIODS = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(weeks=1),
    "monthly": timedelta(days=30),
    "yearly": timedelta(days=365),
}


@dataclass(frozen=True, slots=True)
class ScheduleBounds:
    """Limits of the poll schedule; ``jitter`` is a fraction of the interval (0.1 = ±10 %)."""

    min_interval: timedelta = timedelta(minutes=5)
    max_interval: timedelta = timedelta(hours=24)
    jitter: float = 0.1
    backoff_base: timedelta = timedelta(minutes=5)
    backoff_cap: timedelta = timedelta(days=1)
    default_interval: timedelta = timedelta(hours=1)  # when entries say nothing about the rate

    def __post_init__(self) -> None:
        if not timedelta(0) < self.min_interval <= self.max_interval:
            raise ValueError("need 0 < min_interval <= max_interval")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if not timedelta(0) < self.backoff_base <= self.backoff_cap:
            raise ValueError("need 0 < backoff_base <= backoff_cap")
        if self.default_interval <= timedelta(0):
            raise ValueError("default_interval must be positive")


DEFAULT_BOUNDS = ScheduleBounds()


def observed_interval(entry_times: Sequence[datetime]) -> timedelta | None:
    """Half the median gap between the distinct times of the newest entries, or None.

    Entries published in one batch share a time and count once; fewer than two
    distinct times say nothing about the rate.
    """
    distinct = sorted({as_utc(t) for t in entry_times}, reverse=True)[:RECENT_ENTRIES]
    if len(distinct) < 2:
        return None
    gaps = [(a - b).total_seconds() for a, b in itertools.pairwise(distinct)]
    return timedelta(seconds=statistics.median(gaps) / 2)


def adaptive_interval(
    entry_times: Sequence[datetime],
    *,
    configured: timedelta | None,
    ttl_minutes: int | None,
    update_period: timedelta | None,
    cache_max_age: float | None,
    bounds: ScheduleBounds = DEFAULT_BOUNDS,
) -> timedelta:
    """The interval between two checks of one feed.

    1. A configured interval wins, raised to at least one minute (or to ``bounds.min_interval``
       when that is lower); nothing else applies.
    2. Otherwise start from the observed rate: half the median gap between the distinct
       publication times of the newest ``RECENT_ENTRIES`` entries (``bounds.default_interval``
       when there are fewer than two).
    3. Publisher hints only raise it, never lower it: RSS ``ttl`` (minutes),
       ``sy:updatePeriod``/``sy:updateFrequency``, and Cache-Control max-age/Expires (s).
    4. Clamp to ``[bounds.min_interval, bounds.max_interval]``.
    """
    if configured is not None:
        return max(configured, min(MIN_CONFIGURED, bounds.min_interval))
    interval = observed_interval(entry_times) or bounds.default_interval
    hints = [
        timedelta(minutes=ttl_minutes) if ttl_minutes and ttl_minutes > 0 else None,
        update_period if update_period and update_period > timedelta(0) else None,
        timedelta(seconds=cache_max_age) if cache_max_age and cache_max_age > 0 else None,
    ]
    for hint in hints:
        if hint is not None and hint > interval:
            interval = hint
    return min(max(interval, bounds.min_interval), bounds.max_interval)


def backoff(consecutive_failures: int, bounds: ScheduleBounds, rand: random.Random) -> timedelta:
    """The wait after *consecutive_failures* failures in a row (0 gives no wait).

    Exponential with "equal jitter": the ceiling is ``backoff_base * 2**(n-1)`` capped at
    ``backoff_cap``, and the wait is drawn from [ceiling/2, ceiling], so it still grows
    with each failure while spreading feeds that failed together.
    """
    if consecutive_failures <= 0:
        return timedelta(0)
    doublings = min(consecutive_failures - 1, _MAX_DOUBLINGS)
    base = bounds.backoff_base.total_seconds()
    ceiling = min(base * 2.0**doublings, bounds.backoff_cap.total_seconds())
    return timedelta(seconds=ceiling / 2 + rand.uniform(0, ceiling / 2))


def next_check(
    now: datetime,
    interval: timedelta,
    *,
    retry_after: datetime | None,
    rand: random.Random,
    bounds: ScheduleBounds = DEFAULT_BOUNDS,
) -> datetime:
    """``now + interval`` moved by up to ±``bounds.jitter`` of it, never before *retry_after*."""
    factor = 1 + rand.uniform(-bounds.jitter, bounds.jitter)
    when = as_utc(now) + interval * factor
    if retry_after is not None and as_utc(retry_after) > when:
        return as_utc(retry_after)
    return when


def first_poll_offsets(n: int, spread: timedelta, rand: random.Random) -> list[timedelta]:
    """Offsets from now for the first polls of *n* new feeds, ascending, within *spread*.

    The window is cut into *n* equal slots with one random point in each, so a large
    import neither fires at once nor clumps by chance.
    """
    if n < 0 or spread < timedelta(0):
        raise ValueError("n and spread must not be negative")
    if n == 0:
        return []
    slot = spread / n
    return [slot * (i + rand.random()) for i in range(n)]


def parse_update_period(period: str | None, frequency: str | None) -> timedelta | None:
    """The interval announced by ``sy:updatePeriod`` and ``sy:updateFrequency``, or None.

    The module's defaults apply when one is missing (daily, once). An unknown period
    gives None; a frequency that is not a positive integer counts as 1.
    """
    period = (period or "").strip().lower()
    frequency = (frequency or "").strip()
    if not period and not frequency:
        return None
    length = _PERIODS.get(period or "daily")
    if length is None:
        return None
    times = int(frequency) if frequency.isdigit() and int(frequency) > 0 else 1
    return length / times
