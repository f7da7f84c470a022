"""Pure decisions of the delivery worker: which messages to send, and what an outcome means.

``plan_messages`` turns claimed deliveries (with their notices) into messages: one per
delivery, or digests that each cover several deliveries. ``decide`` maps a send outcome to
the store action for one delivery. ``failing_reason`` applies the failing-webhook rule:
a webhook marked failing stays failing until a test succeeds or its URL or secret changes.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from feedbot.config import WebhookConfig
from feedbot.notify.kinds.base import Kind, Notice, Payload, digest_heading, event_label, truncate
from feedbot.notify.sender import Delivered, Outcome, Permanent, RetryLater, cut
from feedbot.store.outbox import StoredDelivery

APPRISE_TEXT = 4_000
_FAILING_TAG = re.compile(r" \[config ([0-9a-f]{12})\]$")


@dataclass(frozen=True, slots=True)
class Item:
    """One claimed delivery and the notice it announces."""

    delivery: StoredDelivery
    notice: Notice


@dataclass(frozen=True, slots=True)
class Message:
    """One request: a JSON ``payload`` (or apprise ``title``/``text``) for some deliveries.

    ``msg_id`` is the ``webhook-id``: the delivery id for a single message, a hash of the
    covered delivery ids for a digest; both are the same on every retry of the same rows.
    """

    deliveries: tuple[StoredDelivery, ...]
    msg_id: str
    payload: Payload | None
    title: str = ""
    text: str = ""


def digest_id(ids: Sequence[str]) -> str:
    return "dg_" + hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:32]


def _one_message(kind: Kind, notices: Sequence[Notice], summary: str) -> Payload | None:
    payloads = kind.render_digest(notices, topic_summary=summary)
    return payloads[0] if len(payloads) == 1 else None


def _largest_fit(kind: Kind, notices: Sequence[Notice], start: int, probe: str) -> int:
    """How many notices from *start* fit in one digest message (at least one)."""
    high = len(notices) - start
    if kind.max_items_per_message:
        high = min(high, kind.max_items_per_message)
    if _one_message(kind, notices[start : start + high], probe) is not None:
        return high
    low, best = 2, 1
    high -= 1
    while low <= high:
        mid = (low + high) // 2
        if _one_message(kind, notices[start : start + mid], probe) is not None:
            best, low = mid, mid + 1
        else:
            high = mid - 1
    return best


def digest_messages(kind: Kind, items: Sequence[Item]) -> list[Message]:
    """Digests covering *items* in order, each one message within the kind's limits.

    Groups are sized first (with room for a " (n/N)" part suffix), then rendered with the
    heading of the whole batch, so every delivery belongs to exactly one message.
    """
    notices = [item.notice for item in items]
    heading = digest_heading(notices, "")
    probe = heading + " (99/99)"
    groups: list[range] = []
    start = 0
    while start < len(notices):
        size = _largest_fit(kind, notices, start, probe)
        groups.append(range(start, start + size))
        start += size
    out = []
    for index, group in enumerate(groups):
        part = f"{heading} ({index + 1}/{len(groups)})" if len(groups) > 1 else heading
        chunk = notices[group.start : group.stop]
        payload = _one_message(kind, chunk, part)
        if payload is None:  # a lone notice too big for a digest: send it on its own
            payload = kind.render(chunk[0])
        rows = tuple(items[i].delivery for i in group)
        msg_id = rows[0].id if len(rows) == 1 else digest_id([d.id for d in rows])
        out.append(Message(rows, msg_id, payload))
    return out


def apprise_text(notices: Sequence[Notice]) -> tuple[str, str]:
    """(title, body) in plain text for apprise targets."""
    if len(notices) == 1:
        n = notices[0]
        lines = [truncate(n.summary, APPRISE_TEXT), n.link or "", n.source or ""]
        return f"{event_label(n.event)}: {truncate(n.title, 250)}", "\n".join(x for x in lines if x)
    body = "\n".join(f"- {truncate(n.title, 200)} {n.link or ''}".rstrip() for n in notices)
    return truncate(digest_heading(notices, ""), 250), truncate(body, APPRISE_TEXT * 4)


def plan_messages(
    hook: WebhookConfig, kind: Kind | None, items: Sequence[Item], *, digest: bool
) -> list[Message]:
    """The messages for one webhook's claimed *items* (``kind`` is None for apprise)."""
    if kind is None:
        if digest and len(items) > 1:
            title, text = apprise_text([item.notice for item in items])
            rows = tuple(item.delivery for item in items)
            return [Message(rows, digest_id([d.id for d in rows]), None, title, text)]
        return [
            Message((item.delivery,), item.delivery.id, None, *apprise_text([item.notice]))
            for item in items
        ]
    if digest and len(items) > 1:
        return digest_messages(kind, items)
    return [Message((i.delivery,), i.delivery.id, kind.render(i.notice)) for i in items]


def sample_notice(name: str, now: datetime) -> Notice:
    """The message ``feedbot webhooks test`` sends."""
    return Notice(
        delivery_id=f"test_{uuid.uuid4().hex}",
        event="article.new",
        article_id=f"urn:feedbot:test:{name}",
        title="feedbot test message",
        summary=f"If you can read this, the webhook {name!r} works.",
        link=None,
        source="feedbot",
        source_url=None,
        published=now,
        topics=("test",),
    )


# --- outcomes -----------------------------------------------------------------------------

Action = Literal["done", "retry", "dead"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The store action for one delivery; ``count=False`` keeps the attempt budget."""

    action: Action
    status: int | None = None
    error: str | None = None
    next_attempt: datetime | None = None
    count: bool = True


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base: timedelta
    cap: timedelta


def backoff(attempt: int, policy: RetryPolicy, rand: Callable[[], float]) -> timedelta:
    """``base * 2**(attempt-1)``, ±20 % jitter, never above ``cap`` (attempt is 1-based)."""
    cap = policy.cap.total_seconds()
    delay = min(cap, policy.base.total_seconds() * 2.0 ** min(max(attempt - 1, 0), 60))
    return timedelta(seconds=min(cap, delay * (0.8 + 0.4 * rand())))


def decide(
    d: StoredDelivery,
    outcome: Outcome,
    now: datetime,
    policy: RetryPolicy,
    rand: Callable[[], float],
) -> Decision:
    """What *outcome* means for delivery *d* (pure)."""
    if isinstance(outcome, Delivered):
        return Decision("done", outcome.status)
    if isinstance(outcome, RetryLater):
        if outcome.rate_limited:
            wait = timedelta(seconds=outcome.wait) if outcome.wait is not None else policy.base
            when = now + min(wait, policy.cap)
            return Decision("retry", outcome.status, outcome.reason, when, count=False)
        attempt = d.attempts + 1
        if attempt >= policy.max_attempts:
            error = cut(f"gave up after {attempt} attempts: {outcome.reason}")
            return Decision("dead", outcome.status, error)
        delay = backoff(attempt, policy, rand)
        if outcome.wait is not None:
            delay = min(max(delay, timedelta(seconds=outcome.wait)), policy.cap)
        return Decision("retry", outcome.status, outcome.reason, now + delay)
    if outcome.webhook_gone:  # the row is fine; it waits for the webhook to be repaired
        return Decision("retry", outcome.status, outcome.reason, now, count=False)
    return Decision("dead", outcome.status, outcome.reason)


# --- failing webhooks ---------------------------------------------------------------------


def fingerprint(hook: WebhookConfig) -> str:
    """A short hash of the URL and secret: tells whether the config changed since."""
    blob = f"{hook.url}\0{hook.secret or ''}".encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def failing_text(reason: str, hook: WebhookConfig) -> str:
    """What ``webhook_state.failing`` stores: the reason, tagged with the config's hash."""
    return f"{reason} [config {fingerprint(hook)}]"


def failing_reason(stored: str | None, hook: WebhookConfig) -> str | None:
    """Why *hook* is failing, or None: not failing, or its URL/secret changed since."""
    if not stored:
        return None
    tag = _FAILING_TAG.search(stored)
    if tag is None:
        return stored
    return None if tag.group(1) != fingerprint(hook) else stored[: tag.start()]


def is_gone(outcome: Outcome) -> bool:
    return isinstance(outcome, Permanent) and outcome.webhook_gone
