"""The fetch stage: one bounded HTTP GET of an upstream feed; every per-feed failure is data.

This module never imports feedparser: it hands bytes and headers to ``poll/parse.py``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType, TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from feedbot import USER_AGENT
from feedbot.errors import FetchError
from feedbot.poll.fetchdata import SUCCESS, FeedFetcher, FetchLimits, FetchRequest, FetchResult
from feedbot.poll.http_limits import (
    BodyDecoder,
    Deadline,
    FetchOutcome,
    cache_max_age,
    classify_status,
    describe_non_feed,
    fail,
    http_url_problem,
    parse_retry_after,
)

__all__ = [
    "FeedFetcher",
    "FetchLimits",
    "FetchOutcome",
    "FetchRequest",
    "FetchResult",
    "Fetcher",
    "describe_non_feed",
]

log = logging.getLogger(__name__)

ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/xml;q=0.8, text/xml;q=0.8, "
    "application/json;q=0.7, */*;q=0.1"
)
ACCEPT_ENCODING = "gzip, deflate"  # decoded here, with a size cap; no br/zstd decoder needed
_CHUNK = 64 * 1024
_SNIFF_BYTES = 64 * 1024  # how much of an error page is read to recognise a bot challenge
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
_CROSS_HOST_DROP = frozenset({"authorization", "cookie", "proxy-authorization"})


def _release(resp: requests.Response) -> None:
    """Give the connection back to the pool when nothing of the response is left unread.

    A body read to its end has already been handed back by urllib3; a 304 or 204 has no
    body, but ``close`` on an unread response closes its connection, so every conditional
    poll used to open a new one. Anything else unread (an error page read only in part) is
    closed, never drained: its size is the server's choice.
    """
    if resp.status_code in (204, 304):
        resp.raw.drain_conn()  # reads the empty body, which returns the connection
    resp.close()


def _set_socket_timeout(raw: Any, seconds: float) -> None:
    """Bound the next socket read of a streaming urllib3 response.

    A kept-alive connection exposes its socket; after ``Connection: close`` http.client
    detaches it, and only the response's buffered reader still holds it. Where neither
    is found the deadline is still checked between chunks.
    """
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is None:
        reader = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(reader, "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.01))


@dataclass(slots=True)
class _Hop:
    """Where the redirect chain stands (mutable, private to one fetch)."""

    url: str
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: _NO_HEADERS)
    redirects: int = 0
    permanent: bool = True


def environment_used() -> bool:
    """Whether requests must read the environment on each request: a proxy (``*_proxy``
    variables) or a netrc file. Read once, when the fetcher is made."""
    if urllib.request.getproxies():
        return True
    netrc = os.environ.get("NETRC")
    candidates = [netrc] if netrc else ["~/.netrc", "~/_netrc"]
    return any(os.path.exists(os.path.expanduser(c)) for c in candidates)


def environment_ca_bundle() -> str | None:
    """The CA bundle the environment names (``REQUESTS_CA_BUNDLE``, else
    ``CURL_CA_BUNDLE``), as requests would read it on each request."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


class Fetcher:
    """Fetches feeds over one pooled ``requests.Session``; use as a context manager."""

    def __init__(
        self,
        limits: FetchLimits | None = None,
        *,
        pool_size: int = 32,
        hosts: int = 256,
        user_agent: str = USER_AGENT,
        trust_env: bool | None = None,
    ) -> None:
        self.limits = limits or FetchLimits()
        self._session = requests.Session()
        # requests looks up proxies, a CA bundle and netrc credentials in the environment
        # on every request; where there are no proxies and no netrc (the common case), not
        # looking saves about a third of a millisecond per request, and a CA bundle named
        # there is set on the session once instead (see environment_used)
        if trust_env is None:
            trust_env = environment_used()
            bundle = environment_ca_bundle()
            if bundle and not trust_env:
                self._session.verify = bundle
        self._session.trust_env = trust_env
        # keep-alive connections to up to *hosts* hosts, *pool_size* each: a feed polled
        # again soon reuses its connection instead of paying a new TCP (and TLS) handshake
        adapter = HTTPAdapter(pool_connections=hosts, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(
            {"User-Agent": user_agent, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING}
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def fetch(self, req: FetchRequest, now: datetime) -> FetchResult:
        """GET *req*; *now* (aware UTC) anchors Retry-After and Expires. Never raises FetchError."""
        deadline = Deadline(self.limits.deadline)
        hop = _Hop(req.url)
        try:
            result = self._fetch(req, now, deadline, hop)
        except FetchError as exc:
            result = FetchResult(
                request_url=req.url,
                outcome=FetchOutcome(exc.kind),
                status=hop.status,
                final_url=hop.url,
                permanent_url=None,
                body=None,
                headers=hop.headers,
                etag=None,
                last_modified=None,
                body_hash=None,
                retry_after=None,
                error=exc.message,
                elapsed=deadline.elapsed(),
                cache_max_age=None,
            )
        level = logging.DEBUG if result.succeeded else logging.INFO
        log.log(
            level,
            "fetched feed=%s outcome=%s status=%s elapsed=%.2f reason=%s",
            req.url,
            result.outcome.value,
            result.status,
            result.elapsed,
            result.error,
        )
        return result

    def _fetch(
        self, req: FetchRequest, now: datetime, deadline: Deadline, hop: _Hop
    ) -> FetchResult:
        problem = http_url_problem(req.url)
        if problem:
            raise fail(FetchOutcome.BAD_URL, problem, req.url)
        headers = dict(req.headers)
        if req.etag:
            headers["If-None-Match"] = req.etag
        if req.last_modified:
            headers["If-Modified-Since"] = req.last_modified
        seen = {req.url.split("#", 1)[0]}
        while True:
            resp = self._send(hop.url, headers, deadline)
            hop.status = resp.status_code
            hop.headers = MappingProxyType({k.lower(): v for k, v in resp.headers.items()})
            location = hop.headers.get("location")
            if hop.status not in _REDIRECTS or not location:
                break
            resp.close()
            target = urljoin(hop.url, location.strip())
            problem = http_url_problem(target)
            if problem:
                raise fail(FetchOutcome.BAD_URL, f"redirected to {problem}", req.url)
            hop.redirects += 1
            hop.permanent = hop.permanent and hop.status in _PERMANENT
            key = target.split("#", 1)[0]
            if key in seen:
                raise fail(FetchOutcome.REDIRECT_LOOP, f"redirect loop back to {target}", req.url)
            if hop.redirects > self.limits.max_redirects:
                message = f"more than {self.limits.max_redirects} redirects"
                raise fail(FetchOutcome.REDIRECT_LOOP, message, req.url)
            seen.add(key)
            if urlsplit(target).netloc != urlsplit(hop.url).netloc:
                headers = {k: v for k, v in headers.items() if k.lower() not in _CROSS_HOST_DROP}
            hop.url = target
        try:
            return self._conclude(req, now, deadline, hop, resp)
        finally:
            _release(resp)

    def _conclude(
        self,
        req: FetchRequest,
        now: datetime,
        deadline: Deadline,
        hop: _Hop,
        resp: requests.Response,
    ) -> FetchResult:
        assert hop.status is not None
        h = hop.headers
        outcome = classify_status(hop.status)
        body: bytes | None = None
        body_hash: str | None = None
        etag, last_modified = h.get("etag"), h.get("last-modified")
        error: str | None = None
        if outcome is FetchOutcome.OK:
            length = h.get("content-length", "").strip()
            if (
                "content-encoding" not in h
                and length.isdigit()
                and int(length) > self.limits.max_bytes
            ):
                message = f"body exceeds {self.limits.max_bytes} bytes (Content-Length {length})"
                raise fail(FetchOutcome.TOO_LARGE, message, req.url)
            body = self._read(resp, deadline, req.url, sniff=False)
            body_hash = hashlib.sha256(body).hexdigest()
            kind = describe_non_feed(h, body[:_SNIFF_BYTES], success=True)
            if kind:
                outcome, body, error = FetchOutcome.NOT_A_FEED, None, f"expected a feed, got {kind}"
            elif body_hash == req.last_body_hash:
                outcome, body = FetchOutcome.UNCHANGED, None
        elif outcome is FetchOutcome.NOT_MODIFIED:
            etag, last_modified = etag or req.etag, last_modified or req.last_modified
        else:
            head = self._read(resp, deadline, req.url, sniff=True)
            kind = describe_non_feed(h, head, success=False)
            reason = f"HTTP {hop.status} {resp.reason or ''}".rstrip()
            if kind:
                outcome, error = FetchOutcome.NOT_A_FEED, f"expected a feed, got {kind} ({reason})"
            else:
                error = reason
        fresh = outcome in SUCCESS
        return FetchResult(
            request_url=req.url,
            outcome=outcome,
            status=hop.status,
            final_url=hop.url,
            permanent_url=hop.url if hop.redirects and hop.permanent else None,
            body=body,
            headers=h,
            etag=etag if fresh else None,
            last_modified=last_modified if fresh else None,
            body_hash=body_hash if fresh else None,
            retry_after=parse_retry_after(h.get("retry-after"), now),
            error=error,
            elapsed=deadline.elapsed(),
            cache_max_age=cache_max_age(h, now) if fresh else None,
        )

    def _send(self, url: str, headers: dict[str, str], deadline: Deadline) -> requests.Response:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise fail(FetchOutcome.TIMEOUT, self._deadline_message(), url)
        connect = min(self.limits.connect_timeout, remaining)
        read = min(self.limits.read_timeout, remaining)
        try:
            return self._get(url, headers, (connect, read))
        except requests.exceptions.ConnectTimeout as exc:
            message = f"connect timed out after {connect:.1f} s"
            raise fail(FetchOutcome.TIMEOUT, message, url) from exc
        except requests.exceptions.ReadTimeout as exc:
            raise fail(FetchOutcome.TIMEOUT, self._read_timeout_message(deadline), url) from exc
        except requests.exceptions.SSLError as exc:
            message = f"TLS error: {_root_cause(exc)}"
            raise fail(FetchOutcome.CONNECTION_ERROR, message, url) from exc
        except requests.exceptions.ConnectionError as exc:
            message = f"could not connect: {_root_cause(exc)}"
            raise fail(FetchOutcome.CONNECTION_ERROR, message, url) from exc
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
        ) as exc:
            raise fail(FetchOutcome.BAD_URL, f"invalid URL: {exc}", url) from exc
        except requests.RequestException as exc:
            message = f"request failed: {_root_cause(exc)}"
            raise fail(FetchOutcome.CONNECTION_ERROR, message, url) from exc
        except OSError as exc:  # requests raises a bare one for a CA bundle it cannot find
            raise fail(FetchOutcome.CONNECTION_ERROR, f"TLS setup failed: {exc}", url) from exc

    def _get(
        self, url: str, headers: dict[str, str], timeout: tuple[float, float]
    ) -> requests.Response:
        """``Session.get`` (streamed, no redirects followed), prepared directly where the
        environment is not read: ``Session.request`` merges settings that are the
        session's own here (headers, cookies, hooks, TLS), and copies the cookie jar, at
        about a tenth of a fetch's CPU (docs/architecture.md)."""
        session = self._session
        if session.trust_env:  # proxies and netrc credentials come with each request
            return session.get(
                url, headers=headers, stream=True, allow_redirects=False, timeout=timeout
            )
        merged = CaseInsensitiveDict(session.headers)
        merged.update(headers)
        prepared = requests.PreparedRequest()
        prepared.prepare(
            method="GET", url=url, headers=merged, cookies=session.cookies, hooks=session.hooks
        )
        return session.send(
            prepared,
            stream=True,
            allow_redirects=False,
            timeout=timeout,
            verify=session.verify,
            cert=session.cert,
            proxies=session.proxies,
        )

    def _read(self, resp: requests.Response, deadline: Deadline, url: str, *, sniff: bool) -> bytes:
        """Stream and decode the body within the deadline and size limit.

        With *sniff*, read only the first ``_SNIFF_BYTES`` of an error page and swallow
        failures: the page is read to recognise it, not to keep it.
        """
        parts: list[bytes] = []
        got = 0
        try:
            decoder = BodyDecoder(resp.headers.get("content-encoding"), self.limits.max_bytes, url)
            while not (sniff and got >= _SNIFF_BYTES):
                remaining = deadline.remaining()
                if remaining <= 0:
                    raise fail(FetchOutcome.TIMEOUT, self._deadline_message(), url)
                _set_socket_timeout(resp.raw, min(self.limits.read_timeout, remaining))
                data = resp.raw.read1(_CHUNK, decode_content=False)
                if not data:
                    decoder.finish()
                    break
                piece = decoder.feed(data)
                parts.append(piece)
                got += len(piece)
        except FetchError:
            if sniff:
                return b"".join(parts)
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if sniff:
                return b"".join(parts)
            if isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError):
                raise fail(FetchOutcome.TIMEOUT, self._read_timeout_message(deadline), url) from exc
            message = f"connection broken: {_root_cause(exc)}"
            raise fail(FetchOutcome.CONNECTION_ERROR, message, url) from exc
        return b"".join(parts)

    def _deadline_message(self) -> str:
        return f"read timed out after {self.limits.deadline:.1f} s deadline"

    def _read_timeout_message(self, deadline: Deadline) -> str:
        if deadline.remaining() < 0.05:
            return self._deadline_message()
        return f"no data for {self.limits.read_timeout:.1f} s (read timeout)"


def _root_cause(exc: BaseException) -> str:
    """The innermost readable reason of a requests/urllib3 error chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    reason = str(exc)
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
        nested = getattr(current, "reason", None)
        if not isinstance(nested, BaseException) and current.args:
            first = current.args[0]
            nested = first if isinstance(first, BaseException) else None
        current = nested or current.__cause__ or current.__context__
    return reason
