"""CLI commands, one module per area; each exposes ``register(subparsers)``."""

from __future__ import annotations

import json
import sys
from typing import Any

from feedbot.errors import ConfigError, DaemonError, FeedbotError


def report(exc: FeedbotError, *, config_prefix: str = "config: ") -> int:
    """Print *exc* for a person and return the exit status: 2 for configuration, else 1."""
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            sys.stderr.write(f"feedbot: {config_prefix}{problem}\n")
        return 2
    sys.stderr.write(f"feedbot: {exc}\n")
    return 2 if isinstance(exc, DaemonError) else 1


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def out_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")


def table(rows: list[list[str]], headers: list[str]) -> str:
    """A plain fixed-width table."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
