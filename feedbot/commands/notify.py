"""Notification commands: webhooks list|test, deliveries list|retry, deliver [--loop].

Webhook URLs and secrets are never printed: URLs go through ``mask_url``; response bodies
and errors are cut to 200 characters.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from datetime import datetime
from types import FrameType
from typing import Any

from feedbot.app import App
from feedbot.clock import isoformat, utcnow
from feedbot.commands import out, out_json, table
from feedbot.notify.deliver import Deliverer, DrainResult
from feedbot.notify.plan import failing_reason
from feedbot.notify.secrets import mask_url
from feedbot.notify.sender import Delivered, Permanent, cut, scrub
from feedbot.store import outbox

log = logging.getLogger(__name__)

ONE_SHOT_MAX_WAIT = 10.0  # seconds `feedbot deliver` waits for a rate budget to free up
LOOP_PAUSE = 1.0


def register(sub: Any) -> None:
    hooks = sub.add_parser("webhooks", help="list and test chat webhooks").add_subparsers(
        dest="webhooks_command", required=True, metavar="ACTION"
    )
    p = hooks.add_parser("list", help="each webhook with its state and queue")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_webhooks_list)
    p = hooks.add_parser("test", help="send a sample message; success clears a failing state")
    p.add_argument("name")
    p.set_defaults(func=cmd_webhooks_test)
    dels = sub.add_parser("deliveries", help="inspect and retry outbox rows").add_subparsers(
        dest="deliveries_command", required=True, metavar="ACTION"
    )
    p = dels.add_parser("list", help="recent deliveries, newest first")
    p.add_argument("--dead", action="store_true", help="only dead-lettered ones")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_deliveries_list)
    p = dels.add_parser("retry", help="queue dead (or pending) deliveries again")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("ids", nargs="*", default=[], metavar="ID")
    group.add_argument("--dead", action="store_true", help="every dead delivery")
    p.set_defaults(func=cmd_deliveries_retry)
    p = sub.add_parser("deliver", help="send due notifications until nothing is due")
    p.add_argument("--loop", action="store_true", help="keep draining every second until stopped")
    p.set_defaults(func=cmd_deliver)


def _when(value: datetime | None) -> str:
    return isoformat(value) if value else "-"


def cmd_webhooks_list(app: App, args: argparse.Namespace) -> int:
    with app.db.read() as conn:
        states = outbox.webhook_states(conn)
        counts = {s.webhook: s for s in outbox.depth(conn)}
    now = app.clock()
    rows: list[dict[str, Any]] = []
    for hook in app.config.webhook:
        st = states.get(hook.name, {})
        reason = failing_reason(st.get("failing"), hook)
        if not hook.enabled:
            state = "disabled"
        elif reason is not None:
            state = f"failing: {cut(reason, 80)}"
        elif st.get("next_send") and st["next_send"] > now:
            state = f"waiting until {_when(st['next_send'])}"
        else:
            state = "ok"
        c = counts.get(hook.name)
        rows.append(
            {
                "name": hook.name,
                "kind": hook.kind,
                "url": mask_url(hook.url),
                "state": state,
                "failing": reason,
                "pending": c.pending if c else 0,
                "dead": c.dead if c else 0,
                "last_success": st.get("last_success"),
                "last_error": st.get("last_error"),
            }
        )
    if args.json:
        for row in rows:
            out_json(row)
        return 0
    out(
        table(
            [
                [
                    r["name"],
                    r["kind"],
                    r["url"],
                    r["state"],
                    str(r["pending"]),
                    str(r["dead"]),
                    _when(r["last_success"]),
                ]
                for r in rows
            ],
            ["NAME", "KIND", "URL", "STATE", "PENDING", "DEAD", "LAST SUCCESS"],
        )
    )
    return 0


def cmd_webhooks_test(app: App, args: argparse.Namespace) -> int:
    outcome = app.deliverer.test_webhook(args.name)
    hook = app.deliverer.webhooks[args.name]
    body = scrub(outcome.body, hook)
    if isinstance(outcome, Delivered):
        status = outcome.status if outcome.status is not None else "ok"
        out(f"{args.name}: delivered ({status})" + (f": {body}" if body else ""))
        return 0
    out(f"{args.name}: failed: {scrub(outcome.reason, hook)}")
    if isinstance(outcome, Permanent) and outcome.webhook_gone:
        out(f"{args.name}: marked failing; pending messages wait until a test succeeds")
    return 1


def _delivery(d: outbox.StoredDelivery) -> dict[str, Any]:
    return {
        "id": d.id, "webhook": d.webhook, "event": d.event, "status": d.status,
        "attempts": d.attempts, "next_attempt": d.next_attempt, "last_status": d.last_status,
        "last_error": d.last_error, "article_id": d.article_id, "created_at": d.created_at,
        "done_at": d.done_at,
    }  # fmt: skip


def cmd_deliveries_list(app: App, args: argparse.Namespace) -> int:
    status = outbox.DEAD if args.dead else None
    with app.db.read() as conn:
        rows = outbox.list_deliveries(conn, status=status, limit=args.limit)
    if args.json:
        for d in rows:
            out_json(_delivery(d))
        return 0
    out(
        table(
            [
                [
                    d.id,
                    d.webhook,
                    d.status,
                    str(d.attempts),
                    _when(d.next_attempt),
                    str(d.last_status or "-"),
                    cut(d.last_error or "-", 60),
                    d.article_id,
                ]
                for d in rows
            ],
            ["ID", "WEBHOOK", "STATUS", "ATTEMPTS", "NEXT", "HTTP", "ERROR", "ARTICLE"],
        )
    )
    return 0


def cmd_deliveries_retry(app: App, args: argparse.Namespace) -> int:
    with app.db.write() as conn:
        count = outbox.retry(conn, args.ids, app.clock(), all_dead=args.dead)
    out(f"queued again: {count}")
    return 0 if count or args.dead else 1


def _summary(total: DrainResult, pending: int) -> str:
    text = (
        f"delivered: {total.delivered} in {total.messages} messages; "
        f"to retry: {total.retried}; dead: {total.dead}; pending: {pending}"
    )
    if total.failing:
        text += f"; failing webhooks: {', '.join(total.failing)}"
    return text


def _drain_until_idle(deliverer: Deliverer, stop: threading.Event) -> DrainResult:
    """Drain while work is due; wait for rate budgets of at most ONE_SHOT_MAX_WAIT."""
    total = DrainResult()
    while not stop.is_set():
        result = deliverer.drain_once()
        total += result
        if result.claimed:
            continue
        if result.wake_at is None:
            break
        wait = (result.wake_at - deliverer.clock()).total_seconds()
        if wait > ONE_SHOT_MAX_WAIT:
            break
        stop.wait(max(wait, 0.01))
    return total


def cmd_deliver(app: App, args: argparse.Namespace) -> int:
    stop = threading.Event()
    deliverer = app.deliverer
    if args.loop:

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: stopping after the current drain", signum)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        log.info("delivering every %.0fs until stopped", LOOP_PAUSE)
        while not stop.is_set():
            started = utcnow()
            result = _drain_until_idle(deliverer, stop)
            if result.claimed:
                log.info("%s", _summary(result, _pending(app)))
            spent = (utcnow() - started).total_seconds()
            stop.wait(max(0.0, LOOP_PAUSE - spent))
        deliverer.close()
        return 0
    result = _drain_until_idle(deliverer, stop)
    deliverer.close()
    out(_summary(result, _pending(app)))
    return 0


def _pending(app: App) -> int:
    with app.db.read() as conn:
        return sum(s.pending for s in outbox.depth(conn))
