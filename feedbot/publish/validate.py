"""Check an Atom document: the RFC 4287 RELAX NG schema plus the rules it cannot express."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from lxml import etree

from feedbot.errors import PublishError
from feedbot.publish.spec import is_absolute_iri

ATOM_NS = "http://www.w3.org/2005/Atom"
_A = f"{{{ATOM_NS}}}"
# RFC 3339 date-time; RFC 4287 3.3 requires the "T" and "Z" in upper case.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def validate_atom(data: bytes, rng_path: Path) -> list[str]:
    """Problems found in the Atom document *data*; an empty list means valid.

    Raises ``PublishError`` when the schema at *rng_path* cannot be loaded.
    """
    try:
        schema = etree.RelaxNG(etree.parse(str(rng_path), _parser()))
    except (OSError, etree.LxmlError) as exc:
        raise PublishError(f"cannot load schema: {exc}", resource=str(rng_path)) from exc
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed XML: {exc}"]
    problems: list[str] = []
    if not schema.validate(root):
        problems += [f"schema: line {e.line}: {e.message}" for e in schema.error_log]
    if root.tag != f"{_A}feed":
        problems.append(f"root element is {root.tag}, not atom:feed")
        return problems
    problems += _feed_problems(root)
    return problems


def _feed_problems(feed: etree._Element) -> list[str]:
    problems = _required_children(feed, "feed")
    problems += _id_problems(feed, "feed")
    if not any(link.get("rel") == "self" for link in feed.iterfind(f"{_A}link")):
        problems.append('feed: no link rel="self"')
    feed_has_author = feed.find(f"{_A}author") is not None
    seen: dict[str, int] = {}
    for index, entry in enumerate(feed.iterfind(f"{_A}entry"), start=1):
        where = f"entry {index}"
        problems += _required_children(entry, where)
        problems += _id_problems(entry, where)
        entry_id = (entry.findtext(f"{_A}id") or "").strip()
        if entry_id in seen:
            problems.append(f"{where}: id {entry_id!r} repeats entry {seen[entry_id]}")
        else:
            seen[entry_id] = index
        has_author = (
            entry.find(f"{_A}author") is not None
            or entry.find(f"{_A}source/{_A}author") is not None
        )
        if not (feed_has_author or has_author):
            problems.append(f"{where}: no author, and the feed has none")
        if entry.find(f"{_A}content") is None and not any(
            link.get("rel", "alternate") == "alternate" for link in entry.iterfind(f"{_A}link")
        ):
            problems.append(f"{where}: neither content nor a rel=alternate link")
    problems += _date_problems(feed)
    return problems


def _required_children(element: etree._Element, where: str) -> list[str]:
    problems = []
    for name in ("id", "title", "updated"):
        count = len(element.findall(f"{_A}{name}"))
        if count != 1:
            problems.append(f"{where}: {count} atom:{name} elements, expected exactly 1")
    return problems


def _id_problems(element: etree._Element, where: str) -> list[str]:
    return [
        f"{where}: id {value!r} is not an absolute IRI"
        for value in ((e.text or "").strip() for e in element.iterfind(f"{_A}id"))
        if not is_absolute_iri(value)
    ]


def _date_problems(feed: etree._Element) -> list[str]:
    problems = []
    for element in feed.iter(f"{_A}updated", f"{_A}published"):
        text = (element.text or "").strip()
        if not is_rfc3339(text):
            name = etree.QName(element).localname
            problems.append(f"line {element.sourceline}: {name} {text!r} is not an RFC 3339 date")
    return problems


def is_rfc3339(text: str) -> bool:
    """True when *text* is an RFC 3339 date-time that names a real instant."""
    if not _RFC3339.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
