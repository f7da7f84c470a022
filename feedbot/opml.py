"""OPML 2.0 subscription lists: read (nested outlines, safely) and write (grouped by topic)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree

from feedbot.errors import InputError

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    name: str
    title: str
    url: str
    topics: tuple[str, ...]
    folders: tuple[str, ...]  # the outline path it was found under


def slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:60] or "feed"


def read_opml(path: Path) -> list[OpmlFeed]:
    """Every ``<outline xmlUrl=…>`` at any depth; names are unique slugs of the titles."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", resource=str(path)) from exc
    if b"<!ENTITY" in data[:4096]:
        raise InputError("entity declarations are not allowed in OPML", resource=str(path))
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise InputError(
            f"not well-formed XML: {exc.msg}", resource=str(path), line=exc.lineno
        ) from exc
    if root.tag != "opml" or root.find("body") is None:
        raise InputError("not an OPML document (no <opml><body>)", resource=str(path))
    feeds: list[OpmlFeed] = []
    names: set[str] = set()
    _walk(root.find("body"), (), feeds, names, path)
    return feeds


def _walk(
    node: etree._Element, folders: tuple[str, ...], out: list[OpmlFeed], names: set[str], path: Path
) -> None:
    for outline in node.iterfind("outline"):
        text = (outline.get("title") or outline.get("text") or "").strip()
        url = (outline.get("xmlUrl") or "").strip()
        if not url:
            _walk(outline, (*folders, text), out, names, path)
            continue
        if urlsplit(url).scheme not in ("http", "https"):
            raise InputError(
                f"outline {text!r}: xmlUrl is not an http(s) URL",
                resource=str(path),
                line=outline.sourceline,
            )
        base = slug(text or urlsplit(url).netloc)
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.add(name)
        topics = tuple(
            t.strip().strip("/")
            for t in (outline.get("category") or "").split(",")
            if t.strip().strip("/")
        )
        out.append(OpmlFeed(name, text or name, url, topics, folders))


def write_opml(
    feeds: Sequence[tuple[str, str, Sequence[str]]], *, title: str, now: datetime
) -> bytes:
    """``(name, url, topics)`` rows as OPML 2.0, one folder per first topic."""
    opml = etree.Element("opml", version="2.0")
    head = etree.SubElement(opml, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(now, usegmt=True)
    body = etree.SubElement(opml, "body")
    folders: dict[str, etree._Element] = {}
    for name, url, topics in sorted(feeds, key=lambda f: (f[2][0] if f[2] else "", f[0])):
        parent = body
        if topics:
            parent = folders.get(topics[0])
            if parent is None:
                parent = folders[topics[0]] = etree.SubElement(body, "outline", text=topics[0])
        attrs = {"type": "rss", "text": name, "title": name, "xmlUrl": url}
        if topics:
            attrs["category"] = ",".join(f"/{t}" for t in topics)
        etree.SubElement(parent, "outline", attrs)
    return bytes(etree.tostring(opml, xml_declaration=True, encoding="UTF-8", pretty_print=True))
