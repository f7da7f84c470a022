"""What every destination kind shares: the notice, the limits record, and text budgeting.

Everything here is pure. A kind module builds payload dicts from a ``Notice`` and states
its limits in a ``Kind``; the helpers below truncate text to a budget (with "…"), fit a
payload under a size measure, and pack digest items into as few messages as allowed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from feedbot.clock import as_utc, isoformat
from feedbot.errors import NotifyError
from feedbot.models import StoredArticle

Payload = dict[str, Any]
"""One JSON object to POST; only str, int, float, bool, None, list and dict inside."""

EVENTS = ("article.new", "article.updated")
ELLIPSIS = "…"
MAX_URL = 2048
_WORD_WINDOW = 30  # look back this far for a space before cutting mid-word

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Notice:
    """One article to announce; built by the outbox from the store, rendered per kind."""

    delivery_id: str
    event: str
    article_id: str
    title: str
    summary: str  # plain text
    link: str | None
    source: str | None  # the feed's title
    source_url: str | None
    published: datetime
    topics: tuple[str, ...]
    also_reported: tuple[tuple[str, str], ...] = ()  # (source, link)
    updated: datetime | None = None

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise NotifyError(f"unknown event {self.event!r}", resource=self.delivery_id)
        for name in ("published", "updated"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise NotifyError(f"{name} is a naive datetime", resource=self.delivery_id)

    @property
    def occurred(self) -> datetime:
        """When the event happened: the update time for updates, else publication."""
        return as_utc(self.updated or self.published)


def notice_from_article(article: StoredArticle, *, delivery_id: str, event: str) -> Notice:
    """Build the notice for one stored article."""
    origin = article.origin
    return Notice(
        delivery_id=delivery_id,
        event=event,
        article_id=article.id,
        title=article.title,
        summary=article.summary,
        link=article.link,
        source=origin.title if origin else None,
        source_url=origin.url if origin else None,
        published=article.published,
        topics=article.topics,
        also_reported=tuple((o.title, o.link or o.url) for o in article.related),
        updated=article.updated if event == "article.updated" else None,
    )


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``requests`` per ``per_seconds``, counted per ``scope`` (webhook or channel)."""

    requests: int
    per_seconds: float
    scope: Literal["webhook", "channel"] = "webhook"


class DigestRenderer(Protocol):
    def __call__(self, notices: Sequence[Notice], *, topic_summary: str = "") -> list[Payload]:
        """Render many notices as few messages as the kind's limits allow."""
        ...


@dataclass(frozen=True, slots=True)
class Kind:
    """A destination kind: its limits as data and its pure renderers.

    ``max_total`` applies to ``measure(payload)``: the platform's own count (Discord sums
    embed text; Slack and Mattermost count characters of the JSON body, Teams its bytes).
    ``None`` means the platform states no limit.
    """

    name: str
    max_title: int | None
    max_text: int | None
    max_total: int | None
    total_unit: Literal["chars", "bytes"]
    max_items_per_message: int | None
    rates: tuple[Rate, ...]
    render: Callable[[Notice], Payload]
    render_digest: DigestRenderer
    measure: Callable[[Payload], int]


# --- text budgeting -----------------------------------------------------------------------


def truncate(text: str, limit: int) -> str:
    """*text* cut to at most *limit* characters, ending with "…" when cut.

    Cuts at a space when one lies within the last few characters before the limit.
    """
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    head = text[: limit - 1]
    space = head.rfind(" ", max(0, len(head) - _WORD_WINDOW))
    if space > 0:
        head = head[:space]
    return head.rstrip() + ELLIPSIS


def truncate_marked(text: str, limit: int, markup: Callable[[str], str]) -> str:
    """``markup(truncate(text, n))`` for the largest *n* whose result is within *limit*.

    Escaping lengthens text, so the plain text is cut first (never inside an escape) and
    cut again by the overflow until the marked-up form fits.
    """
    budget = limit
    while True:
        out = markup(truncate(text, budget))
        if len(out) <= limit or budget <= 0:
            return out
        budget -= max(1, len(out) - limit)


def fit(build: Callable[[int], T], measure: Callable[[T], int], limit: int, longest: int) -> T:
    """``build(n)`` for the largest ``n <= longest`` whose measure is within *limit*.

    *build* must grow monotonically with *n*; ``build(0)`` is returned when nothing fits.
    """
    whole = build(longest)
    if measure(whole) <= limit:
        return whole
    best = build(0)
    low, high = 1, longest - 1
    while low <= high:
        mid = (low + high) // 2
        candidate = build(mid)
        if measure(candidate) <= limit:
            best, low = candidate, mid + 1
        else:
            high = mid - 1
    return best


def pack(sizes: Sequence[int], *, capacity: int | None, max_items: int | None) -> list[range]:
    """Split items, in order, into the fewest consecutive groups within both limits.

    Greedy filling is optimal for consecutive groups. An item larger than *capacity* on
    its own still gets a group of its own (callers size items so this cannot happen).
    """
    groups: list[range] = []
    start, used = 0, 0
    for index, size in enumerate(sizes):
        full = max_items is not None and index - start >= max_items
        over = capacity is not None and used + size > capacity
        if index > start and (full or over):
            groups.append(range(start, index))
            start, used = index, 0
        used += size
    if start < len(sizes):
        groups.append(range(start, len(sizes)))
    return groups


def json_chars(payload: Payload) -> int:
    """Characters of the JSON body as ``json.dumps`` (and ``requests``) writes it."""
    return len(json.dumps(payload))


def json_bytes(payload: Payload) -> int:
    """Bytes of the JSON body; ASCII-escaped, so this bounds a UTF-8 body too."""
    return len(json.dumps(payload).encode("utf-8"))


# --- shared wording -----------------------------------------------------------------------


def event_label(event: str) -> str:
    """ "New" or "Updated"."""
    return "Updated" if event == "article.updated" else "New"


def when_text(value: datetime) -> str:
    """A short readable UTC time, e.g. ``2024-05-01 08:30 UTC``."""
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC")


def iso(value: datetime) -> str:
    """RFC 3339 UTC with a ``Z`` suffix."""
    return isoformat(value)


def epoch(value: datetime) -> int:
    """Whole Unix seconds."""
    return int(as_utc(value).timestamp())


def topics_text(topics: Sequence[str]) -> str:
    """Topics as one comma-separated line."""
    return ", ".join(topics)


def digest_heading(notices: Sequence[Notice], topic_summary: str) -> str:
    """The digest's first line: the caller's summary, or counts per topic."""
    if topic_summary:
        return topic_summary
    counts = Counter(topic for notice in notices for topic in notice.topics)
    noun = "article" if len(notices) == 1 else "articles"
    head = f"{len(notices)} new {noun}"
    if not counts:
        return head
    return head + ": " + ", ".join(f"{topic} ({n})" for topic, n in counts.most_common())


def part_suffix(index: int, total: int) -> str:
    """`` (2/3)`` when a digest spans several messages, else nothing."""
    return f" ({index + 1}/{total})" if total > 1 else ""


def join_within(parts: Sequence[str], limit: int, sep: str = ", ") -> str:
    """Whole *parts* joined while they fit in *limit*, then "+N more" (never a cut part)."""
    out = ""
    for index, part in enumerate(parts):
        candidate = part if not out else out + sep + part
        rest = len(parts) - index - 1
        tail = f"{sep}+{rest} more" if rest else ""
        if len(candidate) + len(tail) > limit:
            more = f"+{len(parts) - index} more"
            joined = more if not out else out + sep + more
            return joined if len(joined) <= limit else out
        out = candidate
    return out


_MD_SPECIAL = re.compile(r"([\\`*_~|\[\]()<>#])")
_LINE_START_DASH = re.compile(r"(?m)^(\s*)([-+])")


def escape_entities(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` as entities (Slack mrkdwn; decoded by Markdown too)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def markdown_escape(text: str) -> str:
    """Backslash-escape Markdown syntax so plain text renders as itself (Discord, Mattermost)."""
    return _LINE_START_DASH.sub(r"\1\\\2", _MD_SPECIAL.sub(r"\\\1", text))


def safe_url(url: str | None) -> str | None:
    """*url* if it is an absolute http(s) URL of sane length, else ``None``.

    Keeps ``javascript:`` and similar links out of every message.
    """
    if not url or len(url) > MAX_URL:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url.strip()
