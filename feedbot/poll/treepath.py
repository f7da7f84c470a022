"""The tree path: plain RSS 2.0 read straight off the tree the parse stage already holds.

``parse.py`` parses every XML document strictly (ElementTree) before any feed parser runs
(well-formedness, no DTD, no network), so the fast path's fastfeedparser call parses each
document a second time, then walks the tree anyway for its checks. For RSS 2.0 whose items
hold only the elements below, reading them off that tree costs about half as much
(docs/architecture.md has the figures). Anything else returns None and goes on to the fast
path, then to feedparser:

- an item element that this module does not read or know to be harmless, or an element
  read for text that holds markup as elements;
- a field given twice (two titles, two descriptions, two dates, an ``author`` and a
  ``dc:creator``: the parsers do not all pick the same one);
- a ``pubDate`` that is not RFC 822 with a four-digit year and a GMT, UT, UTC, Z, US or
  numeric zone (nearly every feed's form; the others are left to the parsers' own rules).

Each field is what the fast path gives for it, string for string (so entry hashes do not
change on upgrade); ``tests/test_parse_tree.py`` checks it on every corpus file this path
reads and on cases of each rule, and the dates against feedparser too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from feedbot.poll.fastpath import raw_feed
from feedbot.poll.feeddata import RawEntry, RawFeed

_CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
_DC = "{http://purl.org/dc/elements/1.1/}"
_MEDIA = "{http://search.yahoo.com/mrss/}"
_AUTHORS = frozenset({"author", f"{_DC}creator"})  # one of either, counted together
_AUTHOR = "author"
_ONCE = frozenset({"title", "link", "guid", "description", _CONTENT, "pubDate"}) | _AUTHORS
# read by no parser into a field feedbot keeps (media:content is read only for its
# attributes and media:title, and feedparser keeps an item's own title over a media:title)
_HARMLESS = frozenset({
    "comments", "enclosure", "source", f"{_MEDIA}content", f"{_MEDIA}thumbnail",
    "{http://purl.org/rss/1.0/modules/slash/}comments",
    "{http://wellformedweb.org/CommentAPI/}commentRss",
})  # fmt: skip
_MEDIA_CHILDREN = frozenset({f"{_MEDIA}title", f"{_MEDIA}thumbnail", f"{_MEDIA}credit"})
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_RFC822 = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d)(?::(\d\d))?"
    r" (?:(GMT|UTC?|Z|[ECMP][SD]T)|([+-])(\d\d)(\d\d))"
)
# RFC 822's zones with names: hours from UTC
_ZONES = {"GMT": 0, "UT": 0, "UTC": 0, "Z": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
          "MST": -7, "MDT": -6, "PST": -8, "PDT": -7}  # fmt: skip


class _DeclinedError(Exception):
    """This document is left to the fast path."""


def parse_tree(root: Any) -> RawFeed | None:
    """The feed read off *root*, a strictly parsed document's root, or None."""
    if root.tag != "rss":
        return None
    channel = root.find("channel")
    if channel is None:
        return None
    try:
        entries = tuple(_item(item) for item in channel.iterfind("item"))
    except _DeclinedError:
        return None
    if len(entries) != sum(1 for _ in root.iter("item")):
        return None  # items outside the channel: left to the parsers' own rules
    return raw_feed(channel, entries, atom=False)


def _item(item: Any) -> RawEntry:
    found: dict[str, Any] = {}
    categories: list[str] = []
    for child in item:
        tag = child.tag
        if not isinstance(tag, str):
            continue  # a comment or processing instruction
        if tag in _ONCE:
            tag = _AUTHOR if tag in _AUTHORS else tag
            if tag in found or len(child):
                raise _DeclinedError
            found[tag] = child
        elif tag == "category":
            if len(child):
                raise _DeclinedError
            categories.append(child.text or "")
        elif tag not in _HARMLESS or not _harmless_children(child):
            raise _DeclinedError
    guid_element = found.get("guid")
    guid = (guid_element.text or "").strip() or None if guid_element is not None else None
    link = _text_of(found, "link").strip() or None
    permalink = guid_element is not None and guid_element.get("isPermaLink") != "false"
    if link is None and permalink and guid and guid.startswith(("http://", "https://")):
        link = guid
    description = _text_of(found, "description")
    content = _text_of(found, _CONTENT)
    author = _text_of(found, _AUTHOR).strip()
    return RawEntry(
        guid=guid,
        link=link,
        title=_text_of(found, "title").strip(),
        # fastfeedparser's summary: the description, else the content (both stripped); its
        # content: the content, else the description as written
        summary=(description or content).strip(),
        content=content or description,
        content_type="text/html",
        authors=(author,) if author else (),
        categories=tuple(categories),
        language=None,
        published=_date(found["pubDate"].text) if "pubDate" in found else None,
        updated=None,
    )


def _harmless_children(element: Any) -> bool:
    return all(not isinstance(child.tag, str) or child.tag in _MEDIA_CHILDREN for child in element)


def _text_of(found: dict[str, Any], tag: str) -> str:
    element = found.get(tag)
    return (element.text or "") if element is not None else ""


def _date(value: str | None) -> datetime:
    """An RFC 822 date as UTC; anything this does not read declines the document."""
    match = _RFC822.fullmatch((value or "").strip())
    if match is None:
        raise _DeclinedError
    day, month, year, hour, minute, second, named, sign, zone_h, zone_m = match.groups()
    number = _MONTHS.get(month)
    if number is None:
        raise _DeclinedError
    try:
        when = datetime(
            int(year), number, int(day), int(hour), int(minute), int(second or 0), tzinfo=UTC
        )
        if named:
            offset = timedelta(hours=_ZONES[named])
        else:
            offset = timedelta(hours=int(zone_h), minutes=int(zone_m))
            offset = offset if sign == "+" else -offset
        when -= offset
    except (ValueError, OverflowError) as exc:  # 24:00, 31 February, year 1 minus an offset
        raise _DeclinedError from exc
    return when
