"""The tree path (``poll/treepath.py``): plain RSS 2.0 read off the strict parse's tree.

Wherever it reads a document, it must give exactly what the fastfeedparser path gives (the
same ``FeedData``, so the same entry hashes) and feedparser's identity fields; whatever it
does not read must go on to the fast path.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedbot.errors import ParseError
from feedbot.poll.fastpath import parse_fast
from feedbot.poll.feeddata import FeedData, build_feed
from feedbot.poll.parse import (
    _decode,
    _prolog,
    _strict_root,
    _without,
    parse_feed,
    parse_feed_reference,
)
from feedbot.poll.treepath import parse_tree

URL = "https://example.org/feed.xml"
NAMESPACES = (
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:media="http://search.yahoo.com/mrss/" '
    'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" '
    'xmlns:atom="http://www.w3.org/2005/Atom"'
)


def rss(
    *items: str, channel: str = "<title>Notes</title><link>https://example.org/</link>"
) -> bytes:
    body = "".join(f"<item>{item}</item>" for item in items)
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" {NAMESPACES}>'
        f"<channel>{channel}{body}</channel></rss>"
    ).encode()


def both_paths(body: bytes) -> tuple[FeedData | None, FeedData | None]:
    """(tree path, fastfeedparser path) on one document, prepared as ``parse_feed``
    prepares it (its DTDs gone) and cleaned the same way."""
    doc = _decode(body, "")
    _, doctypes = _prolog(doc.text)
    if doctypes:
        doc = _without(doc, doctypes)
    root = _strict_root(doc.utf8)
    assert root is not None
    tree, fast = parse_tree(root), parse_fast(doc.utf8, root)
    return (
        None if tree is None else build_feed(tree, url=URL, parser="any", warning=None),
        None if fast is None else build_feed(fast, url=URL, parser="any", warning=None),
    )


READ = {
    "everything": (
        "<title> Cloud &amp; margins </title><link> https://example.org/a </link>"
        '<guid isPermaLink="false">note-1</guid><pubDate>Tue, 05 Mar 2024 08:30:00 GMT</pubDate>'
        "<dc:creator> Desk A </dc:creator><category> cloud </category><category>cloud</category>"
        "<category/><category>earnings</category>"
        "<description><![CDATA[<p>Short <b>take</b></p>]]></description>"
        "<content:encoded><![CDATA[<p>The long <em>story</em></p><script>x()</script>]]>"
        "</content:encoded>"
    ),
    "description only, with space around": "<title>A</title><description>  &lt;p>only&lt;/p>  </description>",
    "content only": "<title>B</title><content:encoded> <![CDATA[<p>body</p>]]> </content:encoded>",
    "empty description beside content": (
        "<title>C</title><description></description><content:encoded>c</content:encoded>"
    ),
    "blank description beside content": (
        "<title>C</title><description>  </description><content:encoded> c </content:encoded>"
    ),
    "permalink guid as the link": (
        "<title>D</title><guid>https://example.org/d</guid><pubDate>5 Mar 2024 08:30 +0130</pubDate>"
    ),
    "author in RSS's own element": "<title>E</title><author>desk@example.org (Desk)</author>",
    "blank author": "<title>E</title><author>  </author>",
    "harmless neighbours": (
        '<title>F</title><comments>https://example.org/f#c</comments><source url="https://s/">S</source>'
        '<enclosure url="https://example.org/f.mp3" length="1" type="audio/mpeg"/>'
        '<media:content url="https://example.org/f.jpg"><media:title>Other title</media:title>'
        "</media:content><!-- a comment --><pubDate>Sun, 31 Mar 2024 23:59:59 PDT</pubDate>"
    ),
    "no title": "<link>https://example.org/g</link><description>untitled</description>",
}


@pytest.mark.parametrize("item", READ.values(), ids=READ.keys())
def test_what_it_reads_it_reads_as_the_fast_path_does(item: str) -> None:
    tree, fast = both_paths(rss(item, "<title>neighbour</title>"))
    assert tree is not None
    assert tree == fast


def test_a_plain_feed_goes_the_tree_path_and_matches_feedparser() -> None:
    body = rss(READ["everything"], READ["permalink guid as the link"], READ["content only"])
    feed = parse_feed(body, {}, URL)
    reference = parse_feed_reference(body, {}, URL)
    assert feed.parser == "tree"
    assert (
        (feed.title, feed.link)
        == (reference.title, reference.link)
        == (
            "Notes",
            "https://example.org/",
        )
    )
    first, second, third = feed.entries
    assert (third.title, third.text) == ("B", "body")
    for mine, theirs in zip(feed.entries, reference.entries, strict=True):
        assert (mine.key, mine.link, mine.title, mine.published, mine.updated) == (
            theirs.key,
            theirs.link,
            theirs.title,
            theirs.published,
            theirs.updated,
        )
        assert mine.text == theirs.text
    assert (first.key, first.link, first.title) == (
        "note-1",
        "https://example.org/a",
        "Cloud & margins",
    )
    assert first.published == first.updated == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    assert (first.authors, first.categories) == (("Desk A",), ("cloud", "earnings"))
    assert "script" not in first.content
    assert first.text == "The long story"
    assert second.link == second.key == "https://example.org/d"
    assert second.published == datetime(2024, 3, 5, 7, 0, tzinfo=UTC)


DECLINED = {
    "two titles": "<title>A</title><title>B</title>",
    "a title and a dc:title": "<title>A</title><dc:title>B</dc:title>",
    "markup as elements in a description": "<title>A</title><description><p>x</p></description>",
    "two authors": "<title>A</title><author>a@example.org</author><dc:creator>B</dc:creator>",
    "a date of another element": "<title>A</title><dc:date>2024-03-05T08:30:00Z</dc:date>",
    "a podcast summary": "<title>A</title><itunes:summary>S</itunes:summary>",
    "an Atom link": '<title>A</title><atom:link href="https://example.org/x"/>',
    "a two-digit year": "<title>A</title><pubDate>Tue, 05 Mar 24 08:30:00 GMT</pubDate>",
    "a date that does not exist": "<title>A</title><pubDate>Sat, 31 Feb 2024 08:30:00 GMT</pubDate>",
    "an hour 24": "<title>A</title><pubDate>Tue, 05 Mar 2024 24:00:00 GMT</pubDate>",
    "a made-up weekday": "<title>A</title><pubDate>Xyz, 05 Mar 2024 08:30:00 GMT</pubDate>",
    "a zone by name it does not know": "<title>A</title><pubDate>Tue, 05 Mar 2024 08:30:00 CET</pubDate>",
    "media:content holding a description": (
        '<title>A</title><media:content url="u"><media:description>d</media:description>'
        "</media:content>"
    ),
}


@pytest.mark.parametrize("item", DECLINED.values(), ids=DECLINED.keys())
def test_anything_else_goes_on_to_the_fast_path(item: str) -> None:
    body = rss("<title>plain</title>", item)
    tree, _ = both_paths(body)
    assert tree is None
    assert parse_feed(body, {}, URL).parser in ("fast", "feedparser")


@pytest.mark.parametrize(
    "body",
    [
        rss("<title>A</title>").replace(b"</channel>", b"</channel><item><title>B</title></item>"),
        b'<?xml version="1.0"?><rss version="2.0"><item><title>A</title></item></rss>',
        b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title></feed>',
    ],
    ids=["an item outside the channel", "no channel", "Atom"],
)
def test_documents_it_leaves_alone(body: bytes) -> None:
    tree, _ = both_paths(body)
    assert tree is None


def test_xml_base_leaves_a_plain_feed_to_feedparser() -> None:
    """Only feedparser resolves xml:base: a plain RSS 2.0 document with one skips both
    fast paths, and its relative link is resolved against the base it names."""
    item = "<title>A</title><link>a.html</link>"
    body = rss(item).replace(b"<item>", b'<item xml:base="https://example.org/b/">')
    assert parse_feed(rss(item), {}, URL).parser == "tree"
    feed = parse_feed(body, {}, URL)
    assert feed.parser == "feedparser"
    assert feed.entries[0].link == "https://example.org/b/a.html"


def test_dates_agree_with_both_parsers() -> None:
    """RFC 822 dates in every form it reads, and near misses it must decline."""
    rng = random.Random(7)
    items = []
    for n in range(400):
        day = rng.choice(["1", "05", "9", "28", "29", "30", "31"])
        month = rng.choice(["Jan", "Feb", "Mar", "Jun", "Dec"])
        year = rng.choice(["2024", "2023", "1999", "9999"])
        clock = rng.choice(["00:00", "23:59", "08:30:00", "08:30:59"])
        zone = rng.choice(
            ["GMT", "UT", "UTC", "Z", "EST", "EDT", "CST", "MDT", "PST", "+0000", "-0000",
             "+0530", "-0800", "+1400", "-1200"]
        )  # fmt: skip
        weekday = rng.choice(["", "Mon, ", "Sun, "])
        items.append(
            f"<title>{n}</title><pubDate>{weekday}{day} {month} {year} {clock} {zone}</pubDate>"
        )
    read = 0
    for item in items:
        body = rss(item)
        tree, fast = both_paths(body)
        if tree is None:
            continue  # 31 February and the like: left to the parsers, as the test above shows
        read += 1
        reference = parse_feed_reference(body, {}, URL)
        assert tree == fast, item
        assert tree.entries[0].published == reference.entries[0].published, item
    assert read > 300


def test_agrees_with_the_fast_path_on_every_corpus_feed_it_reads(corpus_dir: Path) -> None:
    read = 0
    for path in sorted(corpus_dir.glob("*")):
        if path.name == "INDEX.tsv":
            continue
        try:
            if parse_feed(path.read_bytes(), {}, URL).parser != "tree":
                continue
        except ParseError:
            continue
        read += 1
        tree, fast = both_paths(path.read_bytes())
        assert tree == fast, path.name
    assert read >= 15  # the guard: the comparison above is not vacuous
