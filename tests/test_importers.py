from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedbot.errors import InputError
from feedbot.importers import load_articles
from feedbot.importers.common import detect_language, slugify
from feedbot.importers.listing import _is_heading
from feedbot.models import ArticleData

DATA = Path(__file__).parent / "data" / "import"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
BLOCK = re.compile(r"<(p|h3|figcaption)>(.*?)</\1>", re.DOTALL)


def blocks(article: ArticleData) -> list[tuple[str, str]]:
    return BLOCK.findall(article.content)


# --- the seed listing -------------------------------------------------------------

SEED_TITLES = [
    "Alibaba Cloud et Salesforce lancent Social Commerce en Chine",
    "Alibaba collabore avec IBM autour de la sécurité",
    "Alibaba passe au serverless dans ses offres IA",
    "Antitrust : Pékin sanctionne lourdement Alibaba",
    "Jack Ma refait surface",
    "L'étrange silence de Jack Ma",
    "La Chine renforce sa législation anti-trust",
    "Les JO diffusés par le Cloud",
    "Pékin se lance à l\u2019assaut de ses géants de la tech",
]
SEED_HEADINGS = [
    [],
    [],
    [],
    ["Amende salée"],
    ["Le numérique dans le viseur de Pékin"],
    ["Détenu pour interrogation ?"],
    ["Alibaba, bête noire de Pékin"],
    [],
    ["Serrage de vis", "Des entreprises tentaculaires", "Tolérance zéro"],
]


def seed_line_counts(seed_path: Path) -> list[int]:
    """Non-empty lines under each "•" line of the raw seed: one block each."""
    counts: list[int] = []
    for line in seed_path.read_text(encoding="utf-8").splitlines()[1:]:
        if line.strip().startswith("•"):
            counts.append(0)
        elif line.strip() and counts:
            counts[-1] += 1
    return counts


def test_seed_titles_in_file_order(seed_path: Path) -> None:
    articles = load_articles(seed_path)
    assert [a.title for a in articles] == SEED_TITLES


def test_seed_has_no_mojibake_left(seed_path: Path) -> None:
    for article in load_articles(seed_path):
        for text in (article.title, article.summary, article.content):
            for bad in ("Ă", "Ú", "Î", "Ɠ", "â€", "\xa0"):
                assert bad not in text, (article.title, bad)


def test_seed_keeps_every_paragraph_and_heading(seed_path: Path) -> None:
    articles = load_articles(seed_path)
    counts = seed_line_counts(seed_path)
    assert counts == [1, 1, 1, 6, 6, 6, 6, 1, 15]
    for article, count, headings in zip(articles, counts, SEED_HEADINGS, strict=True):
        found = blocks(article)
        assert len(found) == count, article.title
        assert [text for tag, text in found if tag == "h3"] == headings


def test_seed_caption_opens_the_content_and_is_not_the_summary(seed_path: Path) -> None:
    last = load_articles(seed_path)[-1]
    assert last.content.startswith(
        "<figure><figcaption>Le siège d'Alibaba</figcaption></figure>\n<p>Réglementation"
    )
    assert last.summary.startswith("Réglementation sur la protection des données")


def test_seed_summary_is_the_first_paragraph(seed_path: Path) -> None:
    articles = load_articles(seed_path)
    assert articles[2].summary == (
        "Alibaba Cloud vient de lancer une version entièrement serverless de sa principale "
        "plateforme d’IA générative, PAI-EAS tandis que les services de données adjacents "
        "sont renforcés."
    )
    for article in articles:
        assert blocks(article)[0 if "figure" not in article.content else 1] == (
            "p",
            article.summary,
        )


def test_seed_metadata_and_stable_dates(seed_path: Path) -> None:
    articles = load_articles(seed_path)
    assert [a.published for a in articles] == [EPOCH + timedelta(minutes=8 - i) for i in range(9)]
    assert all(a.updated == a.published for a in articles)
    assert {a.language for a in articles} == {"fr"}
    assert {a.categories for a in articles} == {("Alibaba",)}
    assert len({a.id for a in articles}) == 9
    assert articles[8].id == (
        "tag:feedbot.localhost,2026:alibaba/pekin-se-lance-a-l-assaut-de-ses-geants-de-la-tech"
    )


def test_seed_loads_identically_twice(seed_path: Path) -> None:
    assert load_articles(seed_path) == load_articles(seed_path)


@pytest.mark.parametrize(
    ("line", "heading"),
    [
        ("Amende salée", True),
        ("Détenu pour interrogation ?", True),
        ("Pourquoi maintenant !", True),
        ("x" * 80, True),
        ("x" * 81, False),
        ("Une phrase courte.", False),
        ("Une liste :", False),
        ("« Une citation »", False),
        ("Où est donc passé Jack Ma ? La question n'agite pas les réseaux ?", False),
        ("Q" * 50 + "?", False),
    ],
)
def test_heading_rule(line: str, heading: bool) -> None:
    assert _is_heading(line) is heading


# --- our own fixtures ---------------------------------------------------------------


def test_listing_fixture() -> None:
    articles = load_articles(DATA / "listing-en.txt", authority="example.org")
    assert [a.title for a in articles] == [
        "Hangzhou data centre opens a second hall",
        "Photo of the week",
        "What changes for small merchants?",
        "阿里云发布新的数据中心",
    ]
    first, photo, merchants, chinese = articles
    assert first.id == "tag:example.org,2026:cloud-digest/hangzhou-data-centre-opens-a-second-hall"
    assert first.summary.startswith("The operator added capacity")
    assert blocks(photo)[0] == ("figcaption", "A rooftop in Hangzhou")
    assert photo.summary == "The picture shows the new cooling towers at dusk."
    assert [tag for tag, _ in blocks(merchants)] == ["p", "h3", "p", "h3", "p"]
    assert chinese.language == "zh"
    assert re.fullmatch(r"tag:example\.org,2026:cloud-digest/t-[0-9a-f]{12}", chinese.id)
    assert {a.language for a in articles[:3]} == {"en"}
    assert [a.published for a in articles] == [EPOCH + timedelta(minutes=m) for m in (3, 2, 1, 0)]


def test_markdown_folder() -> None:
    articles = load_articles(DATA / "notes")
    assert [a.title for a in articles] == [
        "Deuxième note : l’été à Pékin",  # notes/2024/second-note.md sorts first
        "A note about cloud pricing",
        "Title from the first heading",
    ]
    second, first, untitled = articles
    assert second.id == "urn:uuid:0b7c2f1e-9f3c-4c55-a1a5-3d7e5f0a9c11"
    assert second.summary == "Un résumé écrit à la main."
    assert second.authors == ("Ana Autrice", "Bo Auteur")
    assert second.categories == ("Tech", "Chine")
    assert second.published == second.updated == datetime(2024, 7, 1, tzinfo=UTC)
    assert second.language == "fr"

    assert first.id == "tag:feedbot.localhost,2026:notes/a-note-about-cloud-pricing"
    assert first.published == first.updated == datetime(2024, 3, 5, 7, 30, tzinfo=UTC)
    assert first.link == "https://example.org/notes/cloud-pricing"
    assert first.authors == ("Jane Writer",)
    assert first.categories == ("cloud", "pricing")
    assert first.language == "en"
    assert first.summary == "Prices for storage went down this spring, and egress is next."
    assert "<h2>Details</h2>" in first.content
    assert "<script" not in first.content
    assert 'href="javascript' not in first.content
    assert 'href="https://example.org/ok" rel="noopener noreferrer nofollow"' in first.content

    assert untitled.summary == "Body paragraph without front matter."
    assert untitled.content == "<p>Body paragraph without front matter.</p>"
    assert untitled.published == EPOCH  # third of three: 2000-01-01 + (3 - 3) minutes


def test_markdown_file_alone_keeps_its_id() -> None:
    (alone,) = load_articles(DATA / "notes" / "first-note.md")
    assert alone == load_articles(DATA / "notes")[1]


def test_jsonl_fixture() -> None:
    first, second, third = load_articles(DATA / "articles.jsonl")
    assert first.id == "https://example.org/a/1"
    assert first.published == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert first.updated == datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
    assert first.categories == ("cloud", "ai")
    assert first.authors == ("A. Person",)
    assert first.content == (
        '<p>Body with <a href="https://example.org/rel" rel="noopener noreferrer nofollow">'
        'a relative link</a>.</p><img src="https://example.org/a/x">'
    )
    assert second.id == "tag:feedbot.localhost,2026:articles/second-record-plain-text"
    assert second.authors == ("B. Person",)
    assert second.content == (
        "<p>First paragraph of plain text.</p>\n<p>Second paragraph &amp; more.</p>"
    )
    assert second.summary == "First paragraph of plain text."
    assert (second.published, third.published) == (EPOCH + timedelta(minutes=1), EPOCH)
    assert third.language == "zh"


@pytest.mark.parametrize(
    ("name", "text", "titles"),
    [
        ("notes.txt", "---\ntitle: Front matter wins\n---\nBody.\n", ["Front matter wins"]),
        ("records", '{"title": "Sniffed as JSON Lines"}\n', ["Sniffed as JSON Lines"]),
        ("list.md.txt", "Name\n• Sniffed as a listing\nSummary.\n", ["Sniffed as a listing"]),
        ("crlf.txt", "\ufeffName\r\n\r\n• CRLF and BOM\r\nSummary.\r\n", ["CRLF and BOM"]),
    ],
)
def test_format_detection(tmp_path: Path, name: str, text: str, titles: list[str]) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    assert [a.title for a in load_articles(path)] == titles


# --- bad input: one exact message each; nothing is returned -------------------------

BAD_INPUT = [
    ("empty.txt", "", "{p}: file is empty"),
    ("blank.jsonl", "\n  \n", "{p}: file is empty"),
    ("latin1.txt", b"Name\n\xe9t\xe9\n", "{p}:2: not UTF-8 text"),
    (
        "prose.txt",
        "Just some prose.\n",
        "{p}: unknown format: not a listing (no • line), Markdown (.md) or JSON Lines (.jsonl)",
    ),
    (
        "yaml.md",
        "---\nid: urn:x:1\ntitle: a: b\n---\nBody\n",
        "{p}:3: front matter is not valid YAML: mapping values are not allowed in this context",
    ),
    ("open.md", "---\ntitle: x\nBody\n", "{p}:1: front matter has no closing '---' line"),
    ("list.md", "---\n- a\n---\nBody\n", "{p}:2: front matter is not a mapping"),
    ("notitle.md", "---\ndate: 2024-01-01\n---\nBody\n", "{p}:1: missing title"),
    (
        "date.md",
        "---\ntitle: T\ndate: yesterday\n---\n",
        "{p}:3: date is not an RFC 3339 date: 'yesterday'",
    ),
    (
        "link.md",
        "---\ntitle: T\n\nlink: ftp://e.org/x\n---\n",
        "{p}:4: link is not an http(s) URL: 'ftp://e.org/x'",
    ),
    (
        "tags.md",
        "---\ntitle: T\ntags: {a: 1}\n---\n",
        "{p}:3: tags must be a string or a list of strings",
    ),
    ("json.jsonl", '{"title": "a"}\n{"title": \n', "{p}:2: not valid JSON: Expecting value"),
    ("array.jsonl", "[1, 2]\n", "{p}:1: not a JSON object"),
    ("title.jsonl", '{"title": "a"}\n\n{"summary": "s"}\n', "{p}:3: missing title"),
    ("blanktitle.jsonl", '{"title": " \\u00a0 "}\n', "{p}:1: missing title"),
    (
        "published.jsonl",
        '{"title": "a", "published": "2024-13-01"}\n',
        "{p}:1: published is not an RFC 3339 date: '2024-13-01'",
    ),
    (
        "authors.jsonl",
        '{"title": "a", "authors": 5}\n',
        "{p}:1: authors must be a string or a list of strings",
    ),
    ("title-type.jsonl", '{"title": ["a"]}\n', "{p}:1: title must be a string"),
    ("id.jsonl", '{"title": "a", "id": "abc"}\n', "{p}:1: id is not an absolute URI: 'abc'"),
    (
        "dup.jsonl",
        '{"title": "a", "id": "urn:x:1"}\n{"title": "b", "id": "urn:x:1"}\n',
        "{p}:2: duplicate id 'urn:x:1' (first at {p}:1)",
    ),
    ("nameless.txt", "• Title\nSummary.\n", "{p}:1: the first line must be the listing's name"),
    ("intro.txt", "Name\nAn intro.\n• Title\n", "{p}:2: text before the first • line"),
    ("notext.txt", "Name\n\n•  \xa0\nSummary.\n", "{p}:3: article has an empty title"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_INPUT)
def test_bad_input(tmp_path: Path, name: str, content: str | bytes, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_articles(path)
    assert str(caught.value) == message.format(p=path)


def test_missing_file_and_empty_folder(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    with pytest.raises(InputError) as caught:
        load_articles(missing)
    assert str(caught.value) == f"{missing}: cannot read: No such file or directory"
    assert caught.value.line is None
    with pytest.raises(InputError) as caught:
        load_articles(tmp_path)
    assert str(caught.value) == f"{tmp_path}: no *.md files in this folder"


def test_one_bad_file_fails_the_whole_folder(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("---\ntitle: Good\n---\nText.\n", encoding="utf-8")
    bad = tmp_path / "sub" / "b.md"
    bad.parent.mkdir()
    bad.write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_articles(tmp_path)
    assert caught.value.resource == f"{bad}:3"
    assert str(caught.value).startswith(f"{bad}:3: front matter is not valid YAML: ")


def test_duplicate_titles_get_numbered_ids(tmp_path: Path) -> None:
    path = tmp_path / "dups.txt"
    path.write_text("Name\n• Same\nOne.\n• Same\nTwo.\n", encoding="utf-8")
    assert [a.id for a in load_articles(path)] == [
        "tag:feedbot.localhost,2026:name/same",
        "tag:feedbot.localhost,2026:name/same-2",
    ]


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Pékin se lance à l’assaut", "pekin-se-lance-a-l-assaut"),
        ("Le cœur de Łódź", "le-coeur-de-lodz"),
        ("Straße", "strasse"),
        ("Alibaba 阿里 Cloud", "alibaba-cloud"),
        ("  --Hello, World!--  ", "hello-world"),
        ("阿里巴巴", "t-47c1e53c427a"),  # sha256 of the NFC title, pinned
    ],
)
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Le gouvernement chinois a annoncé une amende pour les géants de la tech.", "fr"),
        ("The company said that it will open a new data centre in the city.", "en"),
        ("阿里巴巴今天发布了季度财报。", "zh"),
        ("阿里巴巴 Cloud 发布 AI 模型", "zh"),
        ("Alibaba Cloud", None),
        ("", None),
    ],
)
def test_detect_language(text: str, language: str | None) -> None:
    assert detect_language(text) == language
