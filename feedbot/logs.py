"""Logging configuration for the CLI and the daemon: stderr, text or JSON, secrets masked."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = (
                    value if isinstance(value, str | int | float | bool | None) else str(value)
                )
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class MaskFilter(logging.Filter):
    """Replaces every known secret in a record's final message with its masked form."""

    def __init__(self, replacements: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        self.replacements = sorted(
            ((s, m) for s, m in replacements if s), key=lambda p: len(p[0]), reverse=True
        )

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.replacements:
            return True
        message = record.getMessage()
        masked = message
        for secret, mask in self.replacements:
            masked = masked.replace(secret, mask)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record, not at setup."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


@dataclass(frozen=True, slots=True)
class LogSetup:
    """What ``setup_logging`` configured, so a worker process can configure the same."""

    level: str
    fmt: str
    secrets: tuple[tuple[str, str], ...]


_current: tuple[str, str, MaskFilter] | None = None


def current_setup() -> LogSetup | None:
    """This process's logging setup with its secrets, or None when never configured."""
    if _current is None:
        return None
    level, fmt, mask = _current
    return LogSetup(level, fmt, tuple(mask.replacements))


def apply_setup(setup: LogSetup | None) -> None:
    """Configure this (worker) process's logging like the process that took *setup*."""
    if setup is not None:
        setup_logging(setup.level, setup.fmt).replacements = list(setup.secrets)


def setup_logging(level: str = "info", fmt: str = "text") -> MaskFilter:
    """Configure the root logger once; returns the mask filter so secrets can be added."""
    global _current
    handler = StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    mask = MaskFilter()
    handler.addFilter(mask)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("urllib3", "waitress", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    _current = (level, fmt, mask)
    return mask
