"""The delivery worker: drains the outbox to the configured webhooks.

One ``drain_once``: read which webhooks may send now (not failing, no server-imposed wait
in ``webhook_state.next_send``, rate budget left), claim each one's due rows with a lease
(one claim per webhook, so a backlog on one never starves another), send each webhook's
messages in its own thread (throttled before every request), and write the outcomes with
fenced updates in batches. A webhook stops sending for this drain at its first retryable
failure, so a dead endpoint costs at most one timeout per drain and never delays others.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import Connection

from feedbot import metrics
from feedbot.clock import Clock, utcnow
from feedbot.config import NotifyConfig, WebhookConfig
from feedbot.errors import NotifyError
from feedbot.notify import signing
from feedbot.notify.payloads import KINDS, Kind, Rate, notice_from_article
from feedbot.notify.plan import (
    Decision,
    Item,
    Message,
    RetryPolicy,
    backoff,
    decide,
    failing_reason,
    failing_text,
    plan_messages,
    sample_notice,
)
from feedbot.notify.sender import (
    Delivered,
    Outcome,
    Permanent,
    RetryLater,
    Sender,
    scrub,
    send_apprise,
)
from feedbot.notify.throttle import Budget, Throttle, budgets_for, webhook_key
from feedbot.store import articles as store_articles
from feedbot.store import outbox
from feedbot.store.db import Database

log = logging.getLogger(__name__)

FLUSH_EVERY = 100  # outcomes written per transaction while a webhook is sending
_COUNTS = ("claimed", "messages", "delivered", "retried", "dead", "released", "lost")


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What one drain did. Counts are delivery rows unless named ``messages``."""

    claimed: int = 0
    messages: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    released: int = 0
    lost: int = 0  # outcomes not written: another worker holds the row now
    failing: tuple[str, ...] = ()  # webhooks not sent to because they are failing
    waiting: tuple[str, ...] = ()  # webhooks waiting for a rate budget or a server's wait
    wake_at: datetime | None = None  # the earliest time a waiting webhook may send again

    def __add__(self, other: DrainResult) -> DrainResult:
        counts = {name: getattr(self, name) + getattr(other, name) for name in _COUNTS}
        wakes = [w for w in (self.wake_at, other.wake_at) if w is not None]
        return DrainResult(
            **counts,
            failing=tuple(dict.fromkeys(self.failing + other.failing)),
            waiting=tuple(dict.fromkeys(self.waiting + other.waiting)),
            wake_at=min(wakes) if wakes else None,
        )


@dataclass
class _Batch:
    """One webhook's pending writes and counts during a drain (stays inside this module)."""

    hook: WebhookConfig
    writes: list[tuple[outbox.StoredDelivery, Decision]] = field(default_factory=list)
    releases: list[outbox.StoredDelivery] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    wake_at: datetime | None = None
    failing: bool = False

    def bump(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def default_owner() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def make_session(pool: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=32, pool_maxsize=pool, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Deliverer:
    """Sends due outbox rows; safe to run in several processes (leases and fences)."""

    def __init__(
        self,
        db: Database,
        webhooks: Sequence[WebhookConfig],
        notify: NotifyConfig,
        *,
        clock: Clock = utcnow,
        session: requests.Session | None = None,
        owner: str | None = None,
        rand: Callable[[], float] = random.random,
        workers: int = 8,
    ) -> None:
        self.db = db
        self.webhooks = {hook.name: hook for hook in webhooks}
        self.notify = notify
        self.clock = clock
        self.owner = owner or default_owner()
        self.rand = rand
        self.workers = workers
        self._own_session = session is None
        self.session = session or make_session(max(10, workers * 2))
        self.sender = Sender(
            self.session,
            connect_timeout=notify.connect_timeout.total_seconds(),
            read_timeout=notify.read_timeout.total_seconds(),
        )
        self.throttle = Throttle()
        self._writing = threading.Lock()  # threads queue here, not in SQLite's busy wait
        self._budgets: dict[str, tuple[Budget, ...]] = {
            h.name: budgets_for(h.name, h.url, _rates(h), h.rate_limit) for h in webhooks
        }

    def __repr__(self) -> str:
        return f"Deliverer(webhooks={sorted(self.webhooks)!r}, owner={self.owner!r})"

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    # --- the drain -------------------------------------------------------------------

    def drain_once(self, limit: int | None = None) -> DrainResult:
        """Claim, send and record one round of due deliveries (at most *limit* rows)."""
        now = self.clock()
        enabled = [h for h in self.webhooks.values() if h.enabled]
        with self.db.read() as conn:
            states = outbox.webhook_states(conn)
            due = outbox.due_counts(conn, now, [h.name for h in enabled])
        failing, waiting, cleared = [], [], []
        wakes: list[datetime] = []
        plan: list[tuple[WebhookConfig, int, bool]] = []
        remaining = limit if limit is not None else len(enabled) * self.notify.batch
        for hook in enabled:
            state = states.get(hook.name, {})
            if state.get("failing") and failing_reason(state["failing"], hook) is None:
                cleared.append(hook.name)
            elif state.get("failing"):
                failing.append(hook.name)
                continue
            pending = due.get(hook.name, 0)
            if pending == 0 or remaining <= 0:
                continue
            key = webhook_key(hook.name)
            if state.get("next_send") and state["next_send"] > now:
                self.throttle.hold(key, state["next_send"])
            budgets = self._budgets[hook.name]
            room = self.throttle.available(budgets, now, [key])
            if room == 0:
                waiting.append(hook.name)
                wakes.append(now + timedelta(seconds=self.throttle.wait(budgets, now, [key])))
                continue
            digest = pending > hook.digest_threshold
            take = min(pending, self.notify.batch, remaining, pending if digest else room)
            plan.append((hook, take, digest))
            remaining -= take
        if cleared:
            with self.db.write() as conn:
                for name in cleared:
                    outbox.set_webhook_state(conn, name, failing=None)
            log.info("webhooks %s: URL or secret changed; sending again", ", ".join(cleared))
        claimed = self._claim(plan, now)
        items = self._load(claimed)
        jobs = [(hook, items[hook.name], digest) for hook, _, digest in plan if items[hook.name]]
        if len(jobs) > 1:
            with ThreadPoolExecutor(min(self.workers, len(jobs)), "feedbot-deliver") as pool:
                batches = list(pool.map(lambda job: self._run(job[0], job[1], job[2], now), jobs))
        else:
            batches = [self._run(hook, rows, digest, now) for hook, rows, digest in jobs]
        result = DrainResult(
            claimed=sum(len(rows) for rows in claimed.values()),
            failing=tuple(failing),
            waiting=tuple(waiting),
            wake_at=min(wakes) if wakes else None,
        )
        for batch in batches:
            result += DrainResult(
                **batch.counts,
                failing=(batch.hook.name,) if batch.failing else (),
                waiting=(batch.hook.name,) if batch.wake_at else (),
                wake_at=batch.wake_at,
            )
        if result.claimed:
            log.info(
                "drain: %d claimed, %d delivered in %d messages, %d to retry, %d dead, %d released",
                result.claimed, result.delivered, result.messages, result.retried, result.dead,
                result.released,
            )  # fmt: skip
        return result

    def _claim(
        self, plan: Sequence[tuple[WebhookConfig, int, bool]], now: datetime
    ) -> dict[str, list[outbox.StoredDelivery]]:
        if not plan:
            return {}
        with self.db.write() as conn:
            return {
                hook.name: outbox.claim(
                    conn,
                    now,
                    owner=self.owner,
                    lease=self.notify.lease,
                    limit=take,
                    webhooks=[hook.name],
                )
                for hook, take, _ in plan
            }

    def _load(self, claimed: dict[str, list[outbox.StoredDelivery]]) -> dict[str, list[Item]]:
        """The notice of every claimed row; a row whose article is gone is dead here."""
        out: dict[str, list[Item]] = {name: [] for name in claimed}
        ids = [d.article_id for rows in claimed.values() for d in rows]
        if not ids:
            return out
        with self.db.read() as conn:
            found = store_articles.get_articles(conn, ids)
        gone: list[outbox.StoredDelivery] = []
        for name, rows in claimed.items():
            for d in rows:
                article = found.get(d.article_id)
                if article is None:
                    gone.append(d)
                    continue
                notice = notice_from_article(article, delivery_id=d.id, event=d.event)
                out[name].append(Item(d, notice))
        if gone:
            with self.db.write() as conn:
                for d in gone:
                    outbox.mark_dead(conn, d, self.clock(), "article no longer stored", None)
        return out

    def _run(
        self, hook: WebhookConfig, items: list[Item], digest: bool, claimed_at: datetime
    ) -> _Batch:
        """Send one webhook's messages in order, then record the outcomes."""
        batch = _Batch(hook)
        messages = plan_messages(hook, _kind(hook), items, digest=digest)
        key = webhook_key(hook.name)
        budgets = self._budgets[hook.name]
        stop_at = claimed_at + self.notify.lease / 2  # leave the rest to a fresh lease
        for index, message in enumerate(messages):
            now = self.clock()
            wait = self.throttle.acquire(budgets, now, [key]) if now < stop_at else None
            if wait is None or wait > 0:  # lease half used, or no budget: release the rest
                if wait:
                    batch.wake_at = now + timedelta(seconds=wait)
                for rest in messages[index:]:
                    batch.releases.extend(rest.deliveries)
                break
            outcome = self._send(hook, message, now)
            batch.bump("messages")
            if not self._record(batch, message, outcome, now):
                for rest in messages[index + 1 :]:
                    batch.releases.extend(rest.deliveries)
                break
            if len(batch.writes) >= FLUSH_EVERY:
                self._flush(batch)
        self._flush(batch)
        return batch

    def _send(self, hook: WebhookConfig, message: Message, now: datetime) -> Outcome:
        if message.payload is None:
            return send_apprise(hook.url, message.title, message.text)
        body = json.dumps(message.payload).encode("utf-8")
        stamp = int(now.timestamp())
        headers = {"webhook-id": message.msg_id, "webhook-timestamp": str(stamp)}
        if hook.secret:
            try:
                headers = signing.sign(hook.secret, message.msg_id, stamp, body)
            except NotifyError as exc:
                return Permanent(f"cannot sign: {exc.message}", webhook_gone=True)
        hide = [hook.secret] if hook.secret else []
        return self.sender.post(hook.kind, hook.url, body, headers, now, hide=hide)

    def _record(self, batch: _Batch, message: Message, outcome: Outcome, now: datetime) -> bool:
        """Queue the decisions for *message*; False when the webhook should stop for now."""
        hook = batch.hook
        policy = RetryPolicy(hook.max_attempts, self.notify.retry_base, self.notify.retry_cap)
        for d in message.deliveries:
            decision = decide(d, outcome, now, policy, self.rand)
            batch.writes.append((d, decision))
            metrics.record_delivery(str(decision.action), hook.name)
        key = webhook_key(hook.name)
        if isinstance(outcome, Delivered):
            batch.state["last_success"] = now
            if outcome.hold:
                self.throttle.hold(key, now + timedelta(seconds=outcome.hold))
            log.debug("webhook %s: HTTP %s for %s", hook.name, outcome.status, message.msg_id)
            return True
        reason = scrub(outcome.reason, hook)
        batch.state["last_error"] = reason
        status = outcome.status
        if isinstance(outcome, RetryLater) and outcome.rate_limited:
            wait = min(
                timedelta(seconds=outcome.wait)
                if outcome.wait is not None
                else self.notify.retry_base,
                self.notify.retry_cap,
            )
            batch.state["next_send"] = now + wait
            self.throttle.hold(key, now + wait)
            batch.wake_at = now + wait
            log.warning(
                "webhook %s: rate limited (HTTP %s), waiting %.1fs",
                hook.name,
                status,
                wait.total_seconds(),
            )
            return False
        if isinstance(outcome, RetryLater):
            pause = backoff(1, policy, self.rand)  # one failure per pause per webhook
            if outcome.wait is not None:  # a 503 with Retry-After
                pause = min(max(pause, timedelta(seconds=outcome.wait)), self.notify.retry_cap)
            self.throttle.hold(key, now + pause)
            batch.wake_at = now + pause
            log.warning("webhook %s: will retry: %s", hook.name, reason)
            return False
        if outcome.webhook_gone:
            batch.state["failing"] = failing_text(reason, hook)
            batch.failing = True
            log.error("webhook %s is failing, not sending until repaired: %s", hook.name, reason)
            return False
        log.error("webhook %s: gave up on %s: %s", hook.name, message.msg_id, reason)
        return True

    def _flush(self, batch: _Batch) -> None:
        if not (batch.writes or batch.releases or batch.state):
            return
        now = self.clock()
        done = [(d, dec.status) for d, dec in batch.writes if dec.action == "done"]
        with self._writing, self.db.write() as conn:
            ours = outbox.mark_done_many(conn, done, now)
            batch.bump("delivered", ours)
            batch.bump("lost", len(done) - ours)
            for d, decision in batch.writes:
                if decision.action == "done":
                    continue
                ok = _apply(conn, d, decision, now)
                batch.bump(("retried" if decision.action == "retry" else "dead") if ok else "lost")
            for d in batch.releases:
                batch.bump("released" if outbox.release(conn, d) else "lost")
            if batch.state:
                outbox.set_webhook_state(conn, batch.hook.name, **batch.state)
        batch.writes.clear()
        batch.releases.clear()
        batch.state.clear()

    # --- a manual test ---------------------------------------------------------------

    def test_webhook(self, name: str) -> Outcome:
        """Send a sample message now (no throttle); success clears a failing state."""
        hook = self.webhooks.get(name)
        if hook is None:
            raise NotifyError("no such webhook in the config", resource=name)
        now = self.clock()
        notice = sample_notice(name, now)
        kind = _kind(hook)
        payload = kind.render(notice) if kind else None
        title, text = ("feedbot test message", notice.summary) if kind is None else ("", "")
        outcome = self._send(hook, Message((), notice.delivery_id, payload, title, text), now)
        with self.db.write() as conn:
            if isinstance(outcome, Delivered):
                outbox.set_webhook_state(
                    conn, name, failing=None, last_error=None, last_success=now, next_send=None
                )
                self.throttle.clear_hold(webhook_key(name))
            elif isinstance(outcome, Permanent) and outcome.webhook_gone:
                reason = scrub(outcome.reason, hook)
                outbox.set_webhook_state(
                    conn, name, failing=failing_text(reason, hook), last_error=reason
                )
            else:
                outbox.set_webhook_state(conn, name, last_error=scrub(outcome.reason, hook))
        return outcome


def _kind(hook: WebhookConfig) -> Kind | None:
    return None if hook.kind == "apprise" else KINDS[hook.kind]


def _rates(hook: WebhookConfig) -> Sequence[Rate]:
    kind = _kind(hook)
    return kind.rates if kind else ()


def _apply(conn: Connection, d: outbox.StoredDelivery, decision: Decision, now: datetime) -> bool:
    if decision.action == "dead":
        return outbox.mark_dead(conn, d, now, decision.error or "", decision.status)
    assert decision.next_attempt is not None
    return outbox.mark_retry(
        conn, d, decision.next_attempt, decision.error or "", decision.status, count=decision.count
    )
