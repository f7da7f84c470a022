"""Text keys for story identity: normalised titles, shingles, 64-bit SimHash and LSH bands.

Everything here is pure and deterministic across processes and Python versions: the
shingle and SimHash values are stored, so they never depend on ``hash()`` or a seed.
"""

from __future__ import annotations

import re
import sys
import unicodedata
import zlib
from array import array
from collections.abc import Collection, Iterable, Sequence
from functools import cache
from hashlib import blake2b
from itertools import pairwise

import opencc

__all__ = [
    "BANDS",
    "BAND_BITS",
    "GUARANTEED_HAMMING",
    "MAX_UNITS",
    "band_keys",
    "hamming",
    "jaccard",
    "normalize_text",
    "normalize_title",
    "shingles",
    "simhash",
    "strip_site_suffix",
    "term_id",
    "term_ids",
    "title_key_and_names",
    "title_names",
    "units",
]

BANDS = 8
BAND_BITS = 64 // BANDS
GUARANTEED_HAMMING = BANDS - 1  # hashes this close always share a band key (pigeonhole)
MAX_UNITS = 256  # words/CJK characters of title + summary that count

_CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = re.compile(f"[{_CJK_CHARS}]")
# A unit is one CJK character or one run of other letters/digits.
_CJK_GAP = re.compile(f"(?<=[{_CJK_CHARS}]) | (?=[{_CJK_CHARS}])")
_UNIT = re.compile(f"[{_CJK_CHARS}]|[^\\W_{_CJK_CHARS}]+")
_WORD = re.compile(r"[^\W_]+")
_DIGIT = re.compile(r"\d")

# Latin accents and ligatures: a table for the common letters, NFD for the rest.
_LIGATURE_MAP = {"œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ı": "i", "ß": "ss"}
_ACCENTS = re.compile("[\u0300-\u036f]+")
_RARE_LATIN = re.compile("[\u0300-\u036f\u1e00-\u1eff]")


def _strip_accents_nfd(text: str) -> str:
    return unicodedata.normalize("NFC", _ACCENTS.sub("", unicodedata.normalize("NFD", text)))


_PLAIN_LATIN = {
    c: _LIGATURE_MAP.get(c) or _strip_accents_nfd(c) for c in map(chr, range(0xC0, 0x250))
}
_PLAIN_LATIN = {c: plain for c, plain in _PLAIN_LATIN.items() if plain != c}
_ACCENTED = re.compile("[" + "".join(_PLAIN_LATIN) + "]")

# Separators before a trailing site name: " - Site", " | Site", "_新浪财经".
_SEPARATORS = (" - ", " – ", " — ", " · ", " • ", " :: ", "|", "_")
_SITE_PARTICLES = frozenset({"le", "la", "les", "l", "de", "du", "des", "d", "the", "of", "and"})
_SITE_MAX_WORDS = 4
_SITE_MAX_CHARS = 30
_SITE_MAX_CJK = 10


@cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def normalize_text(text: str) -> str:
    """NFKC, casefold, Latin accents stripped, Traditional Chinese folded to Simplified."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():
        return text
    if _RARE_LATIN.search(text):
        text = _strip_accents_nfd(text)
    if _ACCENTED.search(text):
        text = _ACCENTED.sub(lambda m: _PLAIN_LATIN[m[0]], text)
    if _CJK.search(text):
        text = _t2s().convert(text)
    return text


def units(text: str) -> list[str]:
    """Words and CJK characters of already normalised *text* (punctuation dropped), at
    most ``MAX_UNITS``."""
    found = _UNIT.findall(text) if _CJK.search(text) else _WORD.findall(text)
    return found[:MAX_UNITS]


def _join(parts: Sequence[str]) -> str:
    """Join units with spaces, except next to CJK characters (which use none)."""
    joined = " ".join(parts)
    if _CJK.search(joined) is None:  # one search, not a match per unit
        return joined
    # a unit is one CJK character or holds none, and none holds a space: the spaces that
    # go are those with a CJK character on either side
    return _CJK_GAP.sub("", joined)


# --- titles -------------------------------------------------------------------------------


def _last_separator(title: str) -> tuple[int, int] | None:
    """(start, end) of the last site-name separator in *title*."""
    best: tuple[int, int] | None = None
    for sep in _SEPARATORS:
        at = title.rfind(sep)
        if at <= 0 or (best is not None and at <= best[0]):
            continue
        if sep == "_" and not (_CJK.match(title, at - 1) or _CJK.match(title, at + 1)):
            continue  # underscores separate only in CJK titles (portal suffixes)
        best = (at, at + len(sep))
    return best


def _looks_like_site(suffix: str) -> bool:
    if _CJK.search(suffix):
        return len(suffix) <= _SITE_MAX_CJK
    words = suffix.split()
    if not words or len(words) > _SITE_MAX_WORDS or len(suffix) > _SITE_MAX_CHARS:
        return False
    if "." in suffix and " " not in suffix:  # lemonde.fr, scmp.com
        return True
    return all(
        w[0].isupper() or w[0].isdigit() or w.lower().strip("'’") in _SITE_PARTICLES for w in words
    )


def _substantial(head: str, suffix: str) -> bool:
    if _CJK.search(head):
        return len(_CJK.findall(head)) >= 6 and len(head) > len(suffix)
    words = len(head.split())
    return words >= 3 and words >= len(suffix.split())


def strip_site_suffix(title: str, sites: Collection[str] = ()) -> str:
    """Drop up to two trailing site-name parts (`` - Reuters``, `` | Le Monde``).

    A part is dropped when it is one of *sites* (compared casefolded), or when it looks
    like a site name (short, every word capitalised, or a bare domain) and what is left is
    still a headline (at least 3 words and no fewer words than the part, or 6 CJK
    characters).
    """
    known = {s.casefold().strip() for s in sites}
    for _ in range(2):
        sep = _last_separator(title)
        if sep is None:
            break
        head, suffix = title[: sep[0]].strip(), title[sep[1] :].strip()
        if not head:
            break
        if suffix.casefold() not in known and not (
            _looks_like_site(suffix) and _substantial(head, suffix)
        ):
            break
        title = head
    return title


def title_key_and_names(title: str, *, sites: Collection[str] = ()) -> tuple[str, frozenset[str]]:
    """:func:`normalize_title` and :func:`title_names` in one pass."""
    title = _without_site(title, sites)
    key = _title_key(title)
    named = [w for w in units(title) if w[0].isupper() or _DIGIT.search(w)]
    return key, frozenset(map(normalize_text, named))


def normalize_title(title: str, *, sites: Collection[str] = ()) -> str:
    """The comparison key of a title: site suffix dropped, text normalised, punctuation
    and whitespace folded (CJK characters are joined without spaces).

    *sites* are names known to be appended by the source (its feed title, say).
    """
    return _title_key(_without_site(title, sites))


def _without_site(title: str, sites: Collection[str]) -> str:
    return strip_site_suffix(unicodedata.normalize("NFKC", title).strip(), sites)


def _title_key(title: str) -> str:
    return _join(units(normalize_text(title)))


def title_names(title: str, *, sites: Collection[str] = ()) -> frozenset[str]:
    """Normalised title words that name something: capitalised, or holding a digit.

    ``"Tencent fined by SAMR"`` gives ``{"tencent", "samr"}``; ``"Q2"`` gives ``"q2"``.
    """
    return title_key_and_names(title, sites=sites)[1]


# --- shingles -----------------------------------------------------------------------------


def term_id(text: str) -> int:
    """Stable 32-bit id of a unit or shingle (CRC-32 of its UTF-8)."""
    return zlib.crc32(text.encode())


def term_ids(texts: Iterable[str]) -> frozenset[int]:
    """:func:`term_id` of each text."""
    return frozenset(map(zlib.crc32, map(str.encode, texts)))


def shingles(parts: Sequence[str]) -> frozenset[int]:
    """Compact shingles of a unit sequence: ``term_id("a b")`` of each pair of
    neighbouring units.

    Latin text gives 2-word shingles, CJK text character bigrams. A single unit is its
    own shingle; no units give the empty set.
    """
    if len(parts) < 2:
        return term_ids(parts)
    return term_ids(map(" ".join, pairwise(parts)))


# --- SimHash ------------------------------------------------------------------------------
# Each 32-bit shingle id is mapped to 64 pseudo-random bits by simple tabulation hashing:
# output byte k is T[k][0][b0] ^ T[k][1][b1] ^ T[k][2][b2] ^ T[k][3][b3] over the id's
# bytes. The work runs column-wise in C: ``bytes.translate`` maps one id byte of every
# shingle at once, the four columns are XORed as big integers, and ``int.bit_count`` of
# a masked column counts how many shingles set each bit.

_ID_TYPE = next(t for t in "IL" if array(t).itemsize == 4)


@cache
def _tables() -> tuple[tuple[bytes, ...], ...]:
    def table(k: int, j: int) -> bytes:
        return b"".join(
            blake2b(f"feedbot-simhash-v1:{k}:{j}:{p}".encode(), digest_size=64).digest()
            for p in range(4)
        )

    return tuple(tuple(table(k, j) for j in range(4)) for k in range(8))


@cache
def _bit_masks(n: int) -> tuple[int, ...]:
    return tuple(int.from_bytes(bytes([1 << b]) * n, "little") for b in range(8))


@cache
def _majority(n: int) -> bytes:
    """A ``bytes.translate`` table: count -> b"1" when count > n/2, else b"0"."""
    return bytes(ord("1") if 2 * count > n else ord("0") for count in range(256))


def simhash(ids: frozenset[int]) -> int:
    """64-bit SimHash of at most 255 32-bit shingle ids: bit i is set when more than half
    the shingles' hashes set it (0 for the empty set)."""
    n = len(ids)
    if n == 0:
        return 0
    if n > MAX_UNITS - 1:
        raise ValueError(f"simhash takes at most {MAX_UNITS - 1} shingles, got {n}")
    packed = array(_ID_TYPE, ids)
    if sys.byteorder == "big":
        packed.byteswap()
    raw = packed.tobytes()
    c0, c1, c2, c3 = raw[0::4], raw[1::4], raw[2::4], raw[3::4]
    masks = _bit_masks(n)
    counts = bytearray()
    for t0, t1, t2, t3 in _tables():
        column = (
            int.from_bytes(c0.translate(t0), "little")
            ^ int.from_bytes(c1.translate(t1), "little")
            ^ int.from_bytes(c2.translate(t2), "little")
            ^ int.from_bytes(c3.translate(t3), "little")
        )
        counts.extend(map(int.bit_count, map(column.__and__, masks)))
    return int(counts[::-1].translate(_majority(n)), 2)


def hamming(a: int, b: int) -> int:
    """Number of differing bits."""
    return (a ^ b).bit_count()


def jaccard(a: frozenset[int], b: Collection[int]) -> float:
    """|a ∩ b| / |a ∪ b|; 0.0 when both are empty (the union is counted, never built).

    *b* may be any collection of distinct ids (a stored sketch's array, say)."""
    common = len(a.intersection(b))
    union = len(a) + len(b) - common
    return common / union if union else 0.0


def band_keys(value: int) -> tuple[str, ...]:
    """LSH keys of a SimHash: ``BANDS`` slices of ``BAND_BITS`` bits, ``"b{i}:{hex}"``,
    lowest bits first. Two hashes at Hamming distance ≤ ``GUARANTEED_HAMMING`` share at
    least one key (pigeonhole).
    """
    digits = f"{value:016x}"
    return tuple([f"b{i}:{digits[start:end]}" for i, start, end in _BAND_SLICES])


_BAND_SLICES = tuple(
    (i, 16 - (i + 1) * (BAND_BITS // 4), 16 - i * (BAND_BITS // 4)) for i in range(BANDS)
)
