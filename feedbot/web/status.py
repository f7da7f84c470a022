"""The status page as HTML: upstreams, recent articles, webhooks and published feeds.

:func:`render_status` turns a :class:`~feedbot.web.status_view.StatusView` into a page and
does no I/O. Every value is escaped, links are emitted only for http(s) URLs, and no
script is used; the CSS is inline.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from feedbot import __version__
from feedbot.clock import isoformat
from feedbot.models import Origin
from feedbot.web.status_view import ArticleView, FeedView, StatusView, UpstreamView, WebhookView


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def safe_href(url: str | None) -> str | None:
    """*url* when it is an absolute http(s) URL, else None (no ``javascript:`` links)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def _link(url: str | None, text: str) -> str:
    href = safe_href(url)
    if href is None:
        return _e(text)
    return f'<a href="{_e(href)}" rel="noopener noreferrer">{_e(text)}</a>'


def duration(seconds: float) -> str:
    """``45s``, ``12m``, ``3h 5m``, ``2d 4h``."""
    s = int(abs(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h}h {m}m" if m else f"{h}h"
    d, h = divmod(s // 3600, 24)
    return f"{d}d {h}h" if h else f"{d}d"


def relative(when: datetime, now: datetime) -> str:
    delta = (when - now).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"in {duration(delta)}" if delta > 0 else f"{duration(delta)} ago"


def _time(when: datetime | None, now: datetime, empty: str = "never") -> str:
    if when is None:
        return f'<span class="muted">{_e(empty)}</span>'
    stamp = isoformat(when)
    return f'<time datetime="{stamp}" title="{stamp}">{_e(relative(when, now))}</time>'


def _table(caption: str, headers: Sequence[str], rows: Sequence[str], empty: str) -> str:
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in headers)
    body = "".join(rows) or f'<tr><td colspan="{len(headers)}" class="muted">{_e(empty)}</td></tr>'
    return (
        f'<div class="scroll"><table><caption>{_e(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _upstream_row(u: UpstreamView, now: datetime) -> str:
    error = ""
    if u.last_error and (u.failures or u.state == "disabled"):
        error = f'<span class="error">{_e(u.last_error)}</span>'
        if u.failures:
            error += f' <span class="muted">({u.failures} in a row)</span>'
    elif u.last_error:  # an old error, from before the last success
        error = f'<span class="muted">earlier: {_e(u.last_error)}</span>'
    note = f'<div class="muted">{_e(u.note)}</div>' if u.note else ""
    interval = duration(u.interval_s) if u.interval_s else "auto"
    if u.state == "disabled":
        next_check = "—"
    elif u.next_check <= now:
        stamp = isoformat(u.next_check)
        since = (
            ""
            if now - u.next_check < timedelta(seconds=1)
            else f" since {duration((now - u.next_check).total_seconds())}"
        )
        next_check = f'<time datetime="{stamp}" title="{stamp}">due{since}</time>'
    else:
        next_check = _time(u.next_check, now)
    return (
        f'<tr class="state-{_e(u.state)}" data-upstream="{_e(u.name)}">'
        f'<th scope="row">{_e(u.name)}<div class="url">{_e(u.url)}</div></th>'
        f'<td><span class="badge {_e(u.state)}">{_e(u.state)}</span>{note}</td>'
        f"<td>{_time(u.last_success, now)}</td><td>{error or '—'}</td>"
        f"<td>{_e(interval)}</td><td>{next_check}</td></tr>"
    )


def _origin(o: Origin) -> str:
    label = o.title or urlsplit(o.link or o.url).hostname or o.url
    return _link(o.link or o.url, label)


def _article_row(a: ArticleView, now: datetime) -> str:
    topics = " ".join(f'<span class="topic">{_e(t)}</span>' for t in a.topics) or "—"
    source = _origin(a.source) if a.source else '<span class="muted">imported</span>'
    related = ", ".join(_origin(o) for o in a.related) or "—"
    return (
        f"<tr><td>{_link(a.link, a.title)}</td><td>{topics}</td><td>{source}</td>"
        f"<td>{related}</td><td>{_time(a.updated, now)}</td></tr>"
    )


def _webhook_row(w: WebhookView, now: datetime) -> str:
    state = "disabled" if not w.enabled else "failing" if w.failing else "ok"
    failing = f'<div class="error">{_e(w.failing)}</div>' if w.failing else ""
    error = f'<span class="error">{_e(w.last_error)}</span>' if w.last_error else "—"
    oldest = f" (oldest {_time(w.oldest_pending, now)})" if w.pending else ""
    return (
        f'<tr class="state-{state}"><th scope="row">{_e(w.name)}'
        f'<div class="url">{_e(w.url)}</div></th><td>{_e(w.kind)}</td>'
        f'<td><span class="badge {state}">{state}</span>{failing}</td>'
        f"<td>{w.pending}{oldest}</td><td>{w.dead}</td><td>{_time(w.last_success, now)}</td>"
        f"<td>{error}</td></tr>"
    )


def _feeds(feeds: Sequence[FeedView]) -> str:
    if not feeds:
        return '<p class="muted">No feed is configured for publishing.</p>'
    items = []
    for f in feeds:
        files = " · ".join(
            f'<a href="{_e(name)}">{_e(name)}</a>'
            if ready
            else f'<span class="muted">{_e(name)} (not published yet)</span>'
            for name, ready in f.files
        )
        items.append(f"<li><strong>{_e(f.title)}</strong> — {files}</li>")
    return f"<ul>{''.join(items)}</ul>"


def _summary(view: StatusView) -> str:
    failing = sum(1 for u in view.upstreams if u.state == "failing")
    disabled = sum(1 for u in view.upstreams if u.state == "disabled")
    pending = sum(w.pending for w in view.webhooks)
    dead = sum(w.dead for w in view.webhooks)
    tick = _time(view.heartbeat, view.now, "not yet")
    return (
        f'<p class="summary">{view.upstream_total} upstreams ({failing} failing, '
        f"{disabled} disabled) · {view.article_total} articles · {pending} deliveries "
        f"pending, {dead} dead · scheduler ticked {tick} · "
        f'<time datetime="{isoformat(view.now)}">{_e(isoformat(view.now))}</time></p>'
    )


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;
max-width:1200px;padding:1rem 1.5rem;color:#1d1d1f;background:#fff}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.6rem 0 .4rem}
table{border-collapse:collapse;width:100%}caption{text-align:left;color:#555;padding:.2rem 0}
th,td{text-align:left;vertical-align:top;padding:.35rem .6rem;border-bottom:1px solid #e3e3e8}
thead th{background:#f4f4f7;font-weight:600}tbody tr:nth-child(even){background:#fafafc}
.scroll{overflow-x:auto}.muted,.url{color:#6e6e73;font-size:.85em}.url{word-break:break-all;
font-weight:normal}.error{color:#b3261e;word-break:break-word}
.badge{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.8em;color:#fff;
background:#6e6e73}.badge.ok{background:#1e7f3c}.badge.failing{background:#b3261e}
.badge.disabled{background:#8a6d00}.badge.new{background:#2f5fb3}
.topic{display:inline-block;background:#eef1fb;border-radius:.3rem;padding:0 .35rem;
margin:0 .2rem .1rem 0;font-size:.85em}.summary{color:#333}
@media (prefers-color-scheme:dark){body{background:#161618;color:#e8e8ed}
thead th{background:#232327}tbody tr:nth-child(even){background:#1c1c1f}
th,td{border-color:#333}.topic{background:#2a2f45}a{color:#8ab4f8}.summary{color:#ccc}}
"""


def render_status(view: StatusView) -> str:
    """The whole page as HTML text."""
    now = view.now
    ups = [_upstream_row(u, now) for u in view.upstreams]
    if view.upstream_total > len(view.upstreams):
        ups.append(
            f'<tr><td colspan="6" class="muted">and {view.upstream_total - len(view.upstreams)}'
            " more</td></tr>"
        )
    alternates = "".join(
        f'<link rel="alternate" type="application/atom+xml" href="{_e(name)}" title="{_e(f.title)}">'
        for f in view.feeds
        for name, ready in f.files
        if ready and name.endswith(".atom")
    )
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>feedbot status</title>{alternates}<style>{_CSS}</style></head><body>",
        f'<header><h1>feedbot status</h1><p class="muted">version {_e(__version__)}</p>',
        _summary(view),
        "</header><main>",
        '<section id="upstreams"><h2>Upstreams</h2>',
        _table(
            "Problems first, then by name",
            ["Upstream", "State", "Last success", "Last error", "Interval", "Next check"],
            ups,
            "No upstream is configured.",
        ),
        '</section><section id="articles"><h2>Recent articles</h2>',
        _table(
            f"Newest {len(view.articles)} of {view.article_total}",
            ["Title", "Topics", "Source", "Also reported by", "Updated"],
            [_article_row(a, now) for a in view.articles],
            "No article stored yet.",
        ),
        '</section><section id="webhooks"><h2>Webhooks</h2>',
        _table(
            "Delivery outbox per webhook",
            ["Webhook", "Kind", "State", "Pending", "Dead", "Last success", "Last error"],
            [_webhook_row(w, now) for w in view.webhooks],
            "No webhook is configured.",
        ),
        '</section><section id="feeds"><h2>Published feeds</h2>',
        _feeds(view.feeds),
        "</section></main></body></html>\n",
    ]
    return "".join(parts)
