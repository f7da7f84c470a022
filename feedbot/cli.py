"""The ``feedbot`` command. Exit status: 0 ok, 1 an operation failed, 2 bad config or usage."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from feedbot import __version__
from feedbot.app import App, secret_pairs
from feedbot.commands import daemon, notify, publisher, relevance, report, subscriber
from feedbot.config import config_path, load_config
from feedbot.errors import ConfigError, FeedbotError
from feedbot.logs import setup_logging

MODULES = (publisher, subscriber, relevance, notify, daemon)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feedbot", description=__doc__)
    parser.add_argument("--version", action="version", version=f"feedbot {__version__}")
    parser.add_argument("--config", help="config file (default: $FEEDBOT_CONFIG or ./config.toml)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    mask = setup_logging(args.log_level, args.log_format)
    try:
        config = load_config(config_path(args.config, os.environ))
    except ConfigError as exc:
        return report(exc)
    mask.replacements = sorted(secret_pairs(config), key=lambda p: len(p[0]), reverse=True)
    if getattr(args, "no_app", False):
        return int(args.func(config, args))
    try:
        app = App(config)
    except FeedbotError as exc:
        return report(exc)
    try:
        return int(args.func(app, args))
    except ConfigError as exc:  # a bad value given on the command line
        return report(exc, config_prefix="")
    except FeedbotError as exc:
        return report(exc)
    except KeyboardInterrupt:
        return 130
    finally:
        app.close()


if __name__ == "__main__":
    sys.exit(main())
