from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedbot.models import ArticleData
from feedbot.relevance.normalize import fold
from feedbot.relevance.topics import (
    Matcher,
    MatchInput,
    TopicSpec,
    field_text,
    load_default_topics,
    topic_specs_from_mapping,
)
from feedbot.text import clean_text

ROOT = Path(__file__).resolve().parent.parent
LABELLED = ROOT / "tests/data/relevance/labelled.jsonl"


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher.default()


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Alibaba", "alibaba"),  # ASCII: lower case only
        ("Pékin", "pekin"),  # accents on Latin letters
        ("Pe\u0301kin", "pekin"),  # already decomposed
        ("ÉCONOMIE", "economie"),
        ("Straße", "strasse"),  # case folding, not just lower()
        ("ＡＬＩＢＡＢＡ", "alibaba"),  # full-width Latin
        ("ｱﾘ", "アリ"),  # half-width katakana
        ("d’Alibaba", "d'alibaba"),  # typographic apostrophe
        ("Alibaba－Cloud", "alibaba-cloud"),  # full-width hyphen
        ("T–Head", "t-head"),  # en dash
        ("穆罕默德・阿里", "穆罕默德·阿里"),  # katakana middle dot
        ("ﬁnance", "finance"),  # ligature
        ("阿里雲", "阿里云"),  # Traditional to Simplified
        ("淘寶與天貓", "淘宝与天猫"),
        ("螞蟻集團", "蚂蚁集团"),
        ("阿里云", "阿里云"),  # Simplified stays
        ("Привет", "привет"),
    ],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded
    assert fold(folded) == folded  # idempotent


def test_latin1_text_folds_as_any_text_does() -> None:
    """Latin-1 text is folded through a byte table (``_fold_latin1``): the same result as
    the general way for every character and every pair of characters of the range."""
    from feedbot.relevance.normalize import _fold_any, _fold_latin1

    chars = [chr(c) for c in range(256)]
    for text in [*chars, *(a + b for a in chars for b in chars)]:
        expected = text.lower() if text.isascii() else _fold_any(text)
        assert fold(text) == expected, repr(text)
    assert _fold_latin1("Élève à Pékin, « déjà »\xa0!") == "eleve a pekin, « deja » !"
    assert _fold_latin1("Straße") is None  # "ß" folds to two characters
    assert _fold_latin1("d’Alibaba") is None  # not Latin-1


def _alibaba_only() -> Matcher:
    return Matcher([TopicSpec(name="t", terms=("Alibaba", "Ant Group", "阿里巴巴", "JD.com"))])


@pytest.mark.parametrize(
    ("title", "matched"),
    [
        ("Alibaba's results", True),
        ("Alibaba’s results", True),
        ("l'Alibaba de demain", True),
        ("d’Alibaba", True),
        ("pro-Alibaba investors", True),
        ("(Alibaba)", True),
        ("ALIBABA", True),
        ("#alibaba", True),
        ("使用Alibaba的云", True),  # Chinese characters are not word characters here
        ("Alibabaesque", False),
        ("Alibabas", False),  # no plurals
        ("xAlibaba", False),
        ("2Alibaba", False),
        ("Ant Group", True),
        ("Ant-Group", True),
        ("Ant  Group", True),
        ("Ant Groupe", False),
        ("Giant Group", False),
        ("JD.com", True),
        ("JD.coms", False),
        ("JDxcom", False),  # a dot in a term is literal
        ("集团阿里巴巴的业务", True),  # Chinese terms match as substrings
    ],
)
def test_word_boundaries(title: str, matched: bool) -> None:
    assert bool(_alibaba_only().match(MatchInput(title=title)).topics) is matched


AMBIGUITY = [
    # (title, summary, expected topics)
    ("阿里山的日出", "游客清晨上山看云海。", ()),
    ("阿里地区的湖泊", "海拔很高的高原湖泊。", ()),
    ("阿里发布季度财报", "", ("alibaba", "china-tech")),
    ("拳王阿里", "穆罕默德·阿里的一生。", ()),
    ("Ali Baba and the Forty Thieves", "A pantomime.", ()),
    ("Alibaba and the Forty Thieves", "A children's book.", ()),
    ("阿里巴巴与四十大盗", "童话剧。", ()),
    ("Muhammad Ali", "The boxer's gloves at auction.", ()),
    ("JD Sports sales fall", "The retailer sells trainers in China too.", ()),
    ("JD Vance visits China", "", ()),
    ("JD profit jumps", "The Chinese e-commerce group beat forecasts.", ("china-tech",)),
    ("JD profit jumps", "Shares rose in early trading.", ()),
    ("Kimi Räikkönen retires", "The Finn won in Shanghai once.", ()),
    ("Kimi Raikkonen", "", ()),
    ("Kimi adds a new mode", "Moonshot said the chatbot can browse.", ("china-tech",)),
    ("Ant colonies", "How ants find food.", ()),
    ("Ant Group results", "", ("alibaba", "china-tech")),
    ("Ma speaks", "", ()),
    ("Jack Ma speaks", "", ("alibaba", "china-tech")),
    ("Temu fined", "", ("china-tech",)),
    ("Meituan grows", "", ("china-tech",)),
    ("Didi Hamann", "The pundit criticised Bayern.", ()),
    ("Didi drivers strike", "Ride-hailing fares rise.", ("china-tech",)),
    ("Didi wins a singing contest", "", ()),
    ("Qwen 3 released", "", ("alibaba", "china-tech")),
    ("Tongyi update", "", ("alibaba", "china-tech")),
    ("Huawei, Xiaomi and Baidu", "", ("china-tech",)),
    ("小米粥的做法", "", ()),
    ("小米发布新手机", "", ("china-tech",)),
    ("发扬钉钉子精神", "", ()),
    ("钉钉推出新功能", "", ("alibaba", "china-tech")),
    ("Le CAC 40 recule", "Les valeurs chinoises pèsent.", ()),
    (
        "Le CAC impose de nouvelles règles",
        "Le régulateur chinois vise les algorithmes.",
        ("china-tech",),
    ),
    ("AMAP : paniers de légumes", "", ()),
    ("Minimax", "The search algorithm explained.", ()),
]


@pytest.mark.parametrize(("title", "summary", "expected"), AMBIGUITY)
def test_ambiguity(matcher: Matcher, title: str, summary: str, expected: tuple[str, ...]) -> None:
    assert matcher.match(MatchInput(title=title, summary=summary)).topics == expected


def test_exclusion_vetoes_only_the_overlapping_match(matcher: Matcher) -> None:
    doc = MatchInput(
        title="Alibaba and the Forty Thieves, retold",
        summary="Meanwhile Alibaba Cloud cut its prices.",
    )
    result = matcher.match(doc)
    assert result.topics == ("alibaba", "china-tech")
    assert [(m.topic, m.field, m.term) for m in result.matches] == [
        ("alibaba", "summary", "Alibaba Cloud"),
        ("china-tech", "summary", "Alibaba Cloud"),  # included topics repeat the match
    ]
    assert result.exclusions == (("alibaba", "Alibaba and the Forty Thieves", "title"),)


@pytest.mark.parametrize(
    ("doc", "field", "term", "text"),
    [
        (MatchInput(title="Big news: ALIBABA’s cloud"), "title", "Alibaba", "alibaba"),
        (MatchInput(summary="Le groupe de Jack  Ma"), "summary", "Jack Ma", "jack  ma"),
        (MatchInput(title="大新聞：阿里雲降價"), "title", "阿里云", "阿里云"),
        (MatchInput(content="<p>Hello <b>Taobao</b> shoppers</p>"), "content", "Taobao", "taobao"),
        (MatchInput(categories=("Retail", "Tmall")), "categories", "Tmall", "tmall"),
    ],
)
def test_positions_index_the_folded_field(
    matcher: Matcher, doc: MatchInput, field: str, term: str, text: str
) -> None:
    result = matcher.match(doc)
    assert result.topics == ("alibaba", "china-tech")
    (match,) = (m for m in result.matches if m.topic == "alibaba")
    assert (match.field, match.term) == (field, term)
    assert field_text(doc, field)[match.start : match.end] == text


def test_every_occurrence_is_reported_in_field_order(matcher: Matcher) -> None:
    doc = MatchInput(title="Tencent", summary="Tencent and Baidu; Tencent again")
    found = [(m.field, m.term, m.start) for m in matcher.match(doc).matches]
    assert found == [
        ("title", "Tencent", 0),
        ("summary", "Tencent", 0),
        ("summary", "Baidu", 12),
        ("summary", "Tencent", 19),
    ]


@pytest.mark.parametrize(
    ("fields", "doc", "matched"),
    [
        (("title",), MatchInput(title="Alibaba"), True),
        (("title",), MatchInput(summary="Alibaba"), False),
        (("summary",), MatchInput(summary="<p>Alibaba</p>"), True),
        (("content",), MatchInput(content="<div class='alibaba'>nothing</div>"), False),
        (("content",), MatchInput(content="<p>Ali<b>baba</b></p>"), True),
        (("categories",), MatchInput(categories=("Alibaba",)), True),
        (("categories",), MatchInput(categories=("Ant", "Group")), False),
        (("link",), MatchInput(link="https://www.alibaba.com/news"), True),
        (("link",), MatchInput(link="https://alibabaesque.example/"), False),
    ],
)
def test_fields(fields: tuple[str, ...], doc: MatchInput, matched: bool) -> None:
    spec = TopicSpec(name="t", terms=("Alibaba", "Ant Group"), fields=fields)
    assert bool(Matcher([spec]).match(doc).topics) is matched


def test_context_terms_and_includes() -> None:
    specs = [
        TopicSpec(name="fruit", terms=("banana",), context_terms=(("apple", ("orchard",)),)),
        TopicSpec(name="food", terms=("bread",), includes=("fruit",)),
        TopicSpec(name="meal", terms=("soup",), includes=("food",)),
    ]
    m = Matcher(specs)
    assert m.match(MatchInput(title="apple")).topics == ()
    assert m.match(MatchInput(title="apple", summary="in the orchard")).topics == (
        "food",
        "fruit",
        "meal",
    )
    # A plain term of the same topic is context enough: both matches are reported.
    result = m.match(MatchInput(title="apple and banana"))
    assert [(m.topic, m.term) for m in result.matches if m.topic == "fruit"] == [
        ("fruit", "apple"),
        ("fruit", "banana"),
    ]
    assert {m.topic for m in result.matches} == {"fruit", "food", "meal"}
    assert m.match(MatchInput(title="bread")).topics == ("food", "meal")
    assert m.match(MatchInput(title="soup")).topics == ("meal",)


def test_regexes_see_folded_text() -> None:
    spec = TopicSpec(name="t", terms=(), regexes=(r"\bqwen\d(?:\.\d)?\b",))
    result = Matcher([spec]).match(MatchInput(title="QWEN2.5 arrives"))
    assert [(m.term, m.start, m.end) for m in result.matches] == [(spec.regexes[0], 0, 7)]


def test_topics_do_not_hide_each_other() -> None:
    specs = [
        TopicSpec(name="cloud", terms=("cloud",)),
        TopicSpec(name="ali", terms=("Alibaba Cloud",)),
    ]
    assert Matcher(specs).match(MatchInput(title="Alibaba Cloud")).topics == ("ali", "cloud")


def test_default_topics() -> None:
    specs = load_default_topics()
    assert set(specs) == {"alibaba", "china-tech"}
    assert specs["china-tech"].includes == ("alibaba",)
    assert all(spec.description for spec in specs.values())


def test_from_article(matcher: Matcher) -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    article = ArticleData(
        id="tag:example.org,2024:1",
        title="Earnings",
        summary="",
        content="<p>Pinduoduo beat forecasts.</p>",
        link=None,
        authors=(),
        language="en",
        categories=(),
        published=when,
        updated=when,
    )
    assert matcher.match(MatchInput.from_article(article)).topics == ("china-tech",)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"x": "nope"}, "topics.x: expected a table"),
        ({"x": {"terms": ["a"], "colour": "red"}}, "topics.x: unknown key 'colour'"),
        ({"x": {"terms": "alibaba"}}, "topics.x.terms: expected a list"),
        ({"x": {"terms": [1]}}, "topics.x.terms: expected a list"),
        ({"x": {"terms": [" "]}}, "topics.x.terms: empty term"),
        ({"x": {"terms": ["a"], "regexes": ["("]}}, "topics.x.regexes"),
        ({"x": {"terms": ["a"], "fields": ["body"]}}, "topics.x.fields"),
        ({"x": {"terms": ["a"], "includes": ["y"]}}, "topics.x.includes: unknown topic 'y'"),
        ({"x": {"terms": ["a"], "includes": ["x"]}}, "topics.x.includes"),
        ({"x": {}}, "topics.x.terms"),
        ({"x": {"terms": ["a"], "context_terms": ["b"]}}, "topics.x.context_terms"),
        ({"x": {"context_terms": {"b": []}}}, "topics.x.context_terms.b"),
        ({"x": {"terms": ["b"], "context_terms": {"B": ["c"]}}}, "topics.x.context_terms.B"),
        ({"x y": {"terms": ["a"]}}, "topics.x y.name"),
    ],
)
def test_bad_mappings_name_the_key(mapping: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        topic_specs_from_mapping(mapping)


def test_mapping_may_include_known_topics() -> None:
    specs = topic_specs_from_mapping(
        {"mine": {"terms": ["x"], "includes": ["alibaba"]}}, known={"alibaba"}
    )
    m = Matcher([*load_default_topics().values(), *specs.values()])
    assert "mine" in m.match(MatchInput(title="Taobao")).topics


def test_matcher_rejects_unknown_includes() -> None:
    with pytest.raises(ValueError, match="unknown topic 'b'"):
        Matcher([TopicSpec(name="a", terms=("x",), includes=("b",))])


def _labelled() -> list[dict[str, object]]:
    return [json.loads(line) for line in LABELLED.read_text("utf-8").splitlines() if line]


def test_labelled_set_shape() -> None:
    items = _labelled()
    assert len(items) >= 200
    assert len({i["id"] for i in items}) == len(items)
    assert {i["lang"] for i in items} == {"en", "fr", "zh-Hans", "zh-Hant"}
    assert sum(1 for i in items if not i["labels"]) >= 60


@pytest.mark.parametrize("topic", ["alibaba", "china-tech"])
def test_labelled_precision_and_recall(matcher: Matcher, topic: str) -> None:
    tp = fp = fn = 0
    for item in _labelled():
        doc = MatchInput(title=str(item["title"]), summary=str(item["summary"]))
        got, want = topic in matcher.match(doc).topics, topic in item["labels"]  # type: ignore[operator]
        tp += got and want
        fp += got and not want
        fn += want and not got
    assert tp / (tp + fp) >= 0.95
    assert tp / (tp + fn) >= 0.95


def test_eval_script_passes() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts/eval_relevance.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "alibaba" in run.stdout
    assert "china-tech" in run.stdout


def _seed_articles(seed_path: Path) -> list[tuple[str, str]]:
    articles: list[list[str]] = []
    for line in seed_path.read_text("utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("•"):
            articles.append([stripped.lstrip("• ")])
        elif articles and stripped:
            articles[-1].append(stripped)
    return [(clean_text(a[0]), clean_text(" ".join(a[1:]))) for a in articles]


def test_seed_articles(matcher: Matcher, seed_path: Path) -> None:
    articles = _seed_articles(seed_path)
    assert len(articles) == 9
    results = [matcher.match(MatchInput(title=t, summary=s)) for t, s in articles]
    assert all("alibaba" in r.topics for r in results)
    last = results[-1]
    assert "china-tech" in last.topics
    own = {m.term for m in last.matches if m.topic == "china-tech"}
    assert {"Tencent", "Baidu"} <= own


def test_a_summary_cut_from_the_content_is_read_once() -> None:
    both = TopicSpec(name="both", terms=("Alibaba",), context_terms=(("Ant", ("payments",)),))
    summary_only = TopicSpec(name="short", terms=("Alibaba",), fields=("title", "summary"))
    matcher = Matcher([both, summary_only])
    content = "Alibaba and Ant expand payments. " + "More text follows here. " * 200
    summary = content[:120]
    cut = matcher.match(MatchInput("t", summary, content, summary_in_content=True))
    full = matcher.match(MatchInput("t", summary, content))
    assert cut.topics == full.topics == ("both", "short")
    both_cut = [(m.term, m.field) for m in cut.matches if m.topic == "both"]
    assert both_cut == [("Alibaba", "content"), ("Ant", "content")]
    assert {m.field for m in full.matches if m.topic == "both"} == {"summary", "content"}
    assert [m.field for m in cut.matches if m.topic == "short"] == ["summary"]


def _exhaustive(matcher: Matcher) -> Matcher:
    """The same matcher with its anchor prefilter off: every topic is searched in full."""
    full = Matcher.default()
    full._always = frozenset(range(len(full._topics)))
    assert matcher.topics == full.topics
    return full


def test_anchor_prefilter_never_changes_a_result(matcher: Matcher) -> None:
    full = _exhaustive(matcher)
    items = [json.loads(line) for line in LABELLED.read_text("utf-8").splitlines() if line]
    docs = [MatchInput(title=i["title"], summary=i["summary"]) for i in items]
    tricky = [
        "Alibaba-Cloud and Alibaba  Cloud\nand Alibaba\u00a0Cloud",  # separators in a term
        "alibaba\tgroup; ANT-GROUP; Ant \u2013 Group",
        "soleil lei jun; Lei Jun; l'Alibaba; Alibabaesque; Baidus; 使用Qwen模型; Qwen3",
        "阿里巴巴集团 與 騰訊; ＡＬＩＢＡＢＡ; Pe\u0301kin; e-commerce Taobao-Tmall",
        "JD.com; jd; JDs; <b>Alibaba</b> &amp; Tencent",
    ]
    docs += [MatchInput(title=t, summary=t, content=t, categories=(t,)) for t in tricky]
    docs += [
        MatchInput(title=t, summary=t[:20], content=t, summary_in_content=True) for t in tricky
    ]
    relevant = 0
    for doc in docs:
        got, want = matcher.match(doc), full.match(doc)
        assert got == want, doc
        relevant += bool(got.topics)
    assert relevant > 150  # the comparison covered matches, not only misses
