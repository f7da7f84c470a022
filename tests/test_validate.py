"""validate_atom: the RELAX NG schema plus the Atom rules a schema cannot express."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from feedbot.errors import PublishError
from feedbot.publish.atom import render_atom
from feedbot.publish.validate import is_rfc3339, validate_atom
from tests.test_publish import make_articles, make_spec

A = "{http://www.w3.org/2005/Atom}"

Mutation = Callable[[etree._Element], None]


@pytest.fixture(scope="module")
def rng_path(shared_dir: Path) -> Path:
    path = shared_dir / "standards" / "atom.rng"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def _entries(feed: etree._Element) -> list[etree._Element]:
    return list(feed.findall(f"{A}entry"))


def _remove(parent: etree._Element, path: str) -> None:
    for element in parent.findall(path):
        element.getparent().remove(element)


def _missing_self_link(feed: etree._Element) -> None:
    for link in feed.findall(f"{A}link[@rel='self']"):
        feed.remove(link)


def _relative_id(feed: etree._Element) -> None:
    _entries(feed)[1].find(f"{A}id").text = "articles/2"


def _two_titles(feed: etree._Element) -> None:
    extra = etree.SubElement(_entries(feed)[0], f"{A}title")
    extra.text = "A second title"


def _bad_date(feed: etree._Element) -> None:
    _entries(feed)[2].find(f"{A}updated").text = "2026-03-02 08:30"


def _impossible_date(feed: etree._Element) -> None:
    _entries(feed)[0].find(f"{A}published").text = "2026-02-30T10:00:00Z"


def _no_author(feed: etree._Element) -> None:
    _remove(feed, f"{A}author")
    _remove(feed, f"{A}entry/{A}author")


def _repeated_id(feed: etree._Element) -> None:
    first = _entries(feed)[0].findtext(f"{A}id")
    _entries(feed)[1].find(f"{A}id").text = first


def _no_content_no_link(feed: etree._Element) -> None:
    entry = _entries(feed)[1]
    _remove(entry, f"{A}content")
    _remove(entry, f"{A}link")


def _no_feed_updated(feed: etree._Element) -> None:
    _remove(feed, f"{A}updated")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_missing_self_link, 'feed: no link rel="self"'),
        (_relative_id, "entry 2: id 'articles/2' is not an absolute IRI"),
        (_two_titles, "entry 1: 2 atom:title elements, expected exactly 1"),
        (_bad_date, "updated '2026-03-02 08:30' is not an RFC 3339 date"),
        (_impossible_date, "published '2026-02-30T10:00:00Z' is not an RFC 3339 date"),
        (_no_author, "entry 1: no author, and the feed has none"),
        (_repeated_id, "entry 2: id 'tag:feedbot.localhost,2026:article/cloud-zh' repeats entry 1"),
        (_no_content_no_link, "entry 2: neither content nor a rel=alternate link"),
        (_no_feed_updated, "feed: 0 atom:updated elements, expected exactly 1"),
    ],
    ids=lambda value: getattr(value, "__name__", "")[1:] or None,
)
def test_validate_atom_finds(rng_path: Path, mutate: Mutation, expected: str) -> None:
    feed = etree.fromstring(render_atom(make_spec(), make_articles()))
    mutate(feed)
    problems = validate_atom(etree.tostring(feed, encoding="UTF-8"), rng_path)
    assert any(expected in problem for problem in problems), problems


def test_validate_atom_accepts_a_rendered_feed(rng_path: Path) -> None:
    assert validate_atom(render_atom(make_spec(), make_articles()), rng_path) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"<feed", "not well-formed XML"),
        (b"<rss version='2.0'><channel/></rss>", "root element is rss, not atom:feed"),
        (
            b'<!DOCTYPE feed [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<feed xmlns="http://www.w3.org/2005/Atom">&x;</feed>',
            "feed: 0 atom:id elements",
        ),
    ],
)
def test_validate_atom_other_documents(rng_path: Path, data: bytes, expected: str) -> None:
    problems = validate_atom(data, rng_path)
    assert any(expected in problem for problem in problems), problems
    assert "root:" not in " ".join(problems)  # the external entity was not read


def test_validate_atom_needs_a_schema(tmp_path: Path) -> None:
    with pytest.raises(PublishError) as info:
        validate_atom(b"<feed/>", tmp_path / "missing.rng")
    assert info.value.resource == str(tmp_path / "missing.rng")


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2026-03-05T08:30:00Z", True),
        ("2026-03-05T08:30:00+08:00", True),
        ("2026-03-05T08:30:00.250-05:00", True),
        ("2026-03-05t08:30:00z", False),
        ("2026-03-05T08:30:00", False),
        ("2026-03-05", False),
        ("2026-13-05T08:30:00Z", False),
        ("Thu, 05 Mar 2026 08:30:00 +0000", False),
    ],
)
def test_is_rfc3339(text: str, valid: bool) -> None:
    assert is_rfc3339(text) is valid
