from __future__ import annotations

import codecs
import re
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from feedbot.errors import ParseError
from feedbot.poll.feeddata import (
    SUMMARY_MAX_CHARS,
    EntryData,
    FeedData,
    absolute_link,
    is_plain_absolute,
)
from feedbot.poll.parse import _decode, _strict_root, parse_feed, parse_feed_reference
from tests.loopback import LoopbackServer, Request, Response

FEEDS = Path(__file__).parent / "data" / "feeds"
PARSERS = [parse_feed, parse_feed_reference]


def load(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def fields(feed: FeedData) -> list[str]:
    """Every text field of a parsed feed, for leak checks."""
    out = [feed.title, feed.link or ""]
    for e in feed.entries:
        out += [e.key, e.guid or "", e.link or "", e.title, e.summary, e.content, *e.authors]
    return out


@pytest.mark.parametrize("parse", PARSERS)
def test_rss_fixture(parse: object) -> None:
    feed = parse(load("market-notes.rss"), {}, "https://example.org/feeds/notes.xml")  # type: ignore[operator]
    assert (feed.title, feed.link, feed.language) == (
        "Market notes",
        "https://example.org/notes/",
        "fr",
    )
    assert (feed.ttl_minutes, feed.update_period, feed.update_frequency) == (45, "hourly", "2")
    first, second, third = feed.entries
    assert first.key == first.guid == "note-0001"  # isPermaLink="false": the guid is not a link
    assert first.link == "https://example.org/notes/cloud-revenue"
    assert first.title == "Cloud revenue & margins: a closer look"
    assert first.published == first.updated == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    assert (first.authors, first.categories) == (("Desk A",), ("cloud", "earnings"))
    assert "<script" not in first.content
    assert "alert" not in first.content
    assert 'href="https://example.org/notes/cloud"' in first.content
    assert "https://example.org/feeds/charts/q1.png" in first.content
    assert second.link == second.key == "https://example.org/notes/logistics-hubs"
    assert third.guid is None
    assert third.link is None
    assert third.key.startswith("sha256:")
    assert len(third.key) == len("sha256:") + 64


@pytest.mark.parametrize("parse", PARSERS)
def test_atom_fixture_with_xml_base(parse: object) -> None:
    feed = parse(load("team-blog.atom"), {}, "https://blog.example.net/feeds/team.atom")  # type: ignore[operator]
    assert (feed.title, feed.link, feed.language) == (
        "Team blog",
        "https://blog.example.net/team/",
        "en",
    )
    (entry,) = feed.entries
    assert entry.title == "Shipping the new index"
    assert entry.link == "https://blog.example.net/team/posts/new-index"  # alternate, not enclosure
    assert entry.key == "tag:blog.example.net,2024:post-7"
    assert entry.updated == datetime(2024, 4, 2, 12, 15, 30, tzinfo=UTC)
    assert entry.summary == "We rebuilt the search index."
    assert 'href="https://blog.example.net/team/posts/details"' in entry.content


@pytest.mark.parametrize("parse", PARSERS)
def test_json_feed_fixture(parse: object) -> None:
    feed = parse(load("podcast-notes.json"), {}, "https://pod.example.com/feed.json")  # type: ignore[operator]
    assert (feed.parser, feed.title, feed.language) == ("json", "Podcast notes", "zh-CN")
    first, second = feed.entries
    assert (first.key, first.link) == ("42", "https://pod.example.com/episodes/42")
    assert first.published == datetime(2024, 2, 9, 23, 0, tzinfo=UTC)
    assert first.authors == ("Host One", "Host Two")
    assert 'href="https://pod.example.com/guests/lin"' in first.content
    assert second.key == second.link == "https://news.example.com/story"
    assert second.content == "A plain text note &lt;not markup&gt;."


@pytest.mark.parametrize("parse", PARSERS)
def test_ill_formed_feed_keeps_entries_and_warns(parse: object) -> None:
    feed = parse(load("broken-but-useful.rss"), {}, "https://example.org/feed")  # type: ignore[operator]
    assert feed.parser == "feedparser"
    assert feed.warning
    assert "not well-formed" in feed.warning
    assert [e.link for e in feed.entries] == [
        "https://example.org/first",
        "https://example.org/second?a=1&b=2",
    ]


@pytest.mark.parametrize(
    ("name", "parser"),
    [
        ("market-notes.rss", "tree"),  # plain RSS 2.0: read off the strict parse's tree
        ("team-blog.atom", "feedparser"),  # xml:base: only feedparser resolves it
        ("broken-but-useful.rss", "feedparser"),  # not well-formed
        ("podcast-notes.json", "json"),
    ],
)
def test_which_parser_runs(name: str, parser: str) -> None:
    assert parse_feed(load(name), {}, "https://example.org/feed").parser == parser


RSS_TEMPLATE = (
    '<?xml version="1.0"{decl}?>\n<rss version="2.0"><channel><title>Café ¥ “quoted”</title>'
    "<item><title>Thé vert</title><link>https://example.org/t</link></item>"
    "</channel></rss>"
)


def rss(encoding: str, *, decl: str | None = None, bom: bytes = b"") -> bytes:
    declared = f' encoding="{decl}"' if decl else ""
    return bom + RSS_TEMPLATE.format(decl=declared).encode(encoding)


ENCODINGS = {
    "utf-8, no declaration": (rss("utf-8"), {}, None),
    "utf-8 BOM": (rss("utf-8", bom=codecs.BOM_UTF8), {}, None),
    "utf-16le BOM": (rss("utf-16-le", decl="utf-16", bom=codecs.BOM_UTF16_LE), {}, None),
    "utf-16be, no BOM": (rss("utf-16-be", decl="utf-16be"), {}, None),
    "utf-32le, no BOM": (rss("utf-32-le", decl="utf-32le"), {}, None),
    "windows-1252 declared": (rss("cp1252", decl="windows-1252"), {}, None),
    "charset header wins": (
        rss("cp1252", decl="utf-8"),
        {"Content-Type": "application/rss+xml; charset=windows-1252"},
        None,
    ),
    "declared latin-1, bytes UTF-8": (rss("utf-8", decl="ISO-8859-1"), {}, "decoded as utf-8"),
    "unknown encoding name": (rss("utf-8", decl="bogus-8"), {}, "declared as bogus-8"),
}


@pytest.mark.parametrize("case", ENCODINGS, ids=list(ENCODINGS))
@pytest.mark.parametrize("parse", PARSERS)
def test_encodings(case: str, parse: object) -> None:
    body, headers, warning = ENCODINGS[case]
    feed = parse(body, headers, "https://example.org/feed")  # type: ignore[operator]
    assert feed.title == "Café ¥ “quoted”"
    assert [e.title for e in feed.entries] == ["Thé vert"]
    if warning is None:
        assert feed.warning is None
    else:
        assert feed.warning
        assert warning in feed.warning


ODD_PROLOGS = {
    "double BOM": codecs.BOM_UTF8 + rss("utf-8", bom=codecs.BOM_UTF8),
    "declaration after spaces": b"  \n" + rss("utf-8", decl="utf-8"),
    "declaration after NBSP": "\u00a0".encode() + rss("utf-8", decl="utf-8"),
    "non-ASCII in the declaration": rss("utf-8").replace(b"?>", " \u00e9t\u00e9?>".encode(), 1),
    "no declaration, BOM": rss("utf-8", bom=codecs.BOM_UTF8).replace(
        b'<?xml version="1.0"?>\n', b""
    ),
}


@pytest.mark.parametrize("case", [*ENCODINGS, *ODD_PROLOGS])
def test_parsers_get_the_decoded_text_as_utf8(case: str) -> None:
    """Whether the body is reused as it came (UTF-8) or the text is encoded again, the
    parsers read exactly the decoded text, under a UTF-8 declaration."""
    body, headers, _ = ENCODINGS[case] if case in ENCODINGS else (ODD_PROLOGS[case], {}, None)
    doc = _decode(body, headers.get("Content-Type", ""))
    assert doc.utf8 == doc.text.encode("utf-8")
    assert doc.text.lstrip("\ufeff") == doc.text
    if "<?xml" in doc.text[:50]:
        assert doc.text.startswith('<?xml version="1.0" encoding="utf-8"?>')


def test_windows_1252_byte_0x80_is_the_euro_sign() -> None:
    body = b'<?xml version="1.0" encoding="iso-8859-1"?><rss><channel><title>Prix 5 \x80</title></channel></rss>'
    assert parse_feed(body, {}, "https://example.org/feed").title == "Prix 5 €"


NOT_FEEDS = {
    "empty": (b"", "not a feed: empty document"),
    "whitespace": (b"  \n\t", "not a feed: empty document"),
    "only a comment": (b'<?xml version="1.0"?>\n<!-- nothing -->', "not a feed: empty document"),
    "plain text": (b"/etc/passwd", "not a feed: plain text"),
    "html page": (
        b"<!DOCTYPE html><html><head><title>x</title></head><body></body></html>",
        "an HTML page",
    ),
    "xhtml page": (b'<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>', "an HTML page"),
    "other xml": (
        b"<?xml version='1.0'?><invoice><total>3</total></invoice>",
        "XML with a <invoice> root",
    ),
    "broken json": (b'{"version": "https://jsonfeed.org/version/1.1", ', "invalid JSON"),
    "json, not a feed": (b'{"name": "package.json"}', "JSON without a JSON Feed version"),
    "json too deep": (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
}


@pytest.mark.parametrize("case", NOT_FEEDS, ids=list(NOT_FEEDS))
@pytest.mark.parametrize("parse", PARSERS)
def test_not_a_feed(case: str, parse: object) -> None:
    body, message = NOT_FEEDS[case]
    with pytest.raises(ParseError) as caught:
        parse(body, {}, "https://example.org/x")  # type: ignore[operator]
    assert message in caught.value.message
    assert caught.value.resource == "https://example.org/x"


def unsafe_documents(base: str, secret: Path) -> dict[str, bytes]:
    """Entity bombs and external entities/DTDs that point at the loopback server or a local file."""
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    return {
        "entity bomb": f'<!DOCTYPE rss [<!ENTITY l0 "lol">{laughs}]><rss><channel><title>&l9;</title></channel></rss>'.encode(),
        "external entity over http": f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "{base}/entity">]><rss><channel><title>&x;</title></channel></rss>'.encode(),
        "external file entity": f'<!DOCTYPE rss [<!ENTITY x SYSTEM "file://{secret}">]><rss><channel><item><title>&x;</title></item></channel></rss>'.encode(),
        "parameter entity": f'<!DOCTYPE rss [<!ENTITY % p SYSTEM "{base}/param"> %p;]><rss><channel><title>t</title></channel></rss>'.encode(),
        "comment hides nothing": f'<!-- <rss> --><!DOCTYPE rss [<!-- ] > --><!ENTITY x SYSTEM "{base}/c">]><rss><channel><title>&x;</title></channel></rss>'.encode(),
    }


@pytest.mark.parametrize("parse", PARSERS)
def test_unsafe_documents_are_refused_and_nothing_is_fetched(parse: object, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("CANARY-7f3a secret text")
    with LoopbackServer() as server:
        server.route("/entity", lambda _r: Response(200, b"FETCHED"))
        documents = unsafe_documents(server.url(""), secret)
        for name, body in documents.items():
            with pytest.raises(ParseError, match="unsafe document refused") as caught:
                parse(body, {}, "https://example.org/feed")  # type: ignore[operator]
            assert "CANARY" not in str(caught.value), name
        assert server.requests == []


@pytest.mark.parametrize("parse", PARSERS)
def test_external_dtd_is_never_loaded(parse: object) -> None:
    requests: list[Request] = []
    with LoopbackServer() as server:
        server.route("/feed.dtd", lambda r: requests.append(r) or Response(200, b'<!ENTITY t "X">'))
        body = (
            f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "{server.url("/feed.dtd")}">'
            "<rss><channel><title>plain</title><item><title>one</title></item></channel></rss>"
        ).encode()
        feed = parse(body, {}, "https://example.org/feed")  # type: ignore[operator]
        assert server.requests == []
    assert feed.title == "plain"
    assert [e.title for e in feed.entries] == ["one"]


def nested(depth: int) -> bytes:
    return (
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        + b"<a>" * depth
        + b"</a>" * depth
        + b"</channel></rss>"
    )


def test_the_strict_parse_builds_no_huge_tree() -> None:
    """ElementTree builds every element as a Python object, at any depth: a document with
    more tags than a large feed is parsed strictly by lxml, which refuses nesting deeper
    than 256, instead of costing here about 130 bytes a tag (15 MiB for this one)."""
    deep = nested(60_000)  # 120,000 tags, 420 KiB
    tracemalloc.start()
    try:
        assert _strict_root(deep) is None
        assert tracemalloc.get_traced_memory()[1] < 2 * 1024 * 1024
    finally:
        tracemalloc.stop()
    root = _strict_root(nested(300))  # as deep as lxml refuses, but few tags
    assert root is not None
    assert len(list(root.iter("a"))) == 300


def test_comments_and_instructions_never_reach_the_tree() -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><?pi x?>'
        b"<item><!-- c --><title>A</title><?pi y?><link>https://example.org/a</link></item>"
        b"</channel></rss>"
    )
    root = _strict_root(body)
    assert [child.tag for child in root.find("channel/item")] == ["title", "link"]
    feed = parse_feed(body, {}, "https://example.org/feed")
    assert (feed.parser, [e.link for e in feed.entries]) == ("tree", ["https://example.org/a"])


def test_summary_is_bounded_and_content_sanitised() -> None:
    paragraph = "<p>" + "word " * 200 + "</p>"
    body = (
        '<rss version="2.0"><channel><title>t</title><item><title>long</title>'
        f"<description><![CDATA[{paragraph * 20}<script>x()</script>]]></description>"
        "</item></channel></rss>"
    ).encode()
    (entry,) = parse_feed(body, {}, "https://example.org/feed").entries
    assert len(entry.summary) <= SUMMARY_MAX_CHARS + 1
    assert entry.summary.endswith("…")
    assert "<script" not in entry.content


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Tue, 05 Mar 2024 09:30:00 +0100", datetime(2024, 3, 5, 8, 30, tzinfo=UTC)),
        ("Tue, 05 Mar 2024 09:30:00 EST", datetime(2024, 3, 5, 14, 30, tzinfo=UTC)),
        ("2024-03-05T09:30:00-05:00", datetime(2024, 3, 5, 14, 30, tzinfo=UTC)),
        ("05 Mar 2024 09:30:00 GMT", datetime(2024, 3, 5, 9, 30, tzinfo=UTC)),
        ("not a date at all", None),
    ],
)
@pytest.mark.parametrize("parse", PARSERS)
def test_dates_are_aware_utc(date: str, expected: datetime | None, parse: object) -> None:
    body = (
        '<rss version="2.0"><channel><title>t</title><item><title>d</title>'
        f"<link>https://example.org/d</link><pubDate>{date}</pubDate></item></channel></rss>"
    ).encode()
    (entry,) = parse(body, {}, "https://example.org/feed").entries  # type: ignore[operator]
    assert isinstance(entry, EntryData)
    assert entry.published == expected
    if expected is not None:
        assert entry.published is not None
        assert entry.published.tzinfo is UTC


BASES = ("http://base.example/dir/feed.xml", "https://base.example/feed")
TRICKY_LINKS = (
    "http://x", "http://x/", "https://x/a?b=1#c", "http://x//a", "http://x/./a/../b",
    "http://x?a", "http://x#a", "http://user:pw@x:8080/", "http://x/%zz", "http://x/a?b?c#d#e",
    "http://x/a b",
    # urljoin rewrites these, so they take the slow path
    "http://x/a;", "http://x/a;p", "http://x/a?", "http://x/a?#", "http://x/a#", "http:///a",
    "http://[::1]/a", "http://[::1/a", "HTTP://x/a", "http://x/é", "http://x/a\tb", "/a", "a/b",
    "//x/a", "ftp://x/a", "javascript:alert(1)",
)  # fmt: skip


def reference_link(value: str, base: str) -> str | None:
    """What ``absolute_link`` must return: urljoin, then only http(s)."""
    try:
        resolved = urljoin(base, value.strip())
        return resolved if urlsplit(resolved).scheme.lower() in ("http", "https") else None
    except ValueError:
        return None


@pytest.mark.parametrize("value", TRICKY_LINKS)
def test_absolute_link_fast_path_agrees_with_urljoin(value: str) -> None:
    for base in BASES:
        assert absolute_link(value, base) == reference_link(value, base)
    # the fast path takes plain absolute links only, never one urljoin would change
    if is_plain_absolute(value):
        assert all(urljoin(base, value) == value for base in BASES)


def test_absolute_link_fast_path_agrees_with_urljoin_on_the_corpus(corpus_dir: Path) -> None:
    links = {
        m.decode("ascii", "replace")
        for path in corpus_dir.iterdir()
        if path.is_file()
        for m in re.findall(rb"""https?://[^\s"'<>]+""", path.read_bytes())
    }
    plain = [link for link in links if is_plain_absolute(link)]
    assert len(plain) > 1000  # the corpus holds thousands of links; most are plain
    for link in links:
        for base in BASES:
            assert absolute_link(link, base) == reference_link(link, base), link
