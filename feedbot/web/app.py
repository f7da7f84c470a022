"""The daemon's WSGI app: published feeds, the status page, health, readiness and metrics.

Routes: ``/`` the status page, ``/healthz`` (the process answers), ``/readyz`` (the store
answers ``SELECT 1`` and the scheduler ticked recently), ``/metrics`` (Prometheus text);
every other path goes to the feeds app. When the server is bound beyond loopback, ``/``,
``/readyz`` and ``/metrics`` need ``Authorization: Bearer <token>`` or basic auth with the
token as password; feeds and ``/healthz`` stay public.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from feedbot.clock import Clock, utcnow
from feedbot.config import Config
from feedbot.errors import FeedbotError
from feedbot.metrics import store_registry
from feedbot.notify.secrets import SecretFilter
from feedbot.store.db import Database
from feedbot.web.feeds_app import make_feeds_app
from feedbot.web.status import relative, render_status
from feedbot.web.status_view import load_status, secrets_of

logger = logging.getLogger(__name__)

Heartbeat = Callable[[], datetime | None]
DEFAULT_TICK = timedelta(seconds=60)
STALE_TICKS = 3
_PAGE_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    ),
]
_CHALLENGE = [
    ("WWW-Authenticate", 'Basic realm="feedbot", charset="UTF-8"'),
    ("WWW-Authenticate", 'Bearer realm="feedbot"'),
]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def authorized(header: str, token: str) -> bool:
    """True when an ``Authorization`` value carries *token* (Bearer, or basic auth password)."""
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        given = credentials.encode("utf-8")
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        given = decoded.partition(":")[2].encode("utf-8")
    else:
        return False
    return hmac.compare_digest(given, token.encode("utf-8"))


def readiness(
    store_error: str | None, heartbeat: datetime | None, now: datetime, tick: timedelta
) -> str | None:
    """None when ready, else why not."""
    if store_error is not None:
        return f"store unreachable: {store_error}"
    if heartbeat is None:
        return "the scheduler has not ticked yet"
    limit = tick * STALE_TICKS
    if now - heartbeat > limit:
        return (
            f"the scheduler last ticked {relative(heartbeat, now)} "
            f"(limit {int(limit.total_seconds())}s)"
        )
    return None


def make_web_app(
    db: Database,
    config: Config,
    *,
    heartbeat: Heartbeat,
    registry: CollectorRegistry,
    clock: Clock = utcnow,
    tick: timedelta | None = None,
    require_auth: bool | None = None,
) -> WSGIApplication:
    """Compose the feeds app with ``/``, ``/healthz``, ``/readyz`` and ``/metrics``.

    ``/metrics`` serves *registry* followed by the store gauges of *db* (read at each
    scrape). *tick* is the longest expected gap between heartbeats (by default the
    slowest of the daemon's poll, deliver and publish ticks); ``/readyz`` fails after
    three of them. *require_auth* defaults to "``server.host`` is not a loopback
    address"; when required and no token is configured, protected paths are refused.
    """
    token = config.server.token or ""
    if require_auth is None:
        require_auth = not is_loopback(config.server.host)
    if tick is None:
        d = config.daemon
        tick = max(d.poll_tick, d.deliver_tick, d.publish_tick, DEFAULT_TICK)
    gap: timedelta = tick
    store_gauges = store_registry(db, clock, webhooks=[w.name for w in config.webhook])
    feeds = make_feeds_app(config.feeds_dir)
    redactor = SecretFilter(secrets_of(config))

    def status(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            view = load_status(
                db, config, now=clock(), heartbeat=heartbeat(), redact=redactor.redact
            )
        except (SQLAlchemyError, FeedbotError) as exc:
            logger.warning("status page: cannot read the store: %s", type(exc).__name__)
            return _text(environ, start_response, "503 Service Unavailable", "store unreachable")
        body = render_status(view).encode("utf-8")
        return _send(environ, start_response, "200 OK", body, "text/html; charset=utf-8")

    def healthz(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return _text(environ, start_response, "200 OK", "ok")

    def readyz(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        store_error: str | None = None
        try:
            with db.read() as conn:
                conn.execute(text("SELECT 1")).scalar_one()
        except (SQLAlchemyError, FeedbotError) as exc:
            store_error = type(exc).__name__
        reason = readiness(store_error, heartbeat(), clock(), gap)
        if reason is None:
            return _text(environ, start_response, "200 OK", "ready")
        return _text(environ, start_response, "503 Service Unavailable", f"not ready: {reason}")

    def metrics(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        body = generate_latest(registry) + generate_latest(store_gauges)
        return _send(environ, start_response, "200 OK", body, CONTENT_TYPE_PLAIN_0_0_4)

    routes: dict[str, tuple[WSGIApplication, bool]] = {
        "/": (status, True),
        "/healthz": (healthz, False),
        "/readyz": (readyz, True),
        "/metrics": (metrics, True),
    }

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        route = routes.get(environ.get("PATH_INFO") or "/")
        if route is None:
            return feeds(environ, start_response)
        handler, protected = route
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _text(
                environ, start_response, "405 Method Not Allowed", "method not allowed",
                [("Allow", "GET, HEAD")],
            )  # fmt: skip
        if protected and require_auth:
            header = environ.get("HTTP_AUTHORIZATION", "")
            if not token or not authorized(header, token):
                return _text(
                    environ, start_response, "401 Unauthorized", "authentication required",
                    _CHALLENGE,
                )  # fmt: skip
        return handler(environ, start_response)

    return app


def _send(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    status: str,
    body: bytes,
    content_type: str,
    extra: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        *_PAGE_HEADERS,
        *extra,
    ]
    start_response(status, headers)
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def _text(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    status: str,
    message: str,
    extra: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    body = (message + "\n").encode("utf-8")
    return _send(environ, start_response, status, body, "text/plain; charset=utf-8", extra)
