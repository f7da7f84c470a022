"""The fast path: fastfeedparser on well-formed RSS 0.9x/2.0, RSS 1.0 and Atom 1.0.

``parse_fast`` returns None, and the caller falls back to feedparser, whenever the fast
parser fails or its result is not trustworthy. The caller has already parsed the document
strictly (no DTD, no network), and left documents with xml:base to feedparser (the only
parser that resolves it); that tree is the evidence the result is checked against:
the entry count, a title and a date wherever the XML has one, UTC dates. Identity fields
(guid and link) are read from the tree with feedparser's rules: an Atom entry's link is its
first alternate HTML link, an RSS item's is its ``<link>``, else a permalink guid.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import fastfeedparser

from feedbot.poll.feeddata import RawEntry, RawFeed

logger = logging.getLogger(__name__)

ATOM = "http://www.w3.org/2005/Atom"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_DC = "http://purl.org/dc/elements/1.1/"
_SY = "http://purl.org/rss/1.0/modules/syndication/"
_RSS_NAMESPACES = frozenset(
    {"", "http://purl.org/rss/1.0/", "http://my.netscape.com/rdf/simple/0.9/"}
)
_TITLE_NAMESPACES = _RSS_NAMESPACES | {ATOM, _DC}
_DATE_NAMES = frozenset(
    {"pubdate", "published", "issued", "date", "updated", "modified", "lastbuilddate"}
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_ZERO = timedelta(0)


class _DeclinedError(Exception):
    """The fast result is not trusted; the message says why."""


def parse_fast(utf8: bytes, root: Any) -> RawFeed | None:
    """Parse *utf8* (well-formed, its tree is *root*) with fastfeedparser, or return None."""
    try:
        return _parse(utf8, root)
    except _DeclinedError as why:
        logger.debug("fast path declined: %s", why)
        return None


def _parse(utf8: bytes, root: Any) -> RawFeed:
    namespace, name = _split_tag(root.tag)
    if name == "rss" and not namespace:
        channel = root.find("channel")
        items = list(root.iter("item"))
    elif name == "RDF" and namespace == RDF:
        channel = root.find("{*}channel")
        items = list(root.iterfind(".//{*}item"))
    elif name == "feed" and namespace == ATOM:
        channel = root
        items = list(root.iter(f"{{{ATOM}}}entry"))
    else:
        raise _DeclinedError(f"format {root.tag} is left to feedparser")
    if channel is None:
        raise _DeclinedError("no channel element")
    try:
        # media and enclosures are never read; asking for them costs a tenth of the parse
        parsed = fastfeedparser.parse(utf8, include_media=False, include_enclosures=False)
    except Exception as exc:  # the fast parser may raise anything on odd input
        raise _DeclinedError(f"fastfeedparser raised {type(exc).__name__}: {exc}") from exc
    entries = parsed.get("entries") or []
    if len(entries) != len(items):
        raise _DeclinedError(f"{len(entries)} entries where the XML has {len(items)}")
    atom = channel is root
    return raw_feed(
        channel,
        tuple(_entry(e, item, atom) for e, item in zip(entries, items, strict=True)),
        atom=atom,
    )


def raw_feed(channel: Any, entries: tuple[RawEntry, ...], *, atom: bool) -> RawFeed:
    """The feed's own fields, read off its channel (RSS) or its root (Atom), with *entries*."""
    return RawFeed(
        title=_text(_child(channel, "title", _TITLE_NAMESPACES)),
        link=_atom_link(channel) if atom else _child_text(channel, "link", _RSS_NAMESPACES),
        language=channel.get("{http://www.w3.org/XML/1998/namespace}lang")
        if atom
        else (_child_text(channel, "language", _RSS_NAMESPACES | {_DC})),
        ttl=None if atom else _child_text(channel, "ttl", _RSS_NAMESPACES),
        update_period=_child_text(channel, "updatePeriod", {_SY}),
        update_frequency=_child_text(channel, "updateFrequency", {_SY}),
        entries=entries,
    )


def _entry(entry: dict[str, Any], item: Any, atom: bool) -> RawEntry:
    title_element = _child(item, "title", _TITLE_NAMESPACES)
    title = (entry.get("title") or "").strip()
    if title_element is not None:
        if title_element.get("type") == "xhtml" or len(title_element):
            raise _DeclinedError("markup inside a title")
        if not title and (title_element.text or "").strip():
            raise _DeclinedError("an entry lost its title")
    if atom:
        guid = _child_text(item, "id", {ATOM})
        link = _atom_link(item)
    else:
        guid_element = _child(item, "guid", _RSS_NAMESPACES)
        guid = (guid_element.text or "").strip() if guid_element is not None else None
        guid = guid or item.get(f"{{{RDF}}}about")
        link = _child_text(item, "link", _RSS_NAMESPACES)
        permalink = guid_element is not None and guid_element.get("isPermaLink") != "false"
        if link is None and permalink and guid and guid.startswith(("http://", "https://")):
            link = guid
    has_date = any(
        isinstance(child.tag, str) and _split_tag(child.tag)[1].lower() in _DATE_NAMES
        for child in item
    )
    published = _utc(entry.get("published")) if has_date else None
    updated = _utc(entry.get("updated")) if has_date else None
    if has_date and published is None and updated is None:
        raise _DeclinedError("an entry lost its date")
    contents = entry.get("content") or [{}]
    return RawEntry(
        guid=guid,
        link=link,
        title=title,
        summary=entry.get("description") or "",
        content=contents[0].get("value") or "",
        content_type=contents[0].get("type") or "text/html",
        authors=tuple(a.get("name") or "" for a in entry.get("authors") or ()),
        categories=tuple(t.get("term") or "" for t in entry.get("tags") or ()),
        language=None,
        published=published,
        updated=updated,
    )


def _utc(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _DeclinedError(f"date {value!r} is not text")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _DeclinedError(f"date {value!r} is not ISO 8601") from exc
    if parsed.utcoffset() != _ZERO:
        raise _DeclinedError(f"date {value!r} is not UTC")
    return parsed


def _atom_link(element: Any) -> str | None:
    """The first alternate HTML link, as feedparser picks it."""
    for link in element.iterfind(f"{{{ATOM}}}link"):
        rel = link.get("rel") or "alternate"
        kind = (link.get("type") or "text/html").split(";")[0].strip().lower()
        if rel == "alternate" and kind in _HTML_TYPES and link.get("href"):
            return str(link.get("href")).strip()
    return None


def _child(element: Any, name: str, namespaces: frozenset[str] | set[str]) -> Any:
    for child in element:
        tag = child.tag
        if isinstance(tag, str) and tag.endswith(name):
            namespace, local = _split_tag(tag)
            if local == name and namespace in namespaces:
                return child
    return None


def _split_tag(tag: str) -> tuple[str, str]:
    """``(namespace, local name)`` of an element tag (``{namespace}local`` or ``local``), without
    building a ``QName`` for each element of each entry."""
    if tag[:1] != "{":
        return "", tag
    namespace, _, local = tag[1:].partition("}")
    return namespace, local


def _child_text(element: Any, name: str, namespaces: frozenset[str] | set[str]) -> str | None:
    child = _child(element, name, namespaces)
    return (child.text or "").strip() or None if child is not None else None


def _text(element: Any) -> str:
    return "".join(element.itertext()) if element is not None else ""
