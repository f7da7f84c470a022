"""Parse stage: bytes + response headers -> ``FeedData``. The only feedparser import in feedbot.

Order of work: decode (BOM, Content-Type charset, XML declaration, then UTF-8 and
windows-1252, as feedparser does), refuse unsafe DTDs, read JSON Feed directly, reject what is
not a feed, then try the fast path on well-formed XML and fall back to feedparser. Bozo
policy: entries that parse are kept and the error is recorded in ``FeedData.warning``.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import logging
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from time import struct_time
from typing import Any

import feedparser
from lxml import etree

from feedbot.errors import ParseError
from feedbot.poll.fastpath import parse_fast
from feedbot.poll.feeddata import FeedData, RawEntry, RawFeed, build_feed
from feedbot.poll.treepath import parse_tree

__all__ = ["parse_feed", "parse_feed_reference"]

logger = logging.getLogger(__name__)

_FEED_ROOTS = frozenset({"rss", "feed", "rdf", "channel"})
_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
_XML_DECL_ENCODING = re.compile(r"""^\s*<\?xml\s[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)""")
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*>")
_UTF8_DECL = '<?xml version="1.0" encoding="utf-8"?>'
_UTF8_DECL_BYTES = _UTF8_DECL.encode()
_CHARSET = re.compile(r"""charset\s*=\s*["']?([^\s;"']+)""", re.IGNORECASE)
_SPACE = re.compile(r"\s*")
_NON_SPACE = re.compile(r"\S")
_ELEMENT = re.compile(r"<([A-Za-z_][\w.:-]*)")
_ENTITY_DECL = re.compile(r"<!ENTITY", re.IGNORECASE)
_EXTERNAL_ENTITY = re.compile(r"<!ENTITY\s+(?:%\s*)?\S+\s+(?:SYSTEM|PUBLIC)\b", re.IGNORECASE)
_MAX_JSON_CHARS = 16 * 1024 * 1024
_MAX_JSON_ITEMS = 1000


@dataclass(frozen=True, slots=True)
class _Decoded:
    text: str
    utf8: bytes  # ``text`` as UTF-8 with an XML declaration saying so
    warning: str | None


def parse_feed(body: bytes, headers: Mapping[str, str], url: str) -> FeedData:
    """Parse a fetched document; raise ``ParseError`` when it is not a feed or is unsafe."""
    return _parse(body, headers, url, fast=True)


def parse_feed_reference(body: bytes, headers: Mapping[str, str], url: str) -> FeedData:
    """``parse_feed`` with feedparser only (no fast path): the reference the fast path must match."""
    return _parse(body, headers, url, fast=False)


def _parse(body: bytes, headers: Mapping[str, str], url: str, *, fast: bool) -> FeedData:
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    doc = _decode(body, content_type)
    if not doc.text or doc.text.isspace():  # not strip(), which would copy the document
        raise ParseError("not a feed: empty document", resource=url)
    first = _NON_SPACE.search(doc.text)  # not lstrip(), which would copy the document
    if first and first.group() in "{[":
        json_raw, warning = _json_feed(doc.text, url)
        return build_feed(json_raw, url=url, parser="json", warning=_join(doc.warning, warning))
    root_start, doctypes = _prolog(doc.text)
    _refuse_unsafe(doc.text[:root_start], url)
    first = _ELEMENT.match(doc.text, root_start)
    if first is None:
        what = "empty document" if "<" in doc.text else "plain text, neither XML nor JSON"
        raise ParseError(f"not a feed: {what}", resource=url)
    if first.group(1).lower() == "html":
        raise ParseError("not a feed: an HTML page", resource=url)
    if doctypes:  # nothing in it is used (entities were refused), and no parser may fetch it
        doc = _without(doc, doctypes)
    root = _strict_root(doc.utf8)
    if root is not None:
        name = root.tag.rpartition("}")[2]
        if name.lower() == "html":
            raise ParseError("not a feed: an HTML page", resource=url)
        if name.lower() not in _FEED_ROOTS:
            raise ParseError(f"not a feed: XML with a <{name}> root", resource=url)
        # only feedparser resolves xml:base, so both fast paths leave such documents to it
        if fast and b"xml:base" not in doc.utf8:
            raw = parse_tree(root)
            if raw is not None:
                return build_feed(raw, url=url, parser="tree", warning=doc.warning)
            raw = parse_fast(doc.utf8, root)
            if raw is not None:
                return build_feed(raw, url=url, parser="fast", warning=doc.warning)
    return _feedparser_feed(doc, url)


def _decode(body: bytes, content_type: str) -> _Decoded:
    """Decode like feedparser: BOM, then HTTP charset, XML declaration, UTF-8, windows-1252."""
    sniffed = ""
    for bom, name in _BOMS:
        if body.startswith(bom):
            sniffed, body = name, body[len(bom) :]
            break
    else:
        sniffed = _sniff_wide(body[:4])
    head = body[:1024].decode(sniffed or "latin-1", "ignore")
    declared = _XML_DECL_ENCODING.match(head)
    charset = _CHARSET.search(content_type)
    stated = [sniffed, charset.group(1) if charset else "", declared.group(1) if declared else ""]
    first = next((name for name in stated if name), "")
    has_nul = b"\x00" in body[:256]
    text, used = "", ""
    for name in _expand([*stated, "utf-8", "windows-1252"]):
        if name.startswith(("utf-16", "utf-32")) and not has_nul:
            continue  # declared as UTF-16/32, but the bytes are single-byte
        try:
            text = body.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
        used = name
        break
    if not used:
        text, used = body.decode("windows-1252", "replace"), "cp1252"
    if _single_byte(used) and not body.isascii():
        with contextlib.suppress(UnicodeDecodeError):
            text, used = body.decode("utf-8"), "utf-8"
    warning = None
    if first and not _compatible(first, used):
        warning = f"document declared as {first}, decoded as {used}"
    elif not first and used != "utf-8":
        warning = f"no encoding declared, decoded as {used}"
    if text.startswith("\ufeff"):
        text = text[1:]
        body = body[3:] if used == "utf-8" else body
    declaration = _XML_DECL.match(text)
    if declaration:
        text = _UTF8_DECL + text[declaration.end() :]
    if used == "utf-8" and (declaration is None or declaration.group().isascii()):
        # the body is that text in UTF-8 already (a strict decoding round-trips exactly)
        utf8 = (
            b"".join((_UTF8_DECL_BYTES, memoryview(body)[declaration.end() :]))
            if declaration
            else body
        )
    else:
        utf8 = text.encode("utf-8", "surrogatepass")
    return _Decoded(text=text, utf8=utf8, warning=warning)


def _sniff_wide(head: bytes) -> str:
    if head.startswith(b"\x00\x00\x00<"):
        return "utf-32-be"
    if head.startswith(b"<\x00\x00\x00"):
        return "utf-32-le"
    if head.startswith(b"\x00<"):
        return "utf-16-be"
    if head.startswith(b"<\x00"):
        return "utf-16-le"
    return ""


def _canonical(name: str) -> str:
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        return ""
    return "gb18030" if canonical in ("gb2312", "gbk") else canonical


def _expand(candidates: list[str]) -> list[str]:
    """Codec names to try, in order: gb2312 read as gb18030, latin-1 as windows-1252 first."""
    names: list[str] = []
    for candidate in candidates:
        name = _canonical(candidate) if candidate else ""
        options = ["cp1252", name] if name in ("latin-1", "iso8859-1", "ascii") else [name]
        names.extend(n for n in options if n and n not in names)
    return names


def _compatible(declared: str, used: str) -> bool:
    """Whether decoding with *used* honours the declaration (the same codec or a superset)."""
    pair = {_canonical(declared).replace("_", "-"), used.replace("_", "-")}
    if len(pair) == 1:
        return True
    return pair <= {"latin-1", "iso8859-1", "ascii", "cp1252"} or pair <= {"ascii", "utf-8"}


def _single_byte(name: str) -> bool:
    return len(b"\xc3\xa9".decode(name, "replace")) == 2


def _prolog(text: str) -> tuple[int, list[tuple[int, int]]]:
    """Where the first element starts, skipping comments, PIs and DOCTYPEs; the DOCTYPEs' spans."""
    i, n, doctypes = 0, len(text), []
    while i < n:
        space = _SPACE.match(text, i)
        i = space.end() if space else i
        if text.startswith("<?", i):
            end = text.find("?>", i + 2)
            i = n if end < 0 else end + 2
        elif text.startswith("<!--", i):
            end = text.find("-->", i + 4)
            i = n if end < 0 else end + 3
        elif text[i : i + 9].upper() == "<!DOCTYPE":
            end = _doctype_end(text, i + 9)
            doctypes.append((i, end))
            i = end
        else:
            break
    found = _ELEMENT.search(text, i)
    return (found.start() if found else n), doctypes


def _without(doc: _Decoded, spans: list[tuple[int, int]]) -> _Decoded:
    text = doc.text
    for start, end in reversed(spans):
        text = text[:start] + text[end:]
    return _Decoded(text=text, utf8=text.encode("utf-8", "surrogatepass"), warning=doc.warning)


def _doctype_end(text: str, i: int) -> int:
    """Index just past the DOCTYPE whose body starts at *i* (quotes, subset, comments honoured)."""
    n, depth, quote = len(text), 0, ""
    while i < n:
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
        elif text.startswith("<!--", i):
            end = text.find("-->", i + 4)
            i = n if end < 0 else end + 2
        elif c in "\"'":
            quote = c
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif c == ">" and depth <= 0:
            return i + 1
        i += 1
    return n


def _refuse_unsafe(prolog: str, url: str) -> None:
    """Refuse any entity declaration: nothing is expanded, read or fetched."""
    if not _ENTITY_DECL.search(prolog):
        return
    if _EXTERNAL_ENTITY.search(prolog):
        message = "unsafe document refused: its DTD declares an external entity (XXE)"
    else:
        message = "unsafe document refused: its DTD declares entities (entity expansion bomb)"
    raise ParseError(message, resource=url)


def _strict_root(utf8: bytes) -> Any:
    """The root element if the document is well-formed XML, else None. Never loads a DTD.

    ElementTree (expat) parses the CDATA sections that news feeds wrap their HTML in far
    faster than libxml2 (docs/architecture.md); it never fetches anything, an entity it
    does not know is an error (the prolog's DTDs are gone by now, entity declarations
    refused), and comments and processing instructions never reach the tree. It builds
    the tree as Python objects, though, with no limit on depth: a document large enough to
    hold more elements than a large real feed, and that does hold more ``<``, goes to lxml
    instead, which refuses nesting deeper than 256, so that a few MiB of nested tags
    cannot cost hundreds of MiB here. Counting is skipped below ``_ELEMENTTREE_ANY_BYTES``
    (a scan of the whole body, about a tenth of a millisecond for 160 KiB).
    """
    if len(utf8) > _ELEMENTTREE_ANY_BYTES and utf8.count(b"<") > _ELEMENTTREE_MAX_TAGS:
        return _lxml_root(utf8)
    try:  # no DTD is left for expat to expand or fetch from: see ``_parse``
        return ElementTree.fromstring(utf8)  # noqa: S314 - DTDs removed, entities refused
    except ElementTree.ParseError:
        return None


# About 4 MiB of bench/poll.py's news markup (23 "<" a KiB, the HTML in CDATA included);
# its worst shape, 50,000 nested elements, is about 13 MiB of Python objects.
_ELEMENTTREE_MAX_TAGS = 100_000
# A nested element takes at least 7 bytes ("<a>" and "</a>"), so a body this size holds
# at most those 50,000 (and at most 87,500 flat ones of 4 bytes, about 7.5 MiB).
_ELEMENTTREE_ANY_BYTES = 350_000


def _lxml_root(utf8: bytes) -> Any:
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        collect_ids=False,
    )
    try:
        return etree.fromstring(utf8, parser=parser)
    except etree.XMLSyntaxError:
        return None


def _feedparser_feed(doc: _Decoded, url: str) -> FeedData:
    result = feedparser.parse(
        io.BytesIO(doc.utf8),  # never a str: feedparser would take one for a path or a URL
        response_headers={"content-type": "application/xml; charset=utf-8"},
        sanitize_html=False,  # feedbot.text.sanitize_html runs on every parser's output
    )
    feed: dict[str, Any] = dict.get(result, "feed") or {}
    entries: list[dict[str, Any]] = dict.get(result, "entries") or []
    bozo = dict.get(result, "bozo_exception")
    problem = f"{type(bozo).__name__}: {bozo}" if bozo else None
    if not entries and not dict.get(result, "version") and not dict.get(feed, "title"):
        raise ParseError(f"not a feed: no RSS or Atom found ({problem})", resource=url)
    raw = RawFeed(
        title=dict.get(feed, "title") or "",
        link=dict.get(feed, "link"),
        language=dict.get(feed, "language"),
        ttl=dict.get(feed, "ttl"),
        update_period=dict.get(feed, "sy_updateperiod"),
        update_frequency=dict.get(feed, "sy_updatefrequency"),
        entries=tuple(_feedparser_entry(entry) for entry in entries),
    )
    if problem:
        logger.debug("feedparser bozo for %s: %s", url, problem)
    return build_feed(raw, url=url, parser="feedparser", warning=_join(doc.warning, problem))


def _feedparser_entry(entry: dict[str, Any]) -> RawEntry:
    guid = dict.get(entry, "id")
    link = dict.get(entry, "link")
    if dict.get(entry, "guidislink") and link == guid and not _is_http(link):
        link = None  # feedparser copied a non-URL guid into the link
    contents: list[dict[str, Any]] = dict.get(entry, "content") or []
    content = contents[0] if contents else {}
    details = [content, dict.get(entry, "summary_detail") or {}, dict.get(entry, "title_detail")]
    return RawEntry(
        guid=guid,
        link=link,
        title=dict.get(entry, "title") or "",
        summary=dict.get(entry, "summary") or "",
        content=dict.get(content, "value") or "",
        content_type=dict.get(content, "type") or "text/html",
        authors=tuple(
            dict.get(a, "name") or dict.get(a, "email") or ""
            for a in dict.get(entry, "authors") or ()
        ),
        categories=tuple(dict.get(t, "term") or "" for t in dict.get(entry, "tags") or ()),
        language=next((d.get("language") for d in details if d and d.get("language")), None),
        published=_from_struct(dict.get(entry, "published_parsed")),
        updated=_from_struct(dict.get(entry, "updated_parsed")),
    )


def _json_feed(text: str, url: str) -> tuple[RawFeed, str | None]:
    """Read a JSON Feed 1.0/1.1 document, bounded in size and item count."""
    if len(text) > _MAX_JSON_CHARS:
        raise ParseError("not a feed: JSON document over 16 MiB", resource=url)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"not a feed: invalid JSON ({exc})", resource=url) from exc
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or "jsonfeed.org/version/" not in version:
        raise ParseError("not a feed: JSON without a JSON Feed version", resource=url)
    items = data.get("items")
    items = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    warning = None
    if len(items) > _MAX_JSON_ITEMS:
        warning = f"JSON Feed has {len(items)} items; kept the first {_MAX_JSON_ITEMS}"
        items = items[:_MAX_JSON_ITEMS]
    raw = RawFeed(
        title=_json_str(data.get("title")) or "",
        link=_json_str(data.get("home_page_url")),
        language=_json_str(data.get("language")),
        ttl=None,
        update_period=None,
        update_frequency=None,
        entries=tuple(_json_item(item) for item in items),
    )
    return raw, warning


def _json_item(item: dict[str, Any]) -> RawEntry:
    html, plain = _json_str(item.get("content_html")), _json_str(item.get("content_text"))
    authors = item.get("authors")
    if not isinstance(authors, list):
        authors = [item.get("author")]  # JSON Feed 1.0
    tags = item.get("tags")
    return RawEntry(
        guid=_json_str(item.get("id")),
        link=_json_str(item.get("url")) or _json_str(item.get("external_url")),
        title=_json_str(item.get("title")) or "",
        summary=_json_str(item.get("summary")) or "",
        content=html or plain or "",
        content_type="text/html" if html else "text/plain",
        authors=tuple(_json_str(a.get("name")) or "" for a in authors if isinstance(a, dict)),
        categories=tuple(_json_str(t) or "" for t in tags) if isinstance(tags, list) else (),
        language=_json_str(item.get("language")),
        published=_rfc3339(item.get("date_published")),
        updated=_rfc3339(item.get("date_modified")),
    )


def _json_str(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)


def _rfc3339(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _from_struct(value: struct_time | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def _is_http(value: str | None) -> bool:
    return bool(value) and str(value).lower().startswith(("http://", "https://"))


def _join(*parts: str | None) -> str | None:
    return "; ".join(p for p in parts if p) or None
