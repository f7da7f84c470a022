"""What the status page shows, read from the store: upstreams, articles, webhooks, feeds.

:func:`load_status` runs a few bounded queries in one read transaction and returns a
:class:`StatusView` of frozen rows. Secrets are removed here, before anything renders:
webhook URLs are masked, upstream URLs lose user info and secret-looking query values,
and every free text (errors, reasons) passes through the redactor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from feedbot.config import Config
from feedbot.models import Origin
from feedbot.notify.secrets import MASK, mask_url
from feedbot.store import articles as store_articles
from feedbot.store import outbox
from feedbot.store import upstreams as store_upstreams
from feedbot.store.db import Database
from feedbot.store.outbox import depth as outbox_depth
from feedbot.store.upstreams import StoredUpstream

ARTICLE_LIMIT = 30
UPSTREAM_LIMIT = 1000
_STATE_ORDER = {"failing": 0, "disabled": 1, "new": 2, "ok": 3}
_SECRET_KEY = re.compile(r"(?i)token|key|secret|sig|auth|pass|session|code")

Redact = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class UpstreamView:
    name: str
    url: str  # secrets in user info and query values masked
    title: str | None
    state: str  # ok, failing, disabled, new
    last_success: datetime | None
    last_attempt: datetime | None
    last_error: str | None
    failures: int
    interval_s: int | None
    next_check: datetime
    note: str | None  # why disabled, or a feed warning


@dataclass(frozen=True, slots=True)
class ArticleView:
    title: str
    link: str | None
    updated: datetime
    topics: tuple[str, ...]
    source: Origin | None
    related: tuple[Origin, ...]


@dataclass(frozen=True, slots=True)
class WebhookView:
    name: str
    kind: str
    url: str  # masked
    enabled: bool
    pending: int
    dead: int
    oldest_pending: datetime | None
    last_success: datetime | None
    last_error: str | None
    failing: str | None


@dataclass(frozen=True, slots=True)
class FeedView:
    name: str
    title: str
    files: tuple[tuple[str, bool], ...]  # (file name, published yet)


@dataclass(frozen=True, slots=True)
class StatusView:
    now: datetime
    heartbeat: datetime | None
    upstreams: tuple[UpstreamView, ...]
    upstream_total: int
    articles: tuple[ArticleView, ...]
    article_total: int
    webhooks: tuple[WebhookView, ...]
    feeds: tuple[FeedView, ...]


def upstream_state(up: StoredUpstream) -> str:
    if not up.enabled:
        return "disabled"
    if up.consecutive_failures > 0:
        return "failing"
    return "ok" if up.last_success is not None else "new"


def display_url(url: str) -> str:
    """*url* with user info and secret-looking query values (``token=``, ``key=``) masked."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    netloc = (MASK + "@" if "@" in parts.netloc else "") + (f"[{host}]" if ":" in host else host)
    if port is not None:
        netloc += f":{port}"
    pairs = []
    for pair in parts.query.split("&") if parts.query else []:
        key, sep, _ = pair.partition("=")
        pairs.append(f"{key}={MASK}" if sep and _SECRET_KEY.search(key) else pair)
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(pairs), ""))


def secrets_of(config: Config) -> list[str]:
    """Every configured secret worth redacting from free text shown on the page."""
    found = [config.server.token or ""]
    for hook in config.webhook:
        found += [hook.url, hook.secret or ""]
    for up in config.upstream:
        found += list(up.headers.values())
    return [s for s in found if len(s) >= 8]


def _upstream_cleaner(stored: Sequence[StoredUpstream], redact: Redact) -> Redact:
    """*redact*, after showing upstream URLs as :func:`display_url` and masking the
    values of upstream headers (which the store may hold for CLI-added feeds)."""
    table: dict[str, str] = {}
    for up in stored:
        for url in (up.url, up.config_url):
            if display_url(url) != url:
                table[url] = display_url(url)
        table.update((value, MASK) for _, value in up.headers if len(value) >= 8)
    ordered = sorted(table, key=len, reverse=True)

    def clean(text: str) -> str:
        for raw in ordered:
            text = text.replace(raw, table[raw])
        return redact(text)

    return clean


def load_status(
    db: Database,
    config: Config,
    *,
    now: datetime,
    heartbeat: datetime | None,
    redact: Redact,
    article_limit: int = ARTICLE_LIMIT,
    upstream_limit: int = UPSTREAM_LIMIT,
) -> StatusView:
    """Read what the page shows; raises what the store raises (SQLAlchemyError)."""
    with db.read() as conn:
        stored = store_upstreams.list_all(conn)
        latest = store_articles.latest_articles(conn, article_limit)
        article_total = store_articles.count_articles(conn)
        stats = {s.webhook: s for s in outbox_depth(conn)}
        states = outbox.webhook_states(conn)

    scrub = _upstream_cleaner(stored, redact)

    def clean(text: str | None) -> str | None:
        return scrub(text) if text else None

    ups = sorted(
        (_upstream_view(u, clean) for u in stored),
        key=lambda u: (_STATE_ORDER.get(u.state, 9), u.name),
    )
    arts = tuple(
        ArticleView(a.title, a.link, a.updated, a.topics, a.origin, a.related) for a in latest
    )
    kinds = {hook.name: hook for hook in config.webhook}
    hooks = []
    for name in sorted(set(kinds) | set(stats)):
        cfg = kinds.get(name)
        st = stats.get(name)
        ws = states.get(name, {})
        hooks.append(
            WebhookView(
                name=name,
                kind=cfg.kind if cfg else "not configured",
                url=mask_url(cfg.url) if cfg and cfg.kind != "apprise" else MASK if cfg else "",
                enabled=cfg.enabled if cfg else False,
                pending=st.pending if st else 0,
                dead=st.dead if st else 0,
                oldest_pending=st.oldest_pending if st else None,
                last_success=ws.get("last_success"),
                last_error=clean(ws.get("last_error")),
                failing=clean(ws.get("failing")),
            )
        )
    return StatusView(
        now=now,
        heartbeat=heartbeat,
        upstreams=tuple(ups[:upstream_limit]),
        upstream_total=len(ups),
        articles=arts,
        article_total=article_total,
        webhooks=tuple(hooks),
        feeds=tuple(_feed_views(config)),
    )


def _upstream_view(up: StoredUpstream, clean: Callable[[str | None], str | None]) -> UpstreamView:
    state = upstream_state(up)
    note = up.disabled_reason if state == "disabled" else up.warning
    return UpstreamView(
        name=up.name,
        url=clean(display_url(up.url)) or "",
        title=up.title,
        state=state,
        last_success=up.last_success,
        last_attempt=up.last_attempt,
        last_error=clean(up.last_error),
        failures=up.consecutive_failures,
        interval_s=up.current_interval_s or up.interval_s,
        next_check=up.next_check,
        note=clean(note),
    )


def _feed_views(config: Config) -> Iterable[FeedView]:
    for pub in config.publish:
        files = tuple(
            (f"{pub.name}.{fmt}", Path(config.feeds_dir, f"{pub.name}.{fmt}").is_file())
            for fmt in pub.formats
        )
        yield FeedView(pub.name, pub.title, files)
