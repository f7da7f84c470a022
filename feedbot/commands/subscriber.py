"""Subscriber commands: feeds list|add|remove|enable|disable, opml import|export, poll."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from feedbot.app import App
from feedbot.clock import isoformat
from feedbot.commands import out, out_json, table
from feedbot.config import UpstreamConfig
from feedbot.errors import ConfigError
from feedbot.opml import read_opml, write_opml
from feedbot.pipeline import PollResult
from feedbot.store import upstreams as store_upstreams


def register(sub: Any) -> None:
    feeds = sub.add_parser("feeds", help="list and manage upstream feeds").add_subparsers(
        dest="feeds_command", required=True, metavar="ACTION"
    )
    p = feeds.add_parser("list", help="each upstream with its health")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_feeds_list)
    p = feeds.add_parser("add", help="add an upstream kept in the store")
    p.add_argument("name")
    p.add_argument("url")
    p.add_argument("--topic", action="append", default=[], dest="topics")
    p.add_argument("--interval")
    p.add_argument("--backfill", default="none")
    p.set_defaults(func=cmd_feeds_add)
    for action, helptext in (
        ("remove", "delete an upstream"),
        ("enable", "enable"),
        ("disable", "disable"),
    ):
        p = feeds.add_parser(action, help=helptext)
        p.add_argument("name")
        p.set_defaults(func=cmd_feeds_change, action=action)
    opml = sub.add_parser("opml", help="OPML 2.0 import and export").add_subparsers(
        dest="opml_command", required=True, metavar="ACTION"
    )
    p = opml.add_parser("import", help="add the feeds of an OPML file")
    p.add_argument("path", type=Path)
    p.add_argument(
        "--topic",
        action="append",
        default=[],
        dest="topics",
        help="topics for feeds without a category",
    )
    p.set_defaults(func=cmd_opml_import)
    p = opml.add_parser("export", help="write every upstream as OPML")
    p.add_argument("path", type=Path, nargs="?")
    p.set_defaults(func=cmd_opml_export)
    p = sub.add_parser("poll", help="poll due upstreams once")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--all", action="store_true", help="poll every enabled upstream, due or not")
    group.add_argument("--feed", action="append", default=[], dest="feeds", metavar="NAME")
    p.add_argument("--json", action="store_true", help="one JSON object per feed, then a summary")
    p.set_defaults(func=cmd_poll)


def _when(value: Any) -> str:
    return isoformat(value) if value else "-"


def cmd_feeds_list(app: App, args: argparse.Namespace) -> int:
    app.sync_upstreams()
    with app.db.read() as conn:
        rows = store_upstreams.list_all(conn)
    if args.json:
        for u in rows:
            out_json({
                "name": u.name, "url": u.url, "enabled": u.enabled, "topics": list(u.topics),
                "last_success": u.last_success, "last_error": u.last_error,
                "consecutive_failures": u.consecutive_failures, "interval_s": u.current_interval_s,
                "next_check": u.next_check, "disabled_reason": u.disabled_reason, "warning": u.warning,
            })  # fmt: skip
        return 0
    body = [
        [
            u.name,
            "yes" if u.enabled else "no",
            _when(u.last_success),
            str(u.consecutive_failures),
            f"{u.current_interval_s // 60}m" if u.current_interval_s else "-",
            _when(u.next_check) if u.enabled else "-",
            (u.disabled_reason or u.last_error or u.warning or "")[:80],
        ]
        for u in rows
    ]
    out(
        table(
            body,
            ["name", "enabled", "last success", "failures", "interval", "next check", "last error"],
        )
    )
    return 0


def _upstream(
    name: str, url: str, topics: list[str], interval: str | None, backfill: str
) -> UpstreamConfig:
    raw: dict[str, Any] = {"name": name, "url": url, "topics": topics, "backfill": backfill}
    if interval:
        raw["interval"] = interval
    try:
        return UpstreamConfig.validate(raw)
    except ValidationError as exc:
        from feedbot.config import format_errors

        raise ConfigError(format_errors(exc)) from None


def cmd_feeds_add(app: App, args: argparse.Namespace) -> int:
    cfg = _upstream(args.name, args.url, args.topics, args.interval, args.backfill)
    with app.db.write() as conn:
        store_upstreams.add(conn, cfg, app.clock())
    out(f"added {cfg.name}: {cfg.url}")
    return 0


def cmd_feeds_change(app: App, args: argparse.Namespace) -> int:
    with app.db.write() as conn:
        if args.action == "remove":
            store_upstreams.remove(conn, args.name)
        else:
            store_upstreams.set_enabled(conn, args.name, args.action == "enable", app.clock())
    out(f"{args.action}d {args.name}")
    return 0


def cmd_opml_import(app: App, args: argparse.Namespace) -> int:
    feeds = read_opml(args.path)
    added = skipped = 0
    with app.db.write() as conn:
        present = store_upstreams.list_all(conn)
        known = {u.name for u in present}
        known_urls = {u.url for u in present} | {u.config_url for u in present}
        for f in feeds:
            if f.name in known or f.url in known_urls:
                skipped += 1
                continue
            cfg = _upstream(f.name, f.url, list(f.topics or args.topics), None, "none")
            store_upstreams.add(conn, cfg, app.clock())
            added += 1
    out(f"opml: {added} added, {skipped} already present")
    return 0


def cmd_opml_export(app: App, args: argparse.Namespace) -> int:
    with app.db.read() as conn:
        rows = [(u.name, u.config_url, u.topics) for u in store_upstreams.list_all(conn)]
    data = write_opml(rows, title="feedbot subscriptions", now=app.clock())
    if args.path:
        args.path.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
    return 0


def cmd_poll(app: App, args: argparse.Namespace) -> int:
    app.sync_upstreams()
    progress = None
    if sys.stderr.isatty() and not args.json:
        from tqdm import tqdm

        bar = tqdm(unit="feed", desc="polling", file=sys.stderr)
        progress = lambda r: bar.update(1)  # noqa: E731
    result = app.poller.run_cycle(names=args.feeds, include_not_due=bool(args.all or args.feeds))
    if progress:
        bar.close()
    summary = summarise(result.results, result.seconds)
    if args.json:
        for r in result.results:
            out_json({k: getattr(r, k) for k in PollResult.__dataclass_fields__})
        out_json(summary)
    else:
        out(format_summary(summary))
    return 0


def summarise(results: tuple[PollResult, ...], seconds: float) -> dict[str, Any]:
    errors: dict[str, int] = {}
    for r in results:
        if r.error:
            errors[r.outcome] = errors.get(r.outcome, 0) + 1
    return {
        "feeds": len(results),
        "fetched": sum(r.outcome == "ok" for r in results),
        "not_modified": sum(r.outcome in ("not_modified", "unchanged") for r in results),
        "errors": errors,
        "new": sum(r.new for r in results),
        "updated": sum(r.updated for r in results),
        "duplicates": sum(r.duplicates for r in results),
        "announced": sum(r.announced for r in results),
        "seconds": round(seconds, 3),
    }


def format_summary(s: dict[str, Any]) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in sorted(s["errors"].items())) or "none"
    rows = [
        ["feeds polled", str(s["feeds"])],
        ["fetched", str(s["fetched"])],
        ["not modified", str(s["not_modified"])],
        ["errors", errors],
        ["new entries", str(s["new"])],
        ["updated entries", str(s["updated"])],
        ["duplicate stories", str(s["duplicates"])],
        ["notifications queued", str(s["announced"])],
        ["duration", f"{s['seconds']:.2f} s"],
    ]
    return table(rows, ["", ""])
