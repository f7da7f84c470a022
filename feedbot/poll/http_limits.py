"""The fetch stage's vocabulary and pure parts: outcomes, deadline, bounded decoding,
recognising non-feed pages, and timing hints from headers.

Nothing here does network I/O, so it can be tested on bytes and strings alone.
"""

from __future__ import annotations

import enum
import re
import time
import zlib
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from feedbot.clock import as_utc
from feedbot.errors import FetchError

# A server may ask for a pause; beyond a week the feed is as good as disabled, so cap it.
MAX_RETRY_AFTER = timedelta(days=7)

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:[=,]|$)", re.IGNORECASE)


class FetchOutcome(enum.StrEnum):
    """What one fetch came to; everything except OK carries no body."""

    OK = "ok"
    NOT_MODIFIED = "not_modified"  # 304
    UNCHANGED = "unchanged"  # 200, but the body hash equals the last one
    GONE = "gone"  # 410
    RETRY_LATER = "retry_later"  # 429 or 503
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    TOO_LARGE = "too_large"
    NOT_A_FEED = "not_a_feed"  # an HTML page or a bot challenge page
    REDIRECT_LOOP = "redirect_loop"
    BAD_URL = "bad_url"


def fail(outcome: FetchOutcome, message: str, url: str) -> FetchError:
    """A FetchError whose ``kind`` is *outcome*'s value, to be turned into a FetchResult."""
    return FetchError(message, resource=url, kind=outcome.value)


def classify_status(status: int) -> FetchOutcome:
    """The outcome a final (non-redirect) HTTP status stands for, before body checks."""
    if 200 <= status < 300:
        return FetchOutcome.OK
    if status == 304:
        return FetchOutcome.NOT_MODIFIED
    if status == 410:
        return FetchOutcome.GONE
    if status in (429, 503):
        return FetchOutcome.RETRY_LATER
    if 400 <= status < 500:
        return FetchOutcome.CLIENT_ERROR
    return FetchOutcome.SERVER_ERROR  # 5xx, and 1xx/3xx that cannot be followed


def http_url_problem(url: str) -> str | None:
    """Why *url* cannot be fetched (not http/https, no host), or None when it can."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"not an http(s) URL: {url!r}"
    if not parts.hostname:
        return f"URL has no host: {url!r}"
    return None


class Deadline:
    """A total time budget measured on a monotonic clock."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._start = clock()

    def elapsed(self) -> float:
        return self._clock() - self._start

    def remaining(self) -> float:
        return self.seconds - self.elapsed()

    def expired(self) -> bool:
        return self.remaining() <= 0


class BodyDecoder:
    """Incremental gzip/deflate/identity decoder that never holds more than ``max_bytes``.

    ``feed`` inflates with zlib's ``max_length`` so a compression bomb is refused as soon
    as its output passes the limit, without inflating the rest. Failures raise FetchError
    (kind TOO_LARGE, or SERVER_ERROR for a corrupt or unsupported encoding) about *url*.
    """

    def __init__(self, content_encoding: str | None, max_bytes: int, url: str) -> None:
        encoding = (content_encoding or "identity").strip().lower()
        if encoding in ("", "identity"):
            self._wbits: int | None = None
        elif encoding in ("gzip", "x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
        elif encoding == "deflate":
            self._wbits = zlib.MAX_WBITS  # zlib-wrapped; raw deflate is tried on failure
        else:
            message = f"unsupported Content-Encoding {encoding!r}"
            raise fail(FetchOutcome.SERVER_ERROR, message, url)
        self._url = url
        self._max = max_bytes
        self._total = 0
        self._started = False
        self._z = zlib.decompressobj(self._wbits) if self._wbits is not None else None

    @property
    def total(self) -> int:
        """Decoded bytes produced so far."""
        return self._total

    def feed(self, data: bytes) -> bytes:
        """Decode *data*; raise once the decoded total passes the limit."""
        if self._z is None:
            return self._count(data)
        try:
            out = self._inflate(data)
        except zlib.error as exc:
            if self._started or self._wbits != zlib.MAX_WBITS:
                raise self._corrupt(f"invalid compressed body: {exc}") from exc
            # Some servers send raw deflate under "deflate": retry without the zlib header.
            self._wbits = -zlib.MAX_WBITS
            self._z = zlib.decompressobj(self._wbits)
            try:
                out = self._inflate(data)
            except zlib.error as exc2:
                raise self._corrupt(f"invalid compressed body: {exc2}") from exc2
        self._started = self._started or bool(data)
        return out

    def finish(self) -> None:
        """Check that a compressed stream ended properly."""
        if self._z is not None and self._started and not self._z.eof:
            raise self._corrupt("compressed body is truncated")

    def _corrupt(self, message: str) -> FetchError:
        return fail(FetchOutcome.SERVER_ERROR, message, self._url)

    def _count(self, data: bytes) -> bytes:
        self._total += len(data)
        if self._total > self._max:
            message = f"body exceeds {self._max} bytes after decompression"
            raise fail(FetchOutcome.TOO_LARGE, message, self._url)
        return data

    def _inflate(self, data: bytes) -> bytes:
        assert self._z is not None
        out = bytearray()
        pending = data
        while pending:
            if self._z.eof:
                # Concatenated gzip members are legal; anything else after the end is ignored.
                if self._wbits is not None and self._wbits > 16 and pending[:2] == _GZIP_MAGIC:
                    self._z = zlib.decompressobj(self._wbits)
                else:
                    break
            piece = self._z.decompress(pending, self._max - self._total + 1)
            out += self._count(piece)
            pending = self._z.unconsumed_tail or (self._z.unused_data if self._z.eof else b"")
        return bytes(out)


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date (RFC 9110 IMF-fixdate and the obsolete forms) as aware UTC, or None."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return as_utc(parsed)


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """Retry-After (delay in seconds or an HTTP date) as an aware UTC time, within a week of *now*.

    A date in the past gives *now*; unreadable values give None.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return now + min(timedelta(seconds=int(text[:9])), MAX_RETRY_AFTER)
    when = parse_http_date(text)
    if when is None:
        return None
    return min(max(when, now), now + MAX_RETRY_AFTER)


def cache_max_age(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds the response stays fresh: Cache-Control max-age minus Age, else Expires.

    *headers* has lower-case keys. ``no-store``/``no-cache`` and absent hints give None;
    an unreadable Expires means "already stale" (0.0), as RFC 9111 says.
    """
    control = headers.get("cache-control", "")
    if _NO_CACHE.search(control):
        return None
    match = _MAX_AGE.search(control)
    if match:
        age = headers.get("age", "").strip()
        used = int(age) if age.isdigit() else 0
        return float(max(int(match.group(1)) - used, 0))
    expires = headers.get("expires")
    if expires is None:
        return None
    when = parse_http_date(expires)
    if when is None:
        return 0.0
    base = parse_http_date(headers.get("date")) or now
    return max((when - base).total_seconds(), 0.0)


# --- recognising pages that are not feeds -------------------------------------------

_PROLOG = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!doctype(?!\s+html)[^>]*>)", re.S | re.I)
_FIRST_TAG = re.compile(rb"\s*<(!doctype\s+html|[a-z][\w.:-]*)", re.I)
_HTML_TAGS = frozenset({b"!doctype html", b"html", b"head", b"body"})
_FEED_ROOTS = frozenset({b"rss", b"feed", b"rdf"})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_CHALLENGES: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    (
        "Cloudflare",
        re.compile(
            rb"<title>\s*just a moment|cf-chl-|/cdn-cgi/challenge-platform|"
            rb"attention required! \| cloudflare",
            re.I,
        ),
    ),
    ("DDoS-Guard", re.compile(rb"ddos-guard", re.I)),
    ("Sucuri", re.compile(rb"sucuri website firewall", re.I)),
    (
        "Anubis",
        re.compile(rb"anubis_challenge|making sure you(?:'|&#39;|\xe2\x80\x99)re not a bot", re.I),
    ),
    ("CAPTCHA", re.compile(rb"<title>[^<]*(?:captcha|are you a robot)", re.I)),
)


def _first_tag(head: bytes) -> bytes:
    """The first element name of a document (lower-case), b"{" for JSON, b"" if none."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        head = head.decode("utf-16", "ignore").encode()
    text = head.removeprefix(b"\xef\xbb\xbf")
    pos = 0
    while (m := _PROLOG.match(text, pos)) and m.end() > pos:
        pos = m.end()
    rest = text[pos:].lstrip()
    if rest[:1] in (b"{", b"["):
        return b"{"
    tag = _FIRST_TAG.match(rest)
    return re.sub(rb"\s+", b" ", tag.group(1).lower()) if tag else b""


def describe_non_feed(headers: Mapping[str, str], head: bytes, *, success: bool) -> str | None:
    """Say what a response is when it is not a feed, or None when it may be one.

    *headers* has lower-case keys; *head* is the start of the decoded body. A bot
    challenge is recognised on any status; a plain HTML page only on a 2xx (*success*).
    """
    tag = _first_tag(head)
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if tag == b"{" or tag.rsplit(b":", 1)[-1] in _FEED_ROOTS:
        htmlish = False
    else:
        htmlish = tag in _HTML_TAGS or content_type in _HTML_TYPES
    if headers.get("cf-mitigated", "").strip().lower() == "challenge":
        return "a bot challenge page (Cloudflare)"
    if htmlish:
        for vendor, pattern in _CHALLENGES:
            if pattern.search(head):
                return f"a bot challenge page ({vendor})"
        if success:
            return "an HTML page"
    return None
