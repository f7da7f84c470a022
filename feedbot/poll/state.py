"""Pure: an upstream's next state from one fetch (and parse) outcome.

Given the stored upstream, the fetch result, the parsed feed (or the parse error) and "now",
:func:`next_state` returns the column values to write back: validators, interval, next
check, failure count, redirect bookkeeping, and whether the feed is disabled and why.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from feedbot.poll.feeddata import FeedData
from feedbot.poll.fetchdata import FetchOutcome, FetchResult
from feedbot.poll.schedule import (
    ScheduleBounds,
    adaptive_interval,
    backoff,
    next_check,
    parse_update_period,
)
from feedbot.store.upstreams import StoredUpstream

# A 301/308 to the same new URL this many polls in a row moves the stored URL there.
REDIRECT_CONFIRMATIONS = 3
PARSE_ERROR = "parse_error"


@dataclass(frozen=True, slots=True)
class StateChange:
    """The columns to write, the outcome label, and a message when something failed."""

    values: dict[str, Any]
    outcome: str
    error: str | None
    disabled: str | None
    moved_to: str | None


def next_state(
    up: StoredUpstream,
    res: FetchResult,
    feed: FeedData | None,
    parse_error: str | None,
    now: datetime,
    *,
    rand: random.Random,
    bounds: ScheduleBounds,
    max_failures: int,
) -> StateChange:
    values: dict[str, Any] = {"last_attempt": now, "polls": up.polls + 1}
    moved_to = _redirects(up, res, values)
    configured = timedelta(seconds=up.interval_s) if up.interval_s else None
    if res.succeeded and parse_error is None:
        values.update(
            consecutive_failures=0,
            last_success=now,
            etag=res.etag if res.etag is not None else up.etag,
            last_modified=res.last_modified if res.last_modified is not None else up.last_modified,
            body_hash=res.body_hash or up.body_hash,
        )
        if feed is not None:
            values["title"] = feed.title or up.title
            times = [t for e in feed.entries if (t := e.published or e.updated)]
            interval = adaptive_interval(
                times,
                configured=configured,
                ttl_minutes=feed.ttl_minutes,
                update_period=parse_update_period(feed.update_period, feed.update_frequency),
                cache_max_age=res.cache_max_age,
                bounds=bounds,
            )
        else:
            current = timedelta(seconds=up.current_interval_s) if up.current_interval_s else None
            interval = adaptive_interval(
                [],
                configured=configured or current,
                ttl_minutes=None,
                update_period=None,
                cache_max_age=res.cache_max_age,
                bounds=bounds,
            )
        values["current_interval_s"] = int(interval.total_seconds())
        values["next_check"] = next_check(
            now, interval, retry_after=res.retry_after, rand=rand, bounds=bounds
        )
        return StateChange(values, res.outcome.value, None, None, moved_to)

    outcome = PARSE_ERROR if parse_error is not None else res.outcome.value
    error = parse_error or res.error or outcome
    failures = up.consecutive_failures + 1
    values.update(consecutive_failures=failures, last_error=error, last_error_kind=outcome)
    disabled: str | None = None
    if res.outcome is FetchOutcome.GONE:
        disabled = f"the upstream answered 410 Gone: {error}"
    elif failures >= max_failures:
        disabled = f"{failures} consecutive failures; the last: {error}"
    if disabled:
        values.update(enabled=False, disabled_reason=disabled)
    wait = backoff(failures, bounds, rand)
    when = now + wait
    if res.retry_after is not None and res.retry_after > when:
        when = res.retry_after
    if res.outcome is FetchOutcome.RETRY_LATER and res.retry_after is not None:
        when = res.retry_after  # the server said when: exactly that, not our guess
    values["next_check"] = when
    return StateChange(values, outcome, error, disabled, moved_to)


def _redirects(up: StoredUpstream, res: FetchResult, values: dict[str, Any]) -> str | None:
    """Count consistent permanent redirects; after enough of them, move the stored URL."""
    target = res.permanent_url
    if not target or target == up.url:
        if up.redirect_url is not None:
            values.update(redirect_url=None, redirect_count=0)
        return None
    count = up.redirect_count + 1 if up.redirect_url == target else 1
    if count >= REDIRECT_CONFIRMATIONS:
        values.update(url=target, redirect_url=None, redirect_count=0)
        return target
    values.update(redirect_url=target, redirect_count=count)
    return None
