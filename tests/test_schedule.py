"""The poll schedule: pure functions, table-driven."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from feedbot.poll.schedule import (
    ScheduleBounds,
    adaptive_interval,
    backoff,
    first_poll_offsets,
    next_check,
    observed_interval,
    parse_update_period,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BOUNDS = ScheduleBounds()
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def every(gap: timedelta, count: int) -> list[datetime]:
    return [T0 - gap * i for i in range(count)]


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([], None),
        ([T0], None),
        ([T0, T0, T0], None),  # one batch says nothing about the rate
        (every(2 * HOUR, 5), HOUR),
        (every(2 * HOUR, 5)[::-1], HOUR),  # order does not matter
        ([T0, T0 - HOUR, T0 - HOUR, T0 - 3 * HOUR], 45 * MIN),  # gaps 1 h, 2 h: median 1.5 h
        ([t.replace(tzinfo=None) for t in every(HOUR, 3)], 30 * MIN),  # naive taken as UTC
        # Only the newest 20 count: old hourly entries, recent ones every 10 minutes.
        (every(10 * MIN, 20) + [T0 - timedelta(days=10) - HOUR * i for i in range(50)], 5 * MIN),
    ],
)
def test_observed_interval(entries: list[datetime], expected: timedelta | None) -> None:
    assert observed_interval(entries) == expected


@pytest.mark.parametrize(
    ("entries", "configured", "ttl", "period", "max_age", "expected"),
    [
        # configured wins over everything, raised to one minute, not clamped to bounds
        (every(MIN, 10), 10 * MIN, 600, 24 * HOUR, 9e5, 10 * MIN),
        ([], timedelta(seconds=5), None, None, None, MIN),
        ([], 48 * HOUR, None, None, None, 48 * HOUR),
        # observed rate, halved
        (every(2 * HOUR, 10), None, None, None, None, HOUR),
        # no history: default interval
        ([], None, None, None, None, HOUR),
        # hints raise it ...
        (every(2 * HOUR, 10), None, 180, None, None, 3 * HOUR),
        (every(2 * HOUR, 10), None, None, 6 * HOUR, None, 6 * HOUR),
        (every(2 * HOUR, 10), None, None, None, 7200.0, 2 * HOUR),
        (every(2 * HOUR, 10), None, 90, 4 * HOUR, 3600.0, 4 * HOUR),  # largest hint
        # ... never lower it
        (every(2 * HOUR, 10), None, 10, 30 * MIN, 60.0, HOUR),
        (every(2 * HOUR, 10), None, 0, timedelta(0), 0.0, HOUR),  # empty hints ignored
        # clamped to bounds
        (every(MIN, 10), None, None, None, None, 5 * MIN),
        (every(timedelta(days=7), 10), None, None, None, None, 24 * HOUR),
        (every(2 * HOUR, 10), None, 60 * 24 * 30, None, None, 24 * HOUR),
    ],
)
def test_adaptive_interval(
    entries: list[datetime],
    configured: timedelta | None,
    ttl: int | None,
    period: timedelta | None,
    max_age: float | None,
    expected: timedelta,
) -> None:
    got = adaptive_interval(
        entries,
        configured=configured,
        ttl_minutes=ttl,
        update_period=period,
        cache_max_age=max_age,
        bounds=BOUNDS,
    )
    assert got == expected


@pytest.mark.parametrize(
    ("failures", "ceiling"),
    [
        (0, timedelta(0)),
        (-3, timedelta(0)),
        (1, 5 * MIN),
        (2, 10 * MIN),
        (3, 20 * MIN),
        (4, 40 * MIN),
        (5, 80 * MIN),
        (9, timedelta(minutes=5 * 256)),
        (10, timedelta(days=1)),  # 5 min * 512 > 1 day: capped
        (50, timedelta(days=1)),
        (10_000, timedelta(days=1)),  # no overflow
    ],
)
def test_backoff_grows_and_is_capped(failures: int, ceiling: timedelta) -> None:
    rand = random.Random(failures)
    waits = [backoff(failures, BOUNDS, rand) for _ in range(200)]
    assert all(ceiling / 2 <= w <= ceiling for w in waits)
    if ceiling:
        assert len(set(waits)) > 1  # jittered


def test_backoff_grows_with_each_failure_despite_jitter() -> None:
    rand = random.Random(7)
    waits = [backoff(n, BOUNDS, rand) for n in range(1, 10)]
    # equal jitter keeps each wait at least half its ceiling, so n+2 always beats n
    assert all(later > earlier for earlier, later in zip(waits, waits[2:], strict=False))


def test_backoff_respects_custom_bounds() -> None:
    bounds = ScheduleBounds(backoff_base=timedelta(seconds=30), backoff_cap=timedelta(hours=1))
    rand = random.Random(1)
    assert timedelta(seconds=15) <= backoff(1, bounds, rand) <= timedelta(seconds=30)
    assert timedelta(minutes=30) <= backoff(30, bounds, rand) <= timedelta(hours=1)


@pytest.mark.parametrize(
    ("interval", "retry_after", "jitter", "low", "high"),
    [
        (HOUR, None, 0.1, T0 + 54 * MIN, T0 + 66 * MIN),
        (HOUR, None, 0.0, T0 + HOUR, T0 + HOUR),
        (HOUR, T0 + 3 * HOUR, 0.1, T0 + 3 * HOUR, T0 + 3 * HOUR),  # retry_after later: wins
        (HOUR, T0 + 10 * MIN, 0.1, T0 + 54 * MIN, T0 + 66 * MIN),  # earlier: ignored
        (10 * MIN, T0 - HOUR, 0.5, T0 + 5 * MIN, T0 + 15 * MIN),  # in the past: ignored
    ],
)
def test_next_check(
    interval: timedelta,
    retry_after: datetime | None,
    jitter: float,
    low: datetime,
    high: datetime,
) -> None:
    bounds = ScheduleBounds(jitter=jitter)
    rand = random.Random(3)
    results = [
        next_check(T0, interval, retry_after=retry_after, rand=rand, bounds=bounds)
        for _ in range(200)
    ]
    assert all(low <= r <= high for r in results)
    assert all(r.tzinfo is not None and r.utcoffset() == timedelta(0) for r in results)
    assert (len(set(results)) > 1) == (low != high)


@pytest.mark.parametrize(
    ("n", "spread"),
    [(1, HOUR), (7, 10 * MIN), (1000, HOUR), (5, timedelta(0))],
)
def test_first_poll_offsets_spread_evenly(n: int, spread: timedelta) -> None:
    offsets = first_poll_offsets(n, spread, random.Random(n))
    assert len(offsets) == n
    assert offsets == sorted(offsets)
    assert all(timedelta(0) <= o <= spread for o in offsets)
    slot = spread / n
    # one offset in each of the n equal slots: no clumping at the start
    assert all(slot * i <= o <= slot * (i + 1) for i, o in enumerate(offsets))


def test_first_poll_offsets_of_a_big_import_rarely_share_a_minute() -> None:
    offsets = first_poll_offsets(1000, timedelta(hours=2), random.Random(0))
    per_minute: dict[int, int] = {}
    for o in offsets:
        minute = int(o.total_seconds() // 60)
        per_minute[minute] = per_minute.get(minute, 0) + 1
    assert max(per_minute.values()) <= 10  # 1000 feeds over 120 minutes: about 8 a minute


@pytest.mark.parametrize(("n", "spread"), [(0, HOUR), (-1, HOUR), (3, -HOUR)])
def test_first_poll_offsets_edges(n: int, spread: timedelta) -> None:
    if n == 0:
        assert first_poll_offsets(n, spread, random.Random(0)) == []
    else:
        with pytest.raises(ValueError, match="must not be negative"):
            first_poll_offsets(n, spread, random.Random(0))


@pytest.mark.parametrize(
    ("period", "frequency", "expected"),
    [
        (None, None, None),
        ("", "  ", None),
        ("hourly", None, HOUR),
        ("daily", None, 24 * HOUR),
        ("  Weekly ", "1", timedelta(weeks=1)),
        ("monthly", None, timedelta(days=30)),
        ("yearly", None, timedelta(days=365)),
        ("hourly", "2", 30 * MIN),
        ("daily", "24", HOUR),
        (None, "4", 6 * HOUR),  # period defaults to daily
        ("daily", "0", 24 * HOUR),  # nonsense frequency counts as 1
        ("daily", "twice", 24 * HOUR),
        ("daily", "-2", 24 * HOUR),
        ("fortnightly", "1", None),
    ],
)
def test_parse_update_period(
    period: str | None, frequency: str | None, expected: timedelta | None
) -> None:
    assert parse_update_period(period, frequency) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_interval": timedelta(0)},
        {"min_interval": timedelta(hours=2), "max_interval": HOUR},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"backoff_base": timedelta(days=2)},
        {"default_interval": timedelta(0)},
    ],
)
def test_invalid_bounds_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        ScheduleBounds(**kwargs)  # type: ignore[arg-type]
