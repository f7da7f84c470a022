"""``feedbot run``: the daemon."""

from __future__ import annotations

import argparse
import os
from typing import Any

from feedbot.commands import report
from feedbot.config import Config, config_path
from feedbot.errors import FeedbotError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run", help="run the daemon: poll, publish, notify and serve, until SIGTERM or SIGINT"
    )
    p.set_defaults(func=cmd_run, no_app=True)


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    from feedbot.daemon import Daemon

    try:
        daemon = Daemon(config, config_path(args.config, os.environ))
    except FeedbotError as exc:
        return report(exc)
    try:
        return daemon.run()
    except FeedbotError as exc:
        return report(exc)
    finally:
        daemon.app.close()
