"""Text folding and phrase search for topic matching (pure functions).

``fold`` maps text to the one form that terms and documents are compared in: Unicode
compatibility forms (full-width and half-width) made ordinary, case folded, combining
accents removed (so "Pekin" equals "Pékin"), typographic apostrophes, dashes and middle
dots unified, and Traditional Chinese converted to Simplified with OpenCC (only for text
that holds CJK ideographs). Match positions are offsets into the folded text.

Latin-script terms match on word boundaries: the character before a term must not be a
Latin letter or digit and the character after it must not be a Latin letter, so
"Alibaba's", "l'Alibaba" and "Qwen3" match but "Alibabaesque" and "Baidus" do not. A
Chinese character is never a boundary obstacle, so "使用Qwen模型" matches "Qwen". Terms
written in Chinese match as substrings.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TypeAlias

import ahocorasick_rs
import opencc

# Latin (with Greek and Cyrillic) letters as they look after folding.
_LETTERS = "a-z\u00b5\u00df-\u00f6\u00f8-\u024f\u0370-\u03ff\u0400-\u052f"
_WORD_CHAR = re.compile(f"[0-9{_LETTERS}]")
_LETTER = re.compile(f"[{_LETTERS}]")
_NOT_AFTER = f"(?![{_LETTERS}])"

_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_MARKS = re.compile("[\u0300-\u036f]")  # one at a time: faster than runs, which are rare
_SEPARATORS = re.compile(r"[\s\-]+")
_SEPARATOR_PATTERN = r"[\s\-]+"

# Typographic apostrophes, dashes and middle dots, each to one form (after NFKD, which
# already maps the full-width ＇, － and ･ to ordinary characters).
_PUNCTUATION = re.compile("[\u2018\u2019\u02bc\u2032\u2010\u2012-\u2015\u2212\u2027\u30fb]")
_PUNCTUATION_FORMS = {"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u2032": "'"}
_MIDDLE_DOTS = frozenset("\u2027\u30fb")
_TOKENS = re.compile(f"[{_LETTERS}]+|[0-9]+")


def _punctuation(m: re.Match[str]) -> str:
    char = m.group()
    if char in _MIDDLE_DOTS:
        return "\u00b7"
    return _PUNCTUATION_FORMS.get(char, "-")


_Node: TypeAlias = "dict[str, _Node]"  # a prefix tree; the key "" marks the end of a key


@cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def has_cjk(text: str) -> bool:
    """True when *text* holds at least one CJK ideograph."""
    return _CJK.search(text) is not None


def fold(text: str) -> str:
    """Return the comparable form of *text* (see the module docstring)."""
    if text.isascii():
        return text.lower()
    folded = _fold_latin1(text)
    return _fold_any(text) if folded is None else folded


def _fold_latin1(text: str) -> str | None:
    """``fold`` of text written in Latin-1 alone (much accented Western text), one table
    lookup a byte; None for any other text.

    For such text ``fold`` works one character at a time: what is left of a character
    after its marks are dropped never combines with its neighbours (no combining mark is
    left, and NFC composes nothing else in this range). So each character maps to its own
    ``fold``, where that is one Latin-1 character; the few that are not (µ, ß, ¼, ½, ¾)
    send the text the long way."""
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        return None
    if len(raw.translate(None, _LATIN1_LONG)) != len(raw):
        return None
    return raw.translate(_LATIN1_TABLE).decode("latin-1")


def _fold_any(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).casefold()
    if _PUNCTUATION.search(folded):
        folded = _PUNCTUATION.sub(_punctuation, folded)
    folded = _MARKS.sub("", folded)
    if folded.isascii():
        return folded
    folded = unicodedata.normalize("NFC", folded)
    if has_cjk(folded):
        folded = str(_t2s().convert(folded))
    return folded


def _latin1_tables() -> tuple[bytes, bytes]:
    """The byte table of ``_fold_latin1`` and the bytes it cannot map (see there)."""
    table = bytearray(range(256))
    long = bytearray()
    for byte in range(256):
        folded = _fold_any(chr(byte))
        if len(folded) == 1 and ord(folded) < 256:
            table[byte] = ord(folded)
        else:
            long.append(byte)
    return bytes(table), bytes(long)


_LATIN1_TABLE, _LATIN1_LONG = _latin1_tables()


def tokens(folded: str) -> frozenset[str]:
    """The runs of Latin letters and of digits in folded text."""
    return frozenset(_TOKENS.findall(folded))


def first_token(key: str) -> str:
    """The run of letters or digits a Latin key starts with ("" for other keys)."""
    m = _TOKENS.match(key)
    return m.group() if m else ""


def canonical(folded: str) -> str:
    """Collapse runs of spaces and hyphens in folded text to one space."""
    return _SEPARATORS.sub(" ", folded).strip()


def is_word_char(char: str) -> bool:
    """True for a Latin (or Greek, Cyrillic) letter or an ASCII digit, once folded."""
    return _WORD_CHAR.match(char) is not None


def needs_left_boundary(key: str) -> bool:
    """True when a term starting like *key* must not follow a letter or digit."""
    return bool(key) and is_word_char(key[0])


def left_boundary_ok(text: str, start: int) -> bool:
    """True when a Latin term may start at *start* in folded *text*."""
    return start == 0 or not is_word_char(text[start - 1])


def trie_pattern(keys: Iterable[str]) -> re.Pattern[str] | None:
    """Compile canonical folded *keys* into one regex shaped like a prefix tree.

    A space in a key matches any run of spaces and hyphens. At each position the longest
    key wins. A key ending in a Latin letter or digit may not be followed by a Latin
    letter; the left boundary is checked by the caller (see ``left_boundary_ok``) so that
    the regex engine can skip quickly to candidate first characters.
    """
    root: _Node = {}
    count = 0
    for key in sorted(set(keys)):
        if not key:
            continue
        node = root
        for char in key:
            node = node.setdefault(char, {})
        node[""] = {}
        count += 1
    if not count:
        return None
    return re.compile(_node_pattern(root, ""))


def _node_pattern(node: _Node, last: str) -> str:
    branches: list[str] = []
    end = False
    for char in sorted(node, key=_branch_order):
        if char == "":
            end = True
            continue
        piece = _SEPARATOR_PATTERN if char == " " else re.escape(char)
        branches.append(piece + _node_pattern(node[char], char))
    if end:
        branches.append(_NOT_AFTER if is_word_char(last) else "")
    if len(branches) == 1:
        return branches[0]
    return "(?:" + "|".join(branches) + ")"


def _branch_order(char: str) -> tuple[int, str]:
    # Children first (longest match), the end of a key last.
    return (1, char) if char == "" else (0, char)


@dataclass(frozen=True, slots=True)
class PhraseSet:
    """Canonical folded phrases compiled into two prefix-tree regexes.

    Phrases that start with a Latin letter or digit are searched only when the text holds
    their first token (a cheap set test that skips most documents); the others (Chinese)
    only when the text is not plain ASCII.
    """

    lookup: Mapping[str, str]  # canonical folded phrase -> phrase as written
    words: re.Pattern[str] | None
    first_tokens: frozenset[str]
    others: re.Pattern[str] | None
    others_in_ascii: bool

    @classmethod
    def build(cls, phrases: Iterable[str]) -> PhraseSet:
        lookup: dict[str, str] = {}
        for phrase in phrases:
            lookup.setdefault(canonical(fold(phrase)), phrase)
        words = [k for k in lookup if needs_left_boundary(k)]
        others = [k for k in lookup if not needs_left_boundary(k)]
        return cls(
            lookup=lookup,
            words=trie_pattern(words),
            first_tokens=frozenset(first_token(k) for k in words),
            others=trie_pattern(others),
            others_in_ascii=any(k[0].isascii() for k in others),
        )

    def find(self, text: FoldedText, *, overlapping: bool = False) -> list[tuple[str, int, int]]:
        """(key, start, end) for each match, longest first; *overlapping* keeps nested ones."""
        found: list[tuple[str, int, int]] = []
        if self.words is not None and not self.first_tokens.isdisjoint(text.tokens):
            found += _scan(self.words, text.folded, overlapping, boundary=True)
        if self.others is not None and (self.others_in_ascii or not text.ascii):
            found += _scan(self.others, text.folded, overlapping, boundary=False)
            found.sort(key=lambda f: (f[1], -f[2]))
            if not overlapping:
                found = _outermost(found)
        return found


def _scan(
    pattern: re.Pattern[str], text: str, overlapping: bool, *, boundary: bool
) -> list[tuple[str, int, int]]:
    found: list[tuple[str, int, int]] = []
    search = pattern.search
    pos = 0
    while (m := search(text, pos)) is not None:
        start = m.start()
        if boundary and not left_boundary_ok(text, start):
            pos = start + 1
            continue
        found.append((canonical(m.group()), start, m.end()))
        pos = start + 1 if overlapping else max(m.end(), start + 1)
    return found


def _outermost(found: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    kept: list[tuple[str, int, int]] = []
    for item in found:
        if not kept or item[1] >= kept[-1][2]:
            kept.append(item)
    return kept


@dataclass(frozen=True, slots=True)
class FoldedText:
    """One field's folded text and its tokens."""

    folded: str
    tokens: frozenset[str]
    ascii: bool

    @classmethod
    def of(cls, folded: str) -> FoldedText:
        if not folded:
            return _EMPTY
        return cls(folded, tokens(folded), folded.isascii())


_EMPTY = FoldedText("", frozenset(), True)


class AnchorSet:
    """A prefilter for many phrase sets at once: one Aho-Corasick scan of a folded text
    tells which sets may match in it.

    The scan reads the text with each run of spaces and hyphens made one space, as
    canonical phrases are written, and checks the same word boundaries as a real match
    (a phrase starting with a Latin letter or digit must not follow one; one ending so must
    not be followed by a letter). The answer can only be too wide, never too narrow: the
    sets it names are then searched in full, with positions.
    """

    def __init__(self, sets: Iterable[Iterable[str]]) -> None:
        owners: dict[str, set[int]] = {}
        for index, phrases in enumerate(sets):
            for phrase in phrases:
                if phrase:
                    owners.setdefault(phrase, set()).add(index)
        phrases = list(owners)
        self._owners = [frozenset(owners[p]) for p in phrases]
        self._left = [is_word_char(p[0]) for p in phrases]
        self._right = [is_word_char(p[-1]) for p in phrases]
        self._automaton = (
            ahocorasick_rs.AhoCorasick(  # a DFA: a few hundred phrases, scanned 3x faster
                phrases,
                matchkind=ahocorasick_rs.MatchKind.Standard,
                implementation=ahocorasick_rs.Implementation.DFA,
            )
            if phrases
            else None
        )

    def owners_in(self, folded: str, into: set[int]) -> None:
        """Add to *into* the index of every set that may match in *folded*."""
        if self._automaton is None or not folded:
            return
        text = folded.replace("-", " ") if "-" in folded else folded
        if "  " in text or not text.isprintable():  # any other whitespace, or runs
            text = " ".join(text.split())
        size = len(text)
        for pid, start, end in self._automaton.find_matches_as_indexes(text, overlapping=True):
            if self._left[pid] and start and _WORD_CHAR.match(text[start - 1]):
                continue
            if self._right[pid] and end < size and _LETTER.match(text[end]):
                continue
            into.update(self._owners[pid])
