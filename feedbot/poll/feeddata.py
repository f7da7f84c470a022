"""What the parse stage hands on: typed feed data, and the one place raw parser output is cleaned.

Both parsers (the fast path and feedparser) and the JSON Feed reader produce ``RawFeed``;
``build_feed`` turns it into ``FeedData`` with the same rules whichever parser ran, so the two
paths can only differ in what they extracted, never in how it was cleaned.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from html import escape
from urllib.parse import urljoin, urlsplit

from feedbot.clock import as_utc
from feedbot.text import clean_text, html_to_text, sanitize_html

SUMMARY_MAX_CHARS = 2000
# html_to_text never sees more than this much of an entry's HTML: enough for a summary.
_SUMMARY_SOURCE_CHARS = 4 * SUMMARY_MAX_CHARS
_LINK_SCHEMES = frozenset({"http", "https"})
# Parts of an absolute http(s) URL that urljoin would rewrite (an empty params, query or
# fragment is dropped; an empty host resolves against the base; brackets are checked)
_REWRITTEN = re.compile(r"^https?:///|[;\[\]]|\?(?:#|$)|#$")
_LOOKS_LIKE_MARKUP = re.compile(r"<[A-Za-z/!]|&(?:#\d+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);")


@dataclass(frozen=True, slots=True)
class EntryData:
    """One upstream entry: text is clean, URLs absolute, dates aware UTC.

    ``key`` identifies the entry within its feed: the id/guid as given, else the link, else
    ``sha256:`` of the title and summary. ``published`` and ``updated`` each fall back to the
    other when the feed gives only one.

    ``text`` is the plain text of the content (repaired), what topics and story keys read.
    ``html`` is the content's HTML as the feed gave it (text/plain content escaped): it is
    **not safe** to republish. ``content`` is that HTML sanitised against ``base``, made
    when asked for: most entries match no topic and are never republished, and sanitising
    is the costliest step of parsing, so only the entries that are kept pay for it.
    """

    key: str
    guid: str | None
    link: str | None
    title: str
    summary: str
    text: str
    html: str
    base: str
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    language: str | None
    published: datetime | None
    updated: datetime | None

    @property
    def content(self) -> str:
        """The sanitised content HTML (empty when the entry has none)."""
        return sanitize_html(self.html, base_url=self.base) if self.html else ""


@dataclass(frozen=True, slots=True)
class FeedData:
    """One parsed upstream document. ``parser`` is "tree", "fast", "feedparser" or "json"."""

    title: str
    link: str | None
    url: str
    language: str | None
    ttl_minutes: int | None
    update_period: str | None
    update_frequency: str | None
    entries: tuple[EntryData, ...]
    warning: str | None
    parser: str


@dataclass(frozen=True, slots=True)
class RawEntry:
    """An entry as a parser extracted it: strings unclean, HTML unsanitised, URLs maybe relative.

    ``content_type`` is the MIME type of ``content`` ("text/plain" content is escaped, not
    interpreted). Dates are aware datetimes.
    """

    guid: str | None
    link: str | None
    title: str
    summary: str
    content: str
    content_type: str
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    language: str | None
    published: datetime | None
    updated: datetime | None


@dataclass(frozen=True, slots=True)
class RawFeed:
    """A feed as a parser extracted it; see ``RawEntry``."""

    title: str
    link: str | None
    language: str | None
    ttl: str | None
    update_period: str | None
    update_frequency: str | None
    entries: tuple[RawEntry, ...]


def build_feed(raw: RawFeed, *, url: str, parser: str, warning: str | None) -> FeedData:
    """Clean a ``RawFeed``: relative URLs are resolved against *url*."""
    language = _opt(raw.language)
    return FeedData(
        title=plain_title(raw.title),
        link=absolute_link(raw.link, url),
        url=url,
        language=language,
        ttl_minutes=_minutes(raw.ttl),
        update_period=_opt(raw.update_period),
        update_frequency=_opt(raw.update_frequency),
        entries=tuple(build_entry(entry, base=url, language=language) for entry in raw.entries),
        warning=warning,
        parser=parser,
    )


def build_entry(raw: RawEntry, *, base: str, language: str | None) -> EntryData:
    """Clean one entry (see ``EntryData`` for the rules)."""
    title = plain_title(raw.title)
    html = raw.content or raw.summary
    if raw.content and raw.content_type == "text/plain":
        html = escape(raw.content)
    text = html_to_text(html) if html else ""
    # no summary of its own (RSS often gives one description as both): cut the content's text
    own_summary = bool(raw.summary) and raw.summary != html
    summary = summary_text(raw.summary) if own_summary else shorten(text)
    guid = _opt(raw.guid)
    link = absolute_link(raw.link, base)
    published = _second(raw.published) or _second(raw.updated)
    return EntryData(
        key=guid or link or content_key(title, summary),
        guid=guid,
        link=link,
        title=title,
        summary=summary,
        text=text,
        html=html,
        base=base,
        authors=_unique(raw.authors),
        categories=_unique(raw.categories),
        language=_opt(raw.language) or language,
        published=published,
        updated=_second(raw.updated) or published,
    )


def plain_title(value: str) -> str:
    """Titles are plain text: markup (feeds often put HTML in titles) is reduced to its text."""
    if _LOOKS_LIKE_MARKUP.search(value):
        return html_to_text(value)
    return clean_text(value)


def summary_text(html: str) -> str:
    """Plain text of an HTML fragment, at most ``SUMMARY_MAX_CHARS`` long."""
    if len(html) > _SUMMARY_SOURCE_CHARS:
        html = html[:_SUMMARY_SOURCE_CHARS]
        cut = html.rfind("<")
        if cut > html.rfind(">"):
            html = html[:cut]
    return shorten(html_to_text(html))


def shorten(text: str) -> str:
    """*text* cut at a word boundary to at most ``SUMMARY_MAX_CHARS``, with an ellipsis."""
    if len(text) <= SUMMARY_MAX_CHARS:
        return text
    cut = text.rfind(" ", 0, SUMMARY_MAX_CHARS)
    return text[: cut if cut > SUMMARY_MAX_CHARS // 2 else SUMMARY_MAX_CHARS - 1].rstrip() + "…"


def content_key(title: str, summary: str) -> str:
    """The key of an entry that has neither id nor link."""
    digest = hashlib.sha256(f"{title}\n{summary}".encode()).hexdigest()
    return f"sha256:{digest}"


def absolute_link(value: str | None, base: str) -> str | None:
    """*value* resolved against *base*, if the result is an http(s) URL; else None."""
    value = _opt(value)
    if value is None:
        return None
    if is_plain_absolute(value):  # most links: nothing to resolve (2 µs instead of 8)
        return value
    try:
        resolved = urljoin(base, value)
        scheme = urlsplit(resolved).scheme.lower()
    except ValueError:
        return None
    return resolved if scheme in _LINK_SCHEMES else None


def is_plain_absolute(value: str) -> bool:
    """True for an absolute http(s) URL that ``urljoin`` returns unchanged whatever the base:
    printable ASCII with a host, no params and no empty query or fragment."""
    return (
        value.startswith(("http://", "https://"))
        and value.isascii()
        and value.isprintable()
        and _REWRITTEN.search(value) is None
    )


def _opt(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _minutes(value: str | None) -> int | None:
    value = _opt(value)
    if value is None or not value.isdigit():
        return None
    return int(value)


def _second(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value).replace(microsecond=0)


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    cleaned = (_label(v) if len(v) <= _LABEL_CHARS else clean_text(v) for v in values)
    return tuple(dict.fromkeys(v for v in cleaned if v))


_LABEL_CHARS = 200  # longer labels are cleaned each time, so the memo stays small


@lru_cache(maxsize=4096)
def _label(value: str) -> str:
    """A category or author name, cleaned. Memoised: the same few labels come back on
    most entries of a feed and across feeds, and cleaning each again cost as much as
    cleaning the entry's title (``bench/parse_bench.py``)."""
    return clean_text(value)
