from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from feedbot.text import clean_text, html_to_text, repair_text, sanitize_html

# UTF-8 read as ISO-8859-16, then (some paragraphs) "repaired" through windows-1250.
MOJIBAKE = [
    ("PĂ©kin", "Pékin"),
    ("la sĂ©curitĂ©", "la sécurité"),
    ("s’allie Ă\xa0 IBM", "s’allie à IBM"),
    ("au moment oĂč il", "au moment où il"),
    ("OĂč est-il ?", "Où est-il ?"),
    ("mĂȘme, enquĂȘte", "même, enquête"),
    ("ĂȘtre", "être"),
    ("derniĂšre", "dernière"),
    ("disparaĂźtre", "disparaître"),
    ("coĂŻncidence", "coïncidence"),
    ("Ă\x89tats-Unis", "États-Unis"),
    ("â\x80\x99", "’"),
    ("premiÚre apparition", "première apparition"),
    ("de son cÎté", "de son côté"),
    ("au cƓur de", "au cœur de"),
    ("mises en Ɠuvre", "mises en œuvre"),
    ("un Ɠil bienveillant", "un œil bienveillant"),
    ("“sur le marchéâ€.", "“sur le marché”."),
    ("« juste Ă©tĂ©â€ »", "« juste été” »"),
    # classic latin-1 / windows-1252 mojibake, left to ftfy
    ("cafÃ© Ã  emporter", "café à emporter"),
    ("lâ€™offre", "l’offre"),
    ("Â«\xa0ouiÂ\xa0Â»", "«\xa0oui\xa0»"),
    # NFC
    ("e\u0301te\u0301", "été"),
]

CORRECT = [
    "Ăsta e bine",
    "PĂȘUNE ÎNCĂ",
    "CÂȘTIGĂ și câștigă",
    "ȚARĂ\xa0NOUĂ",
    "Ăla e gata. Așa nu.",
    "CASĂ\xa0:",
    "Ștefan cel Mare",
    "În România",
    "Łódź i Kraków",
    "Úřad práce",
    "Čeština",
    "Çağ, İstanbul, ŞİŞLİ",
    "Straße, på får, naïve",
    "McDonald",
    "ÉTÉ À PARIS",
    "commerçant",
    "l’été “entre guillemets” ‘simples’ — 5 €",
    "d'Alibaba, aujourd'hui",
    "阿里巴巴（杭州）发布了新的“云”服务。",
    "ＦＵＬＬ ｗｉｄｔｈ",
    "ﬁn de ligne",
    "🙂 👍🏽 👩‍💻",
    "&amp; &eacute; &lt;b&gt;",
    "plain ASCII text",
]


@pytest.mark.parametrize(("broken", "fixed"), MOJIBAKE)
def test_repair_text_fixes_mojibake(broken: str, fixed: str) -> None:
    assert repair_text(broken) == fixed


@pytest.mark.parametrize("text", CORRECT)
def test_repair_text_leaves_correct_text_alone(text: str) -> None:
    assert repair_text(text) == text


@pytest.mark.parametrize(("broken", "fixed"), MOJIBAKE)
def test_repair_text_is_idempotent(broken: str, fixed: str) -> None:
    assert repair_text(repair_text(broken)) == fixed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  a \t b\n\nc  ", "a b c"),
        ("prix\xa0\xa0:\u202f5 €", "prix : 5 €"),
        ("PĂ©kin\xa0\n", "Pékin"),
        ("", ""),
    ],
)
def test_clean_text(text: str, expected: str) -> None:
    assert clean_text(text) == expected


REL = 'rel="noopener noreferrer nofollow"'


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<a href="javascript:alert(1)">x</a>', f"<a {REL}>x</a>"),
        ('<a href="JaVa&#x09;script:alert(1)">x</a>', f"<a {REL}>x</a>"),
        ('<a href="data:text/html,hi">x</a>', f"<a {REL}>x</a>"),
        (
            '<a href="https://e.org/" title="t" target="_blank" onclick="x()">x</a>',
            f'<a href="https://e.org/" title="t" {REL}>x</a>',
        ),
        ('<a href="mailto:a@e.org">m</a>', f'<a href="mailto:a@e.org" {REL}>m</a>'),
        (
            '<img src="https://e.org/i.png" onerror="alert(1)" alt="i">',
            '<img src="https://e.org/i.png" alt="i">',
        ),
        ("<script>alert(1)</script><p>ok</p>", "<p>ok</p>"),
        ("<style>p { color: red }</style><p style='x'>ok</p>", "<p>ok</p>"),
        ('<iframe src="https://e.org/">fallback</iframe>after', "after"),
        ("<!-- note --><h1>T</h1><h2>S</h2><h5>s</h5>", "T<h2>S</h2>s"),
        ("<div><span>x</span></div>", "x"),
        ("<p>PĂ©kin &amp; Ă©tĂ©</p>", "<p>Pékin &amp; été</p>"),
        (
            "<figure><img src='https://e.org/a.png' alt='a'><figcaption>c</figcaption></figure>",
            '<figure><img src="https://e.org/a.png" alt="a"><figcaption>c</figcaption></figure>',
        ),
        (
            "<table><tr><th colspan=2>h</th></tr><tr><td>d</td></tr></table>",
            '<table><tbody><tr><th colspan="2">h</th></tr><tr><td>d</td></tr></tbody></table>',
        ),
        ('<a href="/rel">r</a>', f'<a href="/rel" {REL}>r</a>'),
    ],
)
def test_sanitize_html(html: str, expected: str) -> None:
    assert sanitize_html(html) == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<a href="/rel">r</a>', f'<a href="https://e.org/rel" {REL}>r</a>'),
        ('<img src="i.png">', '<img src="https://e.org/a/i.png">'),
        ('<a href="//cdn.e.org/x">r</a>', f'<a href="https://cdn.e.org/x" {REL}>r</a>'),
        ('<a href="javascript:x()">r</a>', f"<a {REL}>r</a>"),
        ('<a href="http://other.org/">r</a>', f'<a href="http://other.org/" {REL}>r</a>'),
    ],
)
def test_sanitize_html_resolves_relative_urls(html: str, expected: str) -> None:
    assert sanitize_html(html, base_url="https://e.org/a/b.html") == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>Hello&nbsp;<b>wor</b>ld</p><p>Next&amp;co</p>", "Hello world Next&co"),
        ("<script>var a = 1;</script><style>p {}</style>visible", "visible"),
        ("one<br>two<li>three</li>", "one two three"),
        ("&eacute;t&#233; &lt;tag&gt;", "été <tag>"),
        ("<p>PĂ©kin</p>", "Pékin"),
        ("", ""),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


def _tag_names(names: str) -> list[str]:
    return names.split()


BLOCK_TAGS = _tag_names(
    "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5"
    " h6 header hr li main nav ol p pre section table td th tr ul"
)
INLINE_TAGS = _tag_names("a abbr b bdi code del em i img ins mark q s small span strong sub sup u")
LOOKALIKES = _tag_names("ad arti blockquotes brr d dv h h7 heade hrx l lis mai na o pr pres sect t")


def test_html_to_text_separates_words_at_block_tags_only() -> None:
    """Block tags (opening, closing, with attributes, in any case) part the words on
    either side; inline tags and names that only start like a block tag do not."""
    for name in BLOCK_TAGS:
        for tag in (f"<{name}>", f"</{name}>", f'<{name} class="x">', f"<{name.upper()}/>"):
            assert html_to_text(f"one{tag}two") == "one two", tag
    for name in INLINE_TAGS + LOOKALIKES:
        for tag in (f"<{name}>", f"</{name}>", f'<{name} class="x">', f"<{name.upper()}/>"):
            assert html_to_text(f"one{tag}two") == "onetwo", tag


_TAG_NAME = re.compile(r"(</?)([a-z][a-z0-9]*)")


@pytest.mark.parametrize(
    "html",
    [
        "<p>Un <em>marché</em> de <a href='/x' title='a > b'>Pékin</a></p><p>Deux</p>",
        '<div class="x"><h2>T</h2>one<br/>two<li>three</li></div><figure><figcaption>c</figcaption></figure>',
        "<script type='text/javascript'>if (a < b) { x('</p>') }</script>after<style>p {}</style>",
        "<!-- a <p> in a comment -->visible<noscript><img src=x></noscript><iframe src=y></iframe>z",
        "<p>阿里<b>巴巴</b>集团</p><table><tr><td>a</td><td>b</td></tr></table><script>unclosed",
        'x<y and z>w, <p data-a="1>2">q</p>',
    ],
)
def test_html_to_text_reads_tag_names_in_any_case(html: str) -> None:
    """Lowercase tag names take a faster path than others; both give the same text."""
    upper = _TAG_NAME.sub(lambda m: m.group(1) + m.group(2).upper(), html)
    mixed = _TAG_NAME.sub(lambda m: m.group(1) + m.group(2).capitalize(), html)
    tail = _TAG_NAME.sub(lambda m: m.group(1) + m.group(2)[0] + m.group(2)[1:].upper(), html)
    assert upper != html
    assert html_to_text(upper) == html_to_text(mixed) == html_to_text(tail) == html_to_text(html)
    assert html_to_text("<script>x</SCRIPT>y<P>z</p>") == "y z"


def test_repair_text_on_the_seed(seed_path: Path) -> None:
    raw = seed_path.read_text(encoding="utf-8")
    repaired = repair_text(raw)
    for bad in ("Ă", "Ú", "Î", "Ɠ", "â€"):
        assert bad not in repaired, bad
    assert repaired.count("\u2019") == raw.count("\u2019")
    assert repaired == unicodedata.normalize("NFC", repaired)
    for word in ("Pékin", "sécurité", "où", "première", "côté", "cœur", "œuvre", "commerçant"):
        assert word in repaired, word


def test_gate_pairs_leads_and_continuations_of_one_code_page() -> None:
    from feedbot.text import _suspects

    # correct French: "é" is a lead in latin-1 but "è" a continuation only in mac_roman
    assert list(_suspects("Une élève prévoit « déjà » la fête; Hélèna")) == []
    assert list(_suspects("cafÃ© and rÃ©sumÃ©")) == [(3, 5), (11, 13), (16, 18)]
    assert list(_suspects("a\x07b")) == [(1, 2)]  # control characters still count
    assert list(_suspects("a\udc80b")) == [(1, 2)]  # and lone surrogates
    assert repair_text("café \udc80 ok").encode("utf-8")  # never left to fail on encoding
    assert repair_text("Hélèna prévoit cafÃ© à Pékin") == "Hélèna prévoit café à Pékin"


def test_one_scan_finds_whatever_a_repair_pass_could_change() -> None:
    from feedbot.text import _REPAIRABLE

    # each broken example holds something the scan finds; repair leaves the rest alone
    for broken, fixed in MOJIBAKE:
        if broken != fixed and unicodedata.normalize("NFC", broken) != fixed:
            assert _REPAIRABLE.search(broken), broken
    for text in ("Une élève prévoit « déjà » la fête", "阿里巴巴发布了新的“云”服务。", "Straße"):
        assert _REPAIRABLE.search(text) is None, text  # left as it is, in one scan
    assert repair_text("e\u0301te\u0301 à Pékin") == "été à Pékin"  # still NFC
