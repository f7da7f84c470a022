"""`feedbot explain` and `feedbot articles list`, through the CLI with a real config and store."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedbot.cli import main
from feedbot.relevance.explain import input_from_file, item_from_json, snippet
from feedbot.relevance.topics import MatchInput, field_text
from tests.conftest import ROOT
from tests.feedgen_util import Item, rss
from tests.loopback import LoopbackServer, Response

BOXING = """
[topics.boxing]
terms = ["Ali", "heavyweight"]
exclude = ["Ali Baba", "Muhammad Ali Jinnah"]
"""


def write_config(tmp_path: Path, db_url: str | None = None, extra: str = "") -> str:
    url = db_url or "sqlite:///state/feedbot.sqlite3"
    path = tmp_path / "config.toml"
    path.write_text(f'database_url = "{url}"\n{extra}', encoding="utf-8")
    return str(path)


def run(config: str, *argv: str) -> int:
    return main(["--config", config, *argv])


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as s:
        yield s


# --------------------------------------------------------------------- articles list
def test_seed_articles_list_shows_topics_and_terms(
    tmp_path: Path, seed_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, db_url)
    assert run(config, "import", str(seed_path)) == 0
    capsys.readouterr()
    assert run(config, "articles", "list", "--json") == 0
    rows = json_lines(capsys.readouterr().out)
    assert len(rows) == 9
    assert all("alibaba" in r["topics"] for r in rows)  # type: ignore[operator]
    assert all(r["related"] == [] and r["matched_terms"] for r in rows)
    last = rows[-1]
    assert last["title"] == "Pékin se lance à l\u2019assaut de ses géants de la tech"
    assert last["topics"] == ["alibaba", "china-tech"]
    # china-tech's own terms, not only the ones it inherits from alibaba
    assert {"Baidu", "Tencent", "Cyberspace Administration of China"} <= set(
        last["matched_terms"]  # type: ignore[arg-type]
    )
    assert rows[0]["updated"] > last["updated"]  # type: ignore[operator]

    assert run(config, "articles", "list", "--topic", "alibaba", "--limit", "3") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["updated", "topics", "reports", "terms", "title"]
    assert len(table) == 4
    assert "Alibaba Cloud et Salesforce" in table[1]

    assert run(config, "articles", "list", "--topic", "nope", "--json") == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "topic 'nope' is not configured" in captured.err


def test_articles_list_shows_other_reports_of_a_story(
    tmp_path: Path, server: LoopbackServer, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = "Alibaba Cloud lowered the price of Qwen API calls by up to 50 per cent in Asia."
    one = Item(
        "Alibaba Cloud cuts prices of its Qwen models", "https://one.example/qwen", summary=summary
    )
    two = Item(
        "Alibaba Cloud cuts prices of its Qwen models - Two",
        "https://two.example/q",
        summary=summary,
    )
    server.route("/one", lambda r: Response(200, rss([one], title="One")))
    server.route("/two", lambda r: Response(200, rss([two], title="Two")))
    upstreams = "".join(
        f'[[upstream]]\nname = "{n}"\nurl = "{server.url("/" + n)}"\n' for n in ("one", "two")
    )
    config = write_config(tmp_path, db_url, upstreams)
    for name in ("one", "two"):  # one after the other: see the report about concurrent polls
        assert run(config, "poll", "--feed", name, "--json") == 0
    capsys.readouterr()
    assert run(config, "articles", "list", "--json") == 0
    (row,) = json_lines(capsys.readouterr().out)
    related = row["related"]
    assert isinstance(related, list)
    assert len(related) == 1
    assert (row["link"], related[0]["link"], related[0]["title"]) == (one.link, two.link, "Two")
    assert row["topics"] == ["alibaba", "china-tech"]
    assert run(config, "articles", "list") == 0
    assert "  1        " in capsys.readouterr().out.splitlines()[1]  # the reports column


# --------------------------------------------------------------------------- explain
def test_explain_text_shows_term_field_position_and_exclusions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert run(config, "explain", "阿里山的茶农说，阿里巴巴在杭州开了新店") == 0
    report = capsys.readouterr().out
    assert report.splitlines()[0] == "topics: alibaba, china-tech"
    assert "alibaba     阿里巴巴  title  8-12  阿里山的茶农说,[阿里巴巴]在杭州开了新店" in report
    assert "alibaba  阿里山  title  0-3  [阿里山]的茶农说,阿里巴巴在杭州开了新店" in report
    assert not (tmp_path / "state").exists()  # explaining a text never opens the store

    assert run(config, "explain", "--json", "阿里山风景区门票") == 0
    only_exclusion = json.loads(capsys.readouterr().out)
    assert only_exclusion["topics"] == []
    assert only_exclusion["exclusions"] == [
        {"topic": "alibaba", "phrase": "阿里山", "field": "title", "start": 0, "end": 3,
         "snippet": "[阿里山]风景区门票"}
    ]  # fmt: skip

    title = "Alibaba and the Forty Thieves opens at the Opéra"
    summary = "Meanwhile Alibaba Cloud and Tencent reported quarterly results."
    assert run(config, "explain", "--json", "--title", title, "--summary", summary) == 0
    obj = json.loads(capsys.readouterr().out)
    doc = MatchInput(title=title, summary=summary)
    folded = field_text(doc, "summary")
    assert [(m["topic"], m["term"], m["field"]) for m in obj["matches"]] == [
        ("alibaba", "Alibaba Cloud", "summary"),
        ("china-tech", "Tencent", "summary"),
        ("china-tech", "Alibaba Cloud", "summary"),
    ]
    for m in obj["matches"]:
        assert folded[m["start"] : m["end"]] == m["text"]
    (fired,) = obj["exclusions"]
    assert (fired["phrase"], fired["field"], fired["start"]) == (
        "Alibaba and the Forty Thieves", "title", 0,
    )  # fmt: skip
    assert fired["snippet"].startswith("[alibaba and the forty thieves] opens at the opera")


def test_explain_uses_the_configured_topics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, extra=BOXING)
    text = "Muhammad Ali Jinnah's portrait; Ali wins the heavyweight title"
    assert run(config, "explain", "--json", text) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["topics"] == ["boxing"]
    assert [(m["term"], m["start"]) for m in obj["matches"]] == [("Ali", 32), ("heavyweight", 45)]
    assert [(x["phrase"], x["start"], x["end"]) for x in obj["exclusions"]] == [
        ("Muhammad Ali Jinnah", 0, 19)
    ]
    bad = write_config(tmp_path, extra='[topics.boxing]\nterms = ["Ali"]\nincludes = ["nope"]\n')
    assert run(bad, "explain", "Ali") == 2
    assert "topics.boxing.includes" in capsys.readouterr().err


def test_explain_file_plain_text_and_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    page = tmp_path / "page.html"
    page.write_text(
        "<!doctype html><html><head><title>Taobao &amp; Tmall merge</title>"
        "<script>var x = 'Tencent';</script></head>"
        "<body><h1>Taobao &amp; Tmall merge</h1><p>淘寶與天貓合併，阿里雲也參與。</p></body></html>",
        encoding="utf-8",
    )
    assert run(config, "explain", "--json", "--file", str(page)) == 0
    obj = json.loads(capsys.readouterr().out)
    alibaba = [
        (m["term"], m["field"], m["text"]) for m in obj["matches"] if m["topic"] == "alibaba"
    ]
    assert ("Taobao", "title", "taobao") in alibaba
    assert ("淘宝", "content", "淘宝") in alibaba  # Traditional folded to Simplified
    assert ("阿里云", "content", "阿里云") in alibaba
    assert "Tencent" not in {m["term"] for m in obj["matches"]}  # scripts are not text

    notes = tmp_path / "notes.txt"
    notes.write_text("Weekly notes\n\nDeepSeek released a model.\n", encoding="utf-8")
    assert run(config, "explain", "--file", str(notes)) == 0
    report = capsys.readouterr().out
    assert "china-tech  DeepSeek  content  0-8  [deepseek] released a model." in report
    assert run(config, "explain", "--file", str(tmp_path / "missing.txt")) == 1
    assert "missing.txt: cannot read" in capsys.readouterr().err


def test_explain_stored_article(
    tmp_path: Path, seed_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert run(config, "import", str(seed_path)) == 0
    capsys.readouterr()
    assert run(config, "articles", "list", "--json", "--limit", "1") == 0
    article_id = json_lines(capsys.readouterr().out)[0]["id"]
    assert isinstance(article_id, str)
    assert run(config, "explain", "--json", "--article", article_id) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["id"] == article_id
    assert obj["topics"] == obj["stored_topics"] == ["alibaba", "china-tech"]
    assert ("Alibaba Cloud", "title", 0, 13) in {
        (m["term"], m["field"], m["start"], m["end"]) for m in obj["matches"]
    }
    assert run(config, "explain", "--article", article_id) == 0
    assert capsys.readouterr().out.startswith(f"id: {article_id}\ntopics: alibaba, china-tech\n")
    assert run(config, "explain", "--article", "tag:nope") == 1
    assert "tag:nope: no stored article has this id" in capsys.readouterr().err


JSONL = [
    {"id": "en-1", "title": "Alibaba's quarterly revenue beats forecasts", "summary": "Cloud sales rose.", "lang": "en"},
    {"id": "fr-1", "title": "Pékin sanctionne Tencent", "summary": "Le régulateur chinois (SAMR) frappe fort.", "lang": "fr"},
    {"id": "zh-1", "title": "阿里雲發布通義千問新版本", "summary": "淘寶商家可以免費使用。", "lang": "zh-Hant"},
    {"id": "zh-2", "title": "阿里山日出", "summary": "游客在阿里山看日出。", "lang": "zh-Hans"},
    {"id": 7, "title": "Local bakery wins bread prize", "summary": "Sourdough again.", "content": "<p>No tech here.</p>"},
]  # fmt: skip


def test_explain_jsonl_round_trip_in_a_subprocess(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(json.dumps(o, ensure_ascii=False) for o in JSONL) + "\n\n", encoding="utf-8"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "feedbot.cli", "--config", config, "explain", "--jsonl", str(source)],
        capture_output=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    rows = json_lines(proc.stdout.decode("utf-8"))
    assert [r["id"] for r in rows] == ["en-1", "fr-1", "zh-1", "zh-2", "7"]
    assert [r.get("lang") for r in rows] == ["en", "fr", "zh-Hant", "zh-Hans", None]
    assert [r["topics"] for r in rows] == [
        ["alibaba", "china-tech"], ["china-tech"], ["alibaba", "china-tech"], [], [],
    ]  # fmt: skip
    zh = rows[2]["matches"]
    assert isinstance(zh, list)
    assert [(m["term"], m["field"], m["start"], m["end"], m["text"]) for m in zh[:3]] == [
        ("阿里云", "title", 0, 3, "阿里云"),
        ("通义千问", "title", 5, 9, "通义千问"),
        ("淘宝", "summary", 0, 2, "淘宝"),
    ]
    for obj, row in zip(JSONL, rows, strict=True):
        doc = MatchInput(title=str(obj["title"]), summary=str(obj["summary"]))
        for m in row["matches"]:  # type: ignore[attr-defined]
            assert field_text(doc, m["field"])[m["start"] : m["end"]] == m["text"]
    assert {x["phrase"] for x in rows[3]["exclusions"]} == {"阿里山"}  # type: ignore[attr-defined]
    assert [x["field"] for x in rows[3]["exclusions"]] == ["summary", "title"]  # type: ignore[attr-defined]
    assert rows[1]["matches"][1]["term"] == "SAMR"  # type: ignore[index]
    assert not (tmp_path / "state").exists()


def test_explain_jsonl_reports_the_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    source = tmp_path / "bad.jsonl"
    source.write_text('{"id": "a", "title": "Alibaba"}\n{"id": "b", "title": 3}\n', "utf-8")
    assert run(config, "explain", "--jsonl", str(source)) == 1
    captured = capsys.readouterr()
    assert json_lines(captured.out)[0]["id"] == "a"
    assert captured.err == f"feedbot: {source}:2: title: expected a string\n"
    source.write_text("{not json\n", "utf-8")
    assert run(config, "explain", "--jsonl", str(source)) == 1
    assert f"{source}:1: Expecting property name" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [[], ["Alibaba", "--title", "Tmall"], ["--file", "x.txt", "--jsonl", "y.jsonl"]],
    ids=["nothing", "text-and-title", "file-and-jsonl"],
)
def test_explain_needs_exactly_one_source(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(write_config(tmp_path), "explain", *argv) == 2
    assert "give one of: TEXT" in capsys.readouterr().err


# ------------------------------------------------------------------ pure helpers
@pytest.mark.parametrize(
    ("start", "end", "context", "expected"),
    [
        (0, 7, 5, "[alibaba] clou…"),
        (8, 13, 3, "…ba [cloud] gr…"),
        (14, 19, 10, "…aba cloud [grows]"),
    ],
)
def test_snippet_marks_the_match_and_the_cuts(
    start: int, end: int, context: int, expected: str
) -> None:
    assert snippet("alibaba cloud grows", start, end, context) == expected


def test_snippet_keeps_one_line() -> None:
    assert snippet("a\nb\tc", 2, 3) == "a [b] c"


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([1], "expected a JSON object"),
        ({"title": "x"}, "id: expected a string or an integer"),
        ({"id": True, "title": "x"}, "id: expected a string or an integer"),
        ({"id": "a", "summary": 1}, "summary: expected a string"),
        ({"id": "a", "title": "x", "categories": "y"}, "categories: expected a list of strings"),
        ({"id": "a", "lang": "en"}, "title: expected a title, a summary or a content"),
    ],
)
def test_item_from_json_rejects(obj: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        item_from_json(obj)


def test_input_from_file_forms() -> None:
    assert input_from_file("") == MatchInput()
    assert input_from_file("  Title line \nbody\n") == MatchInput(
        title="Title line", content="body"
    )
    page = "<div><h1>Tmall <b>sale</b></h1><p>x</p></div>"
    assert input_from_file(page) == MatchInput(title="Tmall sale", content=page)
    assert input_from_file("a < b", html_hint=True).title == ""
