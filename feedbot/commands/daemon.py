"""``feedbot run``: everything in one process."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from feedbot.app import App

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run feedbot: import the configured paths, publish, serve")
    p.set_defaults(func=cmd_run)


def cmd_run(app: App, args: argparse.Namespace) -> int:
    from feedbot.web.feeds_app import make_feeds_app
    from feedbot.web.server import serve

    if app.config.import_paths:
        app.import_paths(app.config.import_paths)
    app.publish()
    server = serve(
        make_feeds_app(app.config.feeds_dir),
        host=app.config.server.host,
        port=app.config.server.port,
    )
    log.info(
        "serving %s on http://%s:%d/", app.config.feeds_dir, app.config.server.host, server.port
    )
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
