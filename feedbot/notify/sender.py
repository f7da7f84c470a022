"""One HTTP POST to a webhook, and the classification of what came back, as data.

``classify`` is pure: a status, headers and a body become ``Delivered``, ``RetryLater``
(timeouts, 408/425/429, 5xx; with the wait the server asked for) or ``Permanent`` (other
4xx, redirects; ``webhook_gone`` for a Slack or Discord webhook that was deleted).
``Sender.post`` does the I/O with per-request timeouts and never raises for HTTP trouble.
Reasons and bodies are cut to ``MAX_REASON`` characters and never contain the URL.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

import requests
import urllib3

from feedbot import __version__
from feedbot.clock import as_utc
from feedbot.config import WebhookConfig
from feedbot.notify.secrets import SecretFilter, mask_secret, mask_url

log = logging.getLogger(__name__)

MAX_REASON = 200
MAX_READ = 16 * 1024  # bytes of a response body we read at most
USER_AGENT = f"feedbot/{__version__} (webhook delivery)"
RETRY_STATUSES = frozenset({408, 425, 429})
GONE_KINDS = frozenset({"slack", "discord"})
GONE_STATUSES = frozenset({404, 410})


@dataclass(frozen=True, slots=True)
class Delivered:
    """2xx. ``hold``: seconds the server says this webhook's budget stays spent."""

    status: int | None
    body: str = ""
    hold: float | None = None


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Try again later; ``wait`` is the server's (seconds) or ``None`` for our backoff.

    ``rate_limited`` (429) waits do not use up an attempt.
    """

    wait: float | None
    reason: str
    status: int | None = None
    rate_limited: bool = False
    body: str = ""


@dataclass(frozen=True, slots=True)
class Permanent:
    """Never retry this message; ``webhook_gone``: the webhook itself no longer exists."""

    reason: str
    webhook_gone: bool = False
    status: int | None = None
    body: str = ""


Outcome = Delivered | RetryLater | Permanent


def cut(text: str, limit: int = MAX_REASON) -> str:
    """*text* on one line, at most *limit* characters (ending with "…" when cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 and math.isfinite(seconds) else None


def _retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After``: delta seconds or an HTTP date."""
    seconds = _seconds(value)
    if seconds is not None or not value:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (as_utc(when) - now).total_seconds())


def _json_retry_after(body: str) -> float | None:
    """Discord's ``{"retry_after": 1.5}`` (seconds)."""
    if not body.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("retry_after") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def server_wait(headers: Mapping[str, str], body: str, now: datetime) -> float | None:
    """The longest wait any of the server's rate-limit signals asks for, in seconds."""
    lower = {k.lower(): v for k, v in headers.items()}
    waits = [
        _retry_after(lower.get("retry-after"), now),
        _json_retry_after(body),
        _seconds(lower.get("x-ratelimit-reset-after")),
    ]
    known = [w for w in waits if w is not None]
    return max(known) if known else None


def classify(
    kind: str, status: int, headers: Mapping[str, str], body: str, now: datetime
) -> Outcome:
    """What one HTTP response means for the message that was sent (pure)."""
    text = cut(body)
    if 200 <= status < 300:
        lower = {k.lower(): v for k, v in headers.items()}
        hold = None
        if lower.get("x-ratelimit-remaining", "").strip() == "0":
            hold = _seconds(lower.get("x-ratelimit-reset-after"))
        return Delivered(status, text, hold)
    reason = cut(f"HTTP {status}: {text}" if text else f"HTTP {status}")
    if status == 429:
        return RetryLater(server_wait(headers, body, now), reason, status, True, text)
    if status in RETRY_STATUSES or status >= 500:
        lower = {k.lower(): v for k, v in headers.items()}
        wait = _retry_after(lower.get("retry-after"), now)
        return RetryLater(wait, reason, status, False, text)
    if 300 <= status < 400:
        return Permanent(f"HTTP {status}: redirect not followed", False, status, text)
    gone = kind in GONE_KINDS and status in GONE_STATUSES
    return Permanent(reason, gone, status, text)


def scrub(text: str, hook: WebhookConfig) -> str:
    """*text* with the webhook's URL and secret masked (servers sometimes echo them)."""
    text = text.replace(hook.url, mask_url(hook.url))
    return text.replace(hook.secret, mask_secret(hook.secret)) if hook.secret else text


class Sender:
    """POSTs bodies with one ``requests.Session``; never follows redirects."""

    def __init__(
        self,
        session: requests.Session,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self.session = session
        self.timeout = (connect_timeout, read_timeout)

    def post(
        self,
        kind: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        now: datetime,
        *,
        hide: Sequence[str] = (),
    ) -> Outcome:
        """Send *body*; every failure becomes an ``Outcome``.

        The URL is never in a reason; the URL and the strings in *hide* are masked in a
        response body (servers sometimes echo them) before it is cut.
        """
        sent = {"content-type": "application/json", "user-agent": USER_AGENT, **headers}
        try:
            with self.session.post(
                url,
                data=body,
                headers=sent,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            ) as response:
                raw = response.raw.read(MAX_READ, decode_content=True) or b""
                status = response.status_code
                got = dict(response.headers)
        except (requests.Timeout, urllib3.exceptions.TimeoutError):
            return RetryLater(None, "timeout")
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
            return Permanent(f"invalid URL ({type(exc).__name__})")
        except requests.ConnectionError as exc:
            return RetryLater(None, f"connection failed ({type(exc).__name__})")
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            return RetryLater(None, f"request failed ({type(exc).__name__})")
        except OSError as exc:  # raised bare before connecting: a CA bundle path that is wrong
            detail = SecretFilter([url, *hide]).redact(str(exc))
            return RetryLater(None, cut(f"TLS setup failed: {detail}"))
        text = raw.decode("utf-8", "replace")
        if text:
            text = SecretFilter([url, *hide]).redact(text)
        return classify(kind, status, got, text, now)


def send_apprise(url: str, title: str, body: str) -> Outcome:
    """Notify through the optional ``apprise`` package (imported only when used)."""
    with warnings.catch_warnings():  # apprise loads modules that Python has deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import apprise  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return Permanent("the apprise package is not installed (pip install feedbot[apprise])")
        target = apprise.Apprise()
        if not target.add(url):
            return Permanent("apprise does not understand this URL")
        if target.notify(title=title, body=body):
            return Delivered(None)
    return RetryLater(None, "apprise reported a failed notification")
