"""The evidence for the fast paths: on every corpus file, ``parse_feed`` (the tree path, then
the fastfeedparser path, first) must give what feedparser alone gives
(``parse_feed_reference``) on each entry's identity fields.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from feedbot.errors import ParseError
from feedbot.poll.feeddata import FeedData
from feedbot.poll.parse import (
    _decode,
    _lxml_root,
    _prolog,
    _strict_root,
    _without,
    parse_feed,
    parse_feed_reference,
)

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "feeds"
FILES = sorted(p.name for p in CORPUS.glob("*") if p.name != "INDEX.tsv") if CORPUS.is_dir() else []
COMPARED = ("title", "link", "key", "published", "updated")
URL = "http://feeds.example.com/corpus/"

# File name -> why the fast path may disagree with feedparser there. Empty: on this corpus the
# fallback rules (entry counts, lost titles or dates, xml:base, Atom 0.3, non-UTC dates) send
# every file the fast parser gets wrong to feedparser.
EXPECTED_DIFFERENCES: dict[str, str] = {}


def outcome(parse: object, body: bytes, url: str) -> FeedData | str:
    try:
        return parse(body, {}, url)  # type: ignore[operator, no-any-return]
    except ParseError as exc:
        return exc.message


def identity(feed: FeedData) -> list[tuple[object, ...]]:
    return [tuple(getattr(e, name) for name in COMPARED) for e in feed.entries]


@pytest.mark.parametrize(
    "name", FILES or [pytest.param("", marks=pytest.mark.skip(reason=f"{CORPUS} is absent"))]
)
def test_fast_path_agrees_with_feedparser(name: str, corpus_dir: Path) -> None:
    body = (corpus_dir / name).read_bytes()
    fast = outcome(parse_feed, body, URL + name)
    reference = outcome(parse_feed_reference, body, URL + name)
    if name in EXPECTED_DIFFERENCES:
        pytest.xfail(EXPECTED_DIFFERENCES[name])
    if isinstance(reference, str) or isinstance(fast, str):
        assert fast == reference
        return
    assert reference.parser in ("feedparser", "json")
    assert (fast.title, fast.link, fast.language) == (
        reference.title,
        reference.link,
        reference.language,
    )
    assert identity(fast) == identity(reference)


def test_fast_path_carries_most_of_the_corpus(corpus_dir: Path) -> None:
    """Guard against a differential that passes because the fast paths never run: the
    tree path (plain RSS 2.0) and the fastfeedparser path each carry part of the corpus."""
    parsers = []
    for name in FILES:
        try:
            parsers.append(parse_feed((corpus_dir / name).read_bytes(), {}, URL + name).parser)
        except ParseError:
            continue
    assert parsers.count("fast") + parsers.count("tree") >= len(parsers) // 2
    assert parsers.count("tree") >= 15
    assert parsers.count("fast") >= 15


def test_expat_and_libxml2_agree_on_what_is_well_formed(corpus_dir: Path) -> None:
    """The strict parse is expat below 100,000 tags and libxml2 above: on every corpus
    file, as the parse stage prepares it, both accept or both refuse."""
    checked = 0
    for name in FILES:
        doc = _decode((corpus_dir / name).read_bytes(), "")
        _, doctypes = _prolog(doc.text)
        if doctypes:
            doc = _without(doc, doctypes)
        expat = _strict_root(doc.utf8) is not None
        assert expat == (_lxml_root(doc.utf8) is not None), name
        checked += expat
    assert checked >= 60
