"""``feedbot run``: the daemon."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from feedbot.config import Config, config_path
from feedbot.errors import ConfigError, DaemonError, FeedbotError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run", help="run the daemon: poll, publish, notify and serve, until SIGTERM or SIGINT"
    )
    p.set_defaults(func=cmd_run, no_app=True)


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    from feedbot.daemon import Daemon

    try:
        daemon = Daemon(config, config_path(args.config, os.environ))
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"feedbot: config: {problem}\n")
        return 2
    except FeedbotError as exc:
        sys.stderr.write(f"feedbot: {exc}\n")
        return 1
    try:
        return daemon.run()
    except DaemonError as exc:
        sys.stderr.write(f"feedbot: {exc}\n")
        return 2
    finally:
        daemon.app.close()
