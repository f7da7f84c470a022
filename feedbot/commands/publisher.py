"""Publisher commands: check, import, publish, serve."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from feedbot.app import App
from feedbot.commands import out

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("check", help="validate the config and print a summary")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("import", help="import articles (listing text, Markdown, JSON Lines)")
    p.add_argument("paths", nargs="+", type=Path)
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("publish", help="write the configured feeds under feeds/")
    p.set_defaults(func=cmd_publish)
    p = sub.add_parser("serve", help="serve feeds/ over HTTP")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve)


def cmd_check(app: App, args: argparse.Namespace) -> int:
    c = app.config
    out(f"config: {c.source} is valid")
    out(f"store: {app.db.display_url}")
    out(f"feeds: {c.feeds_dir} ({len(c.publish)}: {', '.join(p.name for p in c.publish)})")
    out(f"server: http://{c.server.host}:{c.server.port}/")
    out(f"upstreams: {len(c.upstream)} ({sum(u.enabled for u in c.upstream)} enabled)")
    out(f"topics: {', '.join(app.matcher.topics)}")
    out(f"webhooks: {len(c.webhook)}")
    return 0


def cmd_import(app: App, args: argparse.Namespace) -> int:
    result = app.import_paths(args.paths)
    out(f"imported: {result.added} added, {result.updated} updated, {result.unchanged} unchanged")
    return 0


def cmd_publish(app: App, args: argparse.Namespace) -> int:
    for r in app.publish():
        for path in r.paths:
            out(f"{path}: {r.entries} entries, {'written' if path in r.changed else 'unchanged'}")
    return 0


def cmd_serve(app: App, args: argparse.Namespace) -> int:
    from feedbot.web.feeds_app import make_feeds_app
    from feedbot.web.server import serve

    host = args.host or app.config.server.host
    port = app.config.server.port if args.port is None else args.port
    server = serve(make_feeds_app(app.config.feeds_dir), host=host, port=port)
    log.info("serving %s on http://%s:%d/", app.config.feeds_dir, host, server.port)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
