"""Masking of webhook URLs and secrets for reprs and logs.

``mask_url`` keeps what identifies a target to a human (scheme, host, route words and a
few leading characters of an id) and hides what grants access (tokens, user info,
query values). ``SecretFilter`` applies the masks to every log record a handler emits.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

MASK = "****"
_MAX_REVEAL = 4
_LABEL = re.compile(r"^(?:wh(?:sec|sk|pk)_|xox[a-z]-)")  # whsec_, xoxb- ...: not secret
_ROUTE_WORD = re.compile(r"^(?:[a-z][a-z-]{0,11}|v\d{1,2})$")  # api, webhooks, hooks, v1
_WEBHOOK_URL = re.compile(
    r"https?://(?:hooks\.slack\.com/|(?:\w+\.)?discord(?:app)?\.com/api/(?:v\d+/)?webhooks/"
    r"|[\w.-]+\.webhook\.office\.com/|[\w.-]+\.logic\.azure\.com[:\d]*/"
    r"|[\w.-]+\.(?:powerautomate|powerplatform)\.com/)[^\s\"'<>]*",
    re.IGNORECASE,
)


def mask_secret(secret: str) -> str:
    """``whsec_****`` style: a known label prefix, else at most 4 leading characters.

    Characters are shown only for secrets of 16 or more characters.
    """
    if not secret:
        return ""
    label = _LABEL.match(secret)
    if label:
        return label.group(0) + MASK
    reveal = _MAX_REVEAL if len(secret) >= 16 else 0
    return secret[:reveal] + MASK


def _hint(segment: str) -> str:
    """A few leading characters of an id segment: at most 4, at most a third of it."""
    if segment.endswith("…"):  # already masked
        return segment
    return segment[: min(_MAX_REVEAL, len(segment) // 3)] + "…"


def mask_url(url: str) -> str:
    """Mask a webhook URL, e.g. ``https://hooks.slack.com/services/T00…/****``.

    Keeps scheme, host, port, the first path segment and the route words after it
    (``api/webhooks``); the first id-like segment keeps a hint; everything after it, the
    last segment, user info, query values and fragment are masked.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return mask_secret(url)
    if not parts.scheme or not parts.hostname:
        return mask_secret(url)
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = (MASK + "@" if "@" in parts.netloc else "") + host
    if port is not None:
        netloc += f":{port}"
    segments = [s for s in parts.path.split("/") if s]
    kept: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if last:
            kept.append(MASK)
        elif index == 0 or _ROUTE_WORD.match(segment):
            kept.append(segment)
            continue
        else:
            kept.extend([_hint(segment), MASK])
        break
    masked = f"{parts.scheme}://{netloc}" + "".join("/" + s for s in kept)
    if parts.query:
        pairs = (
            p.split("=", 1)[0] + "=" + MASK if "=" in p else MASK for p in parts.query.split("&")
        )
        masked += "?" + "&".join(pairs)
    if parts.fragment:
        masked += "#" + MASK
    return masked


def mask(value: str) -> str:
    """``mask_url`` for URLs, ``mask_secret`` for anything else."""
    return mask_url(value) if "://" in value else mask_secret(value)


class SecretFilter(logging.Filter):
    """Replace known secrets, their URL paths and well-known webhook URLs in log records.

    Attach it to handlers (a logger's own filters do not see records propagated from
    child loggers). Masks ``msg``, ``args``, exception and stack text; the record is
    always kept.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        table: dict[str, str] = {}
        for secret in secrets:
            if not secret:
                continue
            table[secret] = mask(secret)
            if "://" in secret:  # exceptions often quote only the path and query
                tail = _path_and_query(secret)
                if len(tail) >= 8:
                    table.setdefault(tail, _path_and_query(table[secret]))
        self._table = table
        ordered = sorted(table, key=len, reverse=True)
        self._known = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        """*text* with every known secret and webhook URL masked."""
        if self._known is not None:
            text = self._known.sub(lambda m: self._table[m.group(0)], text)
        return _WEBHOOK_URL.sub(lambda m: mask_url(m.group(0)), text)

    def _arg(self, value: object) -> object:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, int | float | bool) or value is None:
            return value
        text = str(value)
        masked = self.redact(text)
        return value if masked == text else masked

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        elif record.msg is not None:
            record.msg = self._arg(record.msg)
        if isinstance(record.args, Mapping):
            record.args = {key: self._arg(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(self._arg(value) for value in record.args)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = None
        if message is not None and self.redact(message) != message:
            record.msg, record.args = self.redact(message), ()  # a secret spanned msg and args
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")
