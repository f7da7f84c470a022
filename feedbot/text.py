"""Text hygiene shared by importers and the feed parser.

- ``repair_text(s)``: mojibake repair that leaves correct text alone, then NFC.
- ``clean_text(s)``: ``repair_text`` plus whitespace folded to single spaces.
- ``sanitize_html(html, base_url=None)``: repaired, allow-listed HTML safe to republish.
- ``html_to_text(html)``: visible text of an HTML fragment, for matching and summaries.

Mojibake repair runs three passes before ftfy, each the inverse of one corruption
modelled forwards (see ``_build_tables``):

1. UTF-8 read as ISO-8859-16 (``"PĂ©kin"`` for ``"Pékin"``): two- and three-character
   runs that re-encode to one valid UTF-8 character, with case rules so that Romanian
   capitals (``"PĂȘUNE"``) survive.
2. That text "repaired" through windows-1250 instead (``"premiÚre"`` for ``"première"``):
   one capital letter between lowercase letters, which no real word contains.
3. ``"â€"`` whose last byte was lost becomes ``"”"``; then ftfy for the classic
   latin-1/windows-125x cases, with quotes, ligatures, full-width forms, line breaks
   and HTML entities left as they are.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from html import unescape
from itertools import islice
from typing import Literal
from urllib.parse import urlsplit

import ftfy
import nh3
from ftfy.badness import is_bad

_FTFY = ftfy.TextFixerConfig(
    unescape_html=False,  # entities are the HTML layer's business
    uncurl_quotes=False,  # typographic quotes and apostrophes are correct text
    fix_latin_ligatures=False,
    fix_character_width=False,  # full-width forms are normal in Chinese text
    fix_line_breaks=False,
    replace_lossy_sequences=False,  # never invent U+FFFD
    normalization=None,  # NFC is applied once, at the end
    explain=False,
)

# Characters whose UTF-8 bytes, misread, we know how to put back.
_TARGETS = [chr(c) for c in range(0xA0, 0x180)] + [
    *"\u2010\u2011\u2012\u2013\u2014\u2015\u2018\u2019\u201a\u201c\u201d\u201e",
    *"\u2020\u2021\u2022\u2026\u2030\u2039\u203a\u20ac\u2122",
]


def _sloppy_cp1250(text: str) -> bytes:
    """windows-1250 encoding that lets C1 controls through as their own byte."""
    out = bytearray()
    for ch in text:
        try:
            out += ch.encode("cp1250")
        except UnicodeEncodeError:
            if not 0x80 <= ord(ch) <= 0x9F:
                raise
            out.append(ord(ch))
    return bytes(out)


def _build_tables() -> tuple[dict[str, str], dict[str, str]]:
    """Model both corruptions forwards; return {mojibake: original} for each."""
    iso16: dict[str, str] = {}
    cp1250: dict[str, str] = {}
    for original in _TARGETS:
        misread = original.encode("utf-8").decode("iso8859_16")
        iso16[misread] = original
        try:
            rerepaired = _sloppy_cp1250(misread).decode("utf-8")
        except UnicodeError:
            continue
        # Keep only the single capital letters that stand for a lowercase one.
        if (
            len(rerepaired) == 1
            and rerepaired != original
            and rerepaired.isupper()
            and original.islower()
        ):
            cp1250[rerepaired] = original
    return iso16, cp1250


_ISO16, _CP1250 = _build_tables()
_ISO16_RE = re.compile("|".join(re.escape(k) for k in sorted(_ISO16, key=len, reverse=True)))
_CP1250_CHARS = "".join(sorted(_CP1250))
_CP1250_RE = re.compile(f"[{re.escape(''.join(sorted(_CP1250)))}]")
# "”" read as windows-1252 loses its last byte (0x9D): "â€" then a space or punctuation.
# An NBSP after it is left to ftfy, which reads "â€\xa0" as "†".
_LOST_RDQUO = re.compile(r"â€(?=[ \t\r\n.,;:!?)\]»]|$)")
_C1 = re.compile(r"[\x80-\x9f]")


def _is_upper(ch: str) -> bool:
    return ch.isalpha() and ch.isupper()


def _is_lower(ch: str) -> bool:
    return ch.isalpha() and ch.islower()


def _iso16_sub(match: re.Match[str]) -> str:
    run = match.group()
    original = _ISO16[run]
    if _C1.search(run):  # a C1 control is never correct text
        return original
    text = match.string
    prev = text[match.start() - 1] if match.start() > 0 else " "
    nxt = text[match.end()] if match.end() < len(text) else " "
    if original.isalpha() or run.isalpha():
        # In an all-capitals word ("PĂȘUNE", "CÂȘTIGĂ", "CASĂ ...") it is Romanian.
        prev2 = text[match.start() - 2] if match.start() > 1 else " "
        if _is_upper(nxt) or (_is_upper(prev) and _is_upper(prev2) and not _is_lower(nxt)):
            return run
        if original.isupper() and not (prev.isalpha() or nxt.isalpha()):
            return run
    return original


def _cp1250_sub(match: re.Match[str]) -> str:
    """A capital between two lowercase letters, which no real word has; a Latin
    Extended-B capital (unused by French, Romanian, Polish, Czech, Turkish) may also
    start a word when lowercase follows."""
    ch = match.group()
    text = match.string
    prev = text[match.start() - 1] if match.start() > 0 else " "
    nxt = text[match.end()] if match.end() < len(text) else " "
    if _is_lower(nxt) and (_is_lower(prev) or (ch >= "\u0180" and not prev.isalnum())):
        return _CP1250[ch]
    return ch


# C0 and C1 controls (but tab, newline and carriage return) and lone surrogates: never
# correct text, and ftfy removes or replaces them.
_CONTROL_CHARS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff"
_CONTROLS = re.compile(f"[{_CONTROL_CHARS}]")


def _repair_scans() -> tuple[re.Pattern[str], frozenset[str], re.Pattern[str]]:
    """What ftfy could act on: a cheap regex (its own badness check is ~50x slower) and
    the pairs it finds that really are a misread; and a regex that finds anything any
    pass of ``repair_text`` could act on.

    UTF-8 misread in a single-byte code page ftfy knows always leaves a lead byte's
    character (bytes C2-F4) followed by a continuation byte's (80-BF), both read in that
    one code page (or a continuation as a C1 control, in sloppy decodings); ftfy's other
    fixes (with the settings above) only touch control characters and lone surrogates.
    The regex finds a lead of any code page followed by a continuation of any; only a
    pair from one code page counts, so correct French ("élève", where "è" is a continuation
    only in mac_roman and cp437) and Chinese are left to the passes above.
    """
    c1 = {chr(c) for c in range(0x80, 0xA0)}
    all_leads: set[str] = set()
    all_conts: set[str] = set()
    pairs: set[str] = set()
    for codec in ("latin-1", "cp1252", "cp1250", "cp1251", "iso-8859-2", "mac_roman", "cp437"):
        leads = {bytes([b]).decode(codec, "ignore") for b in range(0xC2, 0xF5)} - {""}
        conts = ({bytes([b]).decode(codec, "ignore") for b in range(0x80, 0xC0)} | c1) - {""}
        all_leads |= leads
        all_conts |= conts
        pairs.update(lead + cont for lead in leads for cont in conts)
    # One class first (a lead or a control), checked afterwards: a pattern that starts with
    # a single class lets re skip ahead in C, about twice as fast as an alternation.
    first = f"[{_char_class(all_leads)}{_CONTROL_CHARS}]"
    wide = f"{first}(?:(?<=[{_CONTROL_CHARS}])|(?=[{_char_class(all_conts)}]))"
    # The same shape for every pass: the first two characters of an ISO-8859-16 run, a
    # windows-1250 capital, or what ``wide`` finds ("â€" is a lead and a continuation).
    # Text without any (most accented text) is left as it is by all of them: one scan
    # instead of four.
    iso16_first = {run[0] for run in _ISO16}
    iso16_second = {run[1] for run in _ISO16}
    starts = all_leads | iso16_first | set(_CP1250)
    anything = (
        f"[{_char_class(starts)}{_CONTROL_CHARS}]"
        f"(?:(?<=[{_char_class(iso16_first)}])(?=[{_char_class(iso16_second)}])"
        f"|(?<=[{_char_class(set(_CP1250))}])|(?<=[{_CONTROL_CHARS}])"
        f"|(?=[{_char_class(all_conts)}]))"
    )
    return re.compile(wide), frozenset(pairs), re.compile(anything)


def _char_class(chars: set[str]) -> str:
    """A regex character class's body for *chars*."""
    return "".join(re.escape(c) for c in sorted(chars))


_GATE, _MISREAD_PAIRS, _REPAIRABLE = _repair_scans()


def _suspects(text: str) -> Iterator[tuple[int, int]]:
    """Where ftfy could act in *text*: each misread pair, or control character, as
    (start, end)."""
    for m in _GATE.finditer(text):
        at = m.start()
        char = text[at]
        if char < "\xa0" or "\ud800" <= char <= "\udfff":  # every lead is above U+009F
            yield at, at + 1
        elif text[at : at + 2] in _MISREAD_PAIRS:
            yield at, at + 2


# ftfy runs only on the whitespace-delimited runs that hold something it could act on:
# mojibake never spans a space, and ftfy's cost grows with the length of what it is given.


def repair_text(s: str) -> str:
    """Undo mojibake without touching correct text; return NFC."""
    if s.isascii():
        return s
    if _REPAIRABLE.search(s) is None:  # no pass below would change anything
        return unicodedata.normalize("NFC", s)
    text = _ISO16_RE.sub(_iso16_sub, s)
    text = _CP1250_RE.sub(_cp1250_sub, text)
    text = _LOST_RDQUO.sub("\u201d", text)
    if next(_suspects(text), None) is not None:
        text = _ftfy_windows(text)
    return unicodedata.normalize("NFC", text)


_WORD_GAP = re.compile(r"[ \t\n\r]+")
_REACH = 160  # characters looked at each side of a suspect spot


def _ftfy_windows(text: str) -> str:
    """ftfy on the stretches around each suspect spot only: two words each side and the
    space after them (ftfy judges a sequence by its neighbours, and "Ã " is "à " only next
    to other mojibake). Mojibake never spans a line, and ftfy's cost grows with its input."""
    windows: list[list[int]] = []
    for start, stop in _suspects(text):
        lo = max(0, start - _REACH)
        before = [g.end() for g in _WORD_GAP.finditer(text, lo, start)]
        begin = before[-3] if len(before) >= 3 else lo  # the two words before the suspect one
        after = islice(_WORD_GAP.finditer(text, stop, stop + _REACH), 3)
        ends = [g.end() for g in after]
        end = ends[2] if len(ends) == 3 else min(len(text), stop + _REACH)
        if windows and begin <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], end)
        else:
            windows.append([begin, end])
    out, pos = [], 0
    for begin, end in windows:
        window = text[begin:end]
        if is_bad(window) or _CONTROLS.search(window):  # else ftfy would return it as is
            out += [text[pos:begin], str(ftfy.fix_text(window, _FTFY))]
            pos = end
    out.append(text[pos:])
    return "".join(out)


def squash(s: str) -> str:
    """Every whitespace run (NBSP included) folded to one space, ends stripped.

    ``str.split`` splits on exactly the characters ``\\s`` matches, in one C loop.
    """
    return " ".join(s.split())


def clean_text(s: str) -> str:
    """Repair, fold every whitespace run (NBSP included) to one space, strip."""
    return squash(repair_text(s))


_TAGS = {
    "p", "a", "em", "strong", "b", "i", "ul", "ol", "li", "blockquote", "h2", "h3", "h4",
    "pre", "code", "br", "img", "figure", "figcaption",
    "table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt"},
    "th": {"colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
}
_DROP_WITH_CONTENT = {"script", "style", "iframe", "object", "embed", "template", "noscript"}
_URL_ATTRIBUTES = {("a", "href"), ("img", "src")}
_SCHEMES = {"http", "https", "mailto"}


def sanitize_html(html: str, *, base_url: str | None = None) -> str:
    """Repair the text, keep only the allow-list, force safe links.

    Links get ``rel="noopener noreferrer nofollow"``; URLs other than http, https and
    mailto are dropped. With *base_url*, relative URLs are resolved against it;
    without it they are kept as written.
    """
    if base_url is not None and urlsplit(base_url).scheme not in ("http", "https"):
        base_url = None  # relative URLs kept as written
    return str(_cleaner(base_url).clean(repair_text(html)))


@lru_cache(maxsize=64)
def _cleaner(base_url: str | None) -> nh3.Cleaner:
    """The sanitiser for one base URL (None: relative URLs kept as written), built once:
    building it cost about a fifth of sanitising a news article (12 of 69 µs), and the
    entries of one feed share their base."""
    relative: tuple[Literal["rewrite_with_base"], str] | None = None
    if base_url is not None:
        relative = ("rewrite_with_base", base_url)  # resolved inside nh3, no Python callback
    return nh3.Cleaner(
        tags=_TAGS,
        clean_content_tags=_DROP_WITH_CONTENT,
        attributes=_ATTRIBUTES,
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
        url_schemes=_SCHEMES,
        url_relative=relative,
    )


# address article aside blockquote br dd div dl dt figcaption figure footer h1-h6 header hr
# li main nav ol p pre section table td th tr ul, written as a tree of their prefixes: re
# tries an alternation's branches in turn, and a tag that is none of these (most of them:
# a, em, strong, img) now fails a dozen first letters instead of 28 names (a third faster)
_BLOCKS = (
    "a(?:ddress|rticle|side)|b(?:lockquote|r)|d(?:d|iv|l|t)|f(?:igcaption|igure|ooter)"
    "|h(?:[1-6]|eader|r)|li|main|nav|ol|p(?:re)?|section|t(?:able|[dhr])|ul"
)
_INVISIBLE = "script|style|template|noscript|head|title|iframe|object"
# An attribute value may hold ">" when quoted; a tag is "<", a name, then quoted or other
# runs. Written "unrolled" (a run, then quoted strings each followed by a run), which re
# matches about a fifth faster than one repeated alternation, for the same tags.
_ATTRS = r"""[^>"']*+(?:(?:"[^"]*+"|'[^']*+')[^>"']*+)*+"""
_HIDDEN_PATTERN = rf"<!--.*?(?:-->|\Z)|<({_INVISIBLE})\b{_ATTRS}>.*?(?:</\1\s*>|\Z)"
_HIDDEN = re.compile(_HIDDEN_PATTERN, re.IGNORECASE | re.DOTALL)
_BLOCK_PATTERN = rf"</?(?:{_BLOCKS})\b{_ATTRS}>"
_BLOCK_TAG = re.compile(_BLOCK_PATTERN, re.IGNORECASE)
# Tag names are nearly always lowercase; then these case-sensitive twins find exactly what
# the two above find, in about half the time (re's IGNORECASE folds every character).
_UPPERCASE_TAG = re.compile(r"</?+(?:[a-z][a-z0-9:-]*+)?+[A-Z]")  # possessive: half the time
_HIDDEN_LOWER = re.compile(_HIDDEN_PATTERN, re.DOTALL)
_BLOCK_TAG_LOWER = re.compile(_BLOCK_PATTERN)
_ANY_TAG = re.compile(rf"</?[A-Za-z]{_ATTRS}>|<![^>]*>|<\?[^>]*>")  # the name is in _ATTRS's run


def html_to_text(html: str, *, repair: bool = True) -> str:
    """Visible text of *html*: no scripts, styles or comments, entities decoded, cleaned.

    Three regex passes, each a C loop with a constant replacement: comments and invisible
    elements with their content, then block tags as a space (so that the words of two
    paragraphs never run together), then every other tag. This is text for matching and
    summaries, which are escaped wherever they are shown; it is never a sanitiser (that is
    ``sanitize_html``), and it is several times faster than parsing the fragment.
    ``repair=False`` skips mojibake repair, for HTML that was repaired already.
    """
    if "<" in html:
        if _UPPERCASE_TAG.search(html) is None:
            html = _BLOCK_TAG_LOWER.sub(" ", _HIDDEN_LOWER.sub(" ", html))
        else:
            html = _BLOCK_TAG.sub(" ", _HIDDEN.sub(" ", html))
        html = _ANY_TAG.sub("", html)
    if "&" in html:
        html = unescape(html)
    return clean_text(html) if repair else squash(html)
