"""Rendering Atom, RSS and JSON Feed from stored articles, and writing them atomically."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from feedbot.errors import ConfigError, PublishError
from feedbot.models import Origin, StoredArticle
from feedbot.publish.atom import render_atom
from feedbot.publish.files import write_if_changed
from feedbot.publish.jsonfeed import render_json
from feedbot.publish.rss import render_rss
from feedbot.publish.spec import EMPTY_FEED_UPDATED, FeedSpec
from feedbot.publish.validate import validate_atom

A = "{http://www.w3.org/2005/Atom}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
BASE = "http://127.0.0.1:8080"


def make_spec(**overrides: object) -> FeedSpec:
    values: dict[str, object] = {
        "name": "alibaba",
        "title": "Alibaba watch",
        "subtitle": "Alibaba and the Chinese tech industry",
        "id": "tag:feedbot.localhost,2026:feed/alibaba",
        "self_url": f"{BASE}/alibaba.atom",
        "site_url": f"{BASE}/",
        "author_name": "feedbot desk",
        "author_uri": None,
        "language": None,
        "formats": ("atom", "rss", "json"),
    }
    values.update(overrides)
    return FeedSpec(**values)  # type: ignore[arg-type]


def _when(day: int, hour: int = 8) -> datetime:
    return datetime(2026, 3, day, hour, 30, tzinfo=UTC)


def make_articles() -> list[StoredArticle]:
    """Three articles, newest first: Chinese (aggregated, with related reports), French,
    English (no link, no author)."""
    return [
        StoredArticle(
            id="tag:feedbot.localhost,2026:article/cloud-zh",
            title="阿里云发布新一代大模型",
            summary="阿里云周二发布了新模型 & 工具。",
            content="<p>阿里云 &amp; 合作伙伴：价格 &lt; 去年</p>",
            link="https://news.example.cn/cloud/42",
            authors=("王芳",),
            language="zh",
            categories=("云计算", "AI"),
            published=_when(4),
            updated=_when(5),
            origin=Origin("Example CN tech", "https://news.example.cn/feed.xml"),
            content_hash="h1",
            related=(
                Origin(
                    "Paris tech daily", "https://tech.example.fr/rss", "https://tech.example.fr/a/9"
                ),
                Origin("Same link", "https://dup.example/rss", "https://news.example.cn/cloud/42"),
            ),
        ),
        StoredArticle(
            id="tag:feedbot.localhost,2026:article/resultats-fr",
            title="Alibaba : les résultats du trimestre dépassent les attentes",
            summary="Le groupe annonce une hausse de 7 % de son chiffre d'affaires.",
            content="<p>Le chiffre d&#39;affaires progresse de 7&nbsp;% ; la marge &lt; 20 %.</p>",
            link="https://finance.example.fr/alibaba-resultats",
            authors=("Claire Dubois", "Marc Lefèvre"),
            language="fr",
            categories=("finance",),
            published=_when(3),
            updated=_when(3),
            origin=None,
            content_hash="h2",
        ),
        StoredArticle(
            id="tag:feedbot.localhost,2026:article/memo-en",
            title="Notes from the e-commerce briefing\x0b",
            summary="Logistics <and> payments were discussed.",
            content="",
            link=None,
            authors=(),
            language="en",
            categories=(),
            published=_when(1),
            updated=_when(2),
            origin=None,
            content_hash="h3",
        ),
    ]


@pytest.fixture
def atom_bytes() -> bytes:
    return render_atom(make_spec(), make_articles())


def test_atom_is_valid_against_the_schema(shared_dir: Path, atom_bytes: bytes) -> None:
    assert validate_atom(atom_bytes, shared_dir / "standards" / "atom.rng") == []


def test_empty_atom_feed_is_valid_and_dated_from_input(shared_dir: Path) -> None:
    data = render_atom(make_spec(), [])
    assert validate_atom(data, shared_dir / "standards" / "atom.rng") == []
    root = etree.fromstring(data)
    assert root.findtext(f"{A}updated") == EMPTY_FEED_UPDATED.isoformat()


def test_atom_reads_back_with_feedparser(atom_bytes: bytes) -> None:
    parsed = feedparser.parse(atom_bytes)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    feed = parsed.feed
    assert feed.title == "Alibaba watch"
    assert feed.id == "tag:feedbot.localhost,2026:feed/alibaba"
    assert feed.updated == "2026-03-05T08:30:00+00:00"
    assert feed.generator == "feedbot"
    assert feed.author == "feedbot desk"
    assert {(link.rel, link.href) for link in feed.links} >= {
        ("self", f"{BASE}/alibaba.atom"),
        ("alternate", f"{BASE}/"),
    }

    articles = make_articles()
    entries = parsed.entries
    assert [e.id for e in entries] == [a.id for a in articles]
    assert [e.title for e in entries] == [
        articles[0].title,
        articles[1].title,
        "Notes from the e-commerce briefing",
    ]

    assert feed.language == "zh"
    assert [e.title_detail.language for e in entries] == ["zh", "fr", "en"]

    zh, fr, en = entries
    assert zh.link == "https://news.example.cn/cloud/42"
    related = [link.href for link in zh.links if link.rel == "related"]
    assert related == ["https://tech.example.fr/a/9"]  # the copy of the entry's own link is dropped
    assert zh.content[0].type == "text/html"
    assert "合作伙伴" in zh.content[0].value
    assert [t.term for t in zh.tags] == ["云计算", "AI"]
    assert zh.author == "王芳"
    assert zh.source.title == "Example CN tech"
    assert zh.source.id == "https://news.example.cn/feed.xml"
    assert zh.published == "2026-03-04T08:30:00+00:00"
    assert [a.name for a in fr.authors] == ["Claire Dubois", "Marc Lefèvre"]
    assert fr.summary == articles[1].summary
    assert en.author == "feedbot desk"  # the feed's author stands in
    assert "links" not in en or not [link for link in en.links if link.rel == "alternate"]
    assert en.content[0].value == "Logistics &lt;and&gt; payments were discussed."


def test_atom_keeps_html_content_exact_and_languages(atom_bytes: bytes) -> None:
    root = etree.fromstring(atom_bytes)
    assert root.get(XML_LANG) == "zh"  # most common article language; ties go to the newest
    entries = root.findall(f"{A}entry")
    content = entries[1].find(f"{A}content")
    assert content is not None
    assert content.get("type") == "html"
    assert content.text == make_articles()[1].content
    assert entries[1].find(f"{A}summary").get("type") is None
    assert [e.get(XML_LANG) for e in entries] == [None, "fr", "en"]
    source = entries[0].find(f"{A}source")
    assert source is not None
    assert [etree.QName(c).localname for c in source] == ["id", "title", "link", "updated"]
    for entry in entries:
        for name in ("id", "title", "updated", "author"):
            assert entry.find(f"{A}{name}") is not None


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "zh"),
        ({"language": "fr"}, "fr"),
        ({"language": "en-GB"}, "en-GB"),
    ],
)
def test_feed_language(overrides: dict[str, object], expected: str) -> None:
    root = etree.fromstring(render_atom(make_spec(**overrides), make_articles()))
    assert root.get(XML_LANG) == expected


def test_atom_is_byte_identical_for_the_same_input() -> None:
    first = render_atom(make_spec(), make_articles())
    second = render_atom(make_spec(), make_articles())
    assert first == second
    assert b"python-feedgen" not in first


def test_atom_stylesheet_and_hub() -> None:
    data = render_atom(make_spec(hub_url="http://127.0.0.1:9/hub"), make_articles())
    assert b'<?xml-stylesheet type="text/xsl" href="/feed.xsl"?>' in data
    root = etree.fromstring(data)
    rels = {link.get("rel"): link.get("href") for link in root.findall(f"{A}link")}
    assert rels["hub"] == "http://127.0.0.1:9/hub"
    assert rels["self"] == f"{BASE}/alibaba.atom"
    bare = render_atom(make_spec(stylesheet_href=None), make_articles())
    assert b"xml-stylesheet" not in bare


def test_rss_reads_back_with_feedparser() -> None:
    data = render_rss(make_spec(hub_url="http://127.0.0.1:9/hub"), make_articles())
    assert data == render_rss(make_spec(hub_url="http://127.0.0.1:9/hub"), make_articles())
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    assert parsed.feed.title == "Alibaba watch"
    assert parsed.feed.language == "zh"
    links = {(link.rel, link.href) for link in parsed.feed.links}
    assert links >= {("self", f"{BASE}/alibaba.rss"), ("hub", "http://127.0.0.1:9/hub")}
    zh, fr, en = parsed.entries
    assert zh.id == "tag:feedbot.localhost,2026:article/cloud-zh"
    assert zh.guidislink is False
    assert zh.link == "https://news.example.cn/cloud/42"
    assert "合作伙伴" in zh.content[0].value
    assert zh.summary == "阿里云周二发布了新模型 &amp; 工具。"
    assert zh.author == "王芳"
    assert [t.term for t in zh.tags] == ["云计算", "AI"]
    assert zh.source.title == "Example CN tech"
    assert zh.published_parsed[:5] == (2026, 3, 4, 8, 30)
    assert fr.title.startswith("Alibaba : les résultats")
    assert en.summary == "Logistics &lt;and&gt; payments were discussed."
    root = etree.fromstring(data)
    guid = root.find("channel/item/guid")
    assert guid is not None
    assert guid.get("isPermaLink") == "false"
    assert root.findtext("channel/lastBuildDate") == "Thu, 05 Mar 2026 08:30:00 +0000"


def test_json_feed_reads_back() -> None:
    data = render_json(make_spec(hub_url="http://127.0.0.1:9/hub"), make_articles())
    assert data == render_json(make_spec(hub_url="http://127.0.0.1:9/hub"), make_articles())
    feed = json.loads(data)
    assert data.decode() == json.dumps(feed, ensure_ascii=False, sort_keys=True, indent=2) + "\n"
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["feed_url"] == f"{BASE}/alibaba.json"
    assert feed["home_page_url"] == f"{BASE}/"
    assert feed["language"] == "zh"
    assert feed["hubs"] == [{"type": "WebSub", "url": "http://127.0.0.1:9/hub"}]
    zh, fr, en = feed["items"]
    assert zh["id"] == "tag:feedbot.localhost,2026:article/cloud-zh"
    assert zh["content_html"] == make_articles()[0].content
    assert zh["tags"] == ["云计算", "AI"]
    assert zh["date_published"] == "2026-03-04T08:30:00Z"
    assert zh["_feedbot"]["source"]["feed_url"] == "https://news.example.cn/feed.xml"
    assert [r["title"] for r in zh["_feedbot"]["related"]] == ["Paris tech daily", "Same link"]
    assert fr["authors"] == [{"name": "Claire Dubois"}, {"name": "Marc Lefèvre"}]
    assert fr["language"] == "fr"
    assert "url" not in en
    assert en["content_text"] == "Logistics <and> payments were discussed."


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"name": "Alibaba Feed"}, "name:"),
        ({"id": "feed/alibaba"}, "id:"),
        ({"self_url": "/alibaba.atom"}, "self_url:"),
        ({"self_url": f"{BASE}/alibaba.xml"}, "self_url:"),
        ({"site_url": "javascript:alert(1)"}, "site_url:"),
        ({"language": "zh_CN"}, "language:"),
        ({"formats": ("atom", "html")}, "formats:"),
        ({"formats": ()}, "formats:"),
        ({"max_entries": 0}, "max_entries:"),
        ({"title": "  "}, "title:"),
    ],
)
def test_feed_spec_rejects(overrides: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_spec(**overrides)
    assert any(p.startswith(problem) for p in info.value.problems)


def test_feed_spec_urls() -> None:
    spec = make_spec()
    assert spec.url_for("rss") == f"{BASE}/alibaba.rss"
    assert spec.url_for("json") == f"{BASE}/alibaba.json"
    assert spec.filename("atom") == "alibaba.atom"


def test_write_if_changed(tmp_path: Path) -> None:
    path = tmp_path / "feeds" / "alibaba.atom"
    data = render_atom(make_spec(), make_articles())
    assert write_if_changed(path, data) is True
    before = path.stat()
    assert write_if_changed(path, render_atom(make_spec(), make_articles())) is False
    after = path.stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert path.read_bytes() == data
    assert after.st_mode & 0o777 == 0o644

    changed = render_atom(make_spec(title="Alibaba watch, renamed"), make_articles())
    assert write_if_changed(path, changed) is True
    assert path.read_bytes() == changed
    assert path.stat().st_ino != before.st_ino  # replaced, not rewritten in place
    assert sorted(p.name for p in path.parent.iterdir()) == ["alibaba.atom"]


def test_write_if_changed_reports_the_path(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "child").write_text("x")
    with pytest.raises(PublishError) as info:
        write_if_changed(target, b"data")
    assert info.value.resource == str(target)
    assert sorted(os.listdir(tmp_path)) == ["taken"]  # no temporary file left behind
