"""Story identity and cross-feed deduplication (pure).

``story_keys`` computes the keys of one item; the store indexes ``url_key``, ``title_key``
and ``bands`` and hands back candidates; ``decide`` says whether the item is a story the
store already holds, and why. ``churn_check`` spots feeds that regenerated their entry
keys. Thresholds and their reasons are in ``docs/dedup.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import filterfalse

from feedbot.clock import as_utc
from feedbot.relevance.similarity import (
    GUARANTEED_HAMMING,
    band_keys,
    hamming,
    jaccard,
    normalize_text,
    normalize_title,
    shingles,
    simhash,
    term_id,
    term_ids,
    title_key_and_names,
    units,
)
from feedbot.relevance.urls import canonical_url, url_key

__all__ = [
    "DEFAULT_WINDOW",
    "GUARANTEED_HAMMING",
    "MIN_JACCARD",
    "MIN_SHINGLES",
    "MIN_TITLE_UNITS",
    "Candidate",
    "ChurnDecision",
    "DedupDecision",
    "StoryKeys",
    "band_keys",
    "canonical_url",
    "churn_check",
    "churn_index",
    "could_decide",
    "decide",
    "normalize_title",
    "settled_by_exact_match",
    "story_keys",
    "url_key",
]

log = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(hours=72)
MIN_JACCARD = 0.5  # share of shingles two near-identical texts have in common
MIN_SHINGLES = 8  # shorter texts are too small to compare; only exact titles count
MIN_TITLE_UNITS = 3  # "Daily briefing" titles repeat across different stories


@dataclass(frozen=True, slots=True)
class StoryKeys:
    """Identity keys of one item.

    ``shingles`` are CRC-32 ids of word pairs (CJK: character pairs) of the normalised
    title and summary, ``vocab`` the ids of their single words and characters, and
    ``names`` the title's capitalised words plus every number in title or summary.
    ``bands`` is empty when the text is too short to compare.
    """

    url_key: str | None
    title_key: str
    simhash: int
    bands: tuple[str, ...]
    shingles: frozenset[int]
    names: frozenset[str] = frozenset()
    vocab: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored story that shares at least one key with the new item."""

    article_id: str
    keys: StoryKeys
    published: datetime


@dataclass(frozen=True, slots=True)
class DedupDecision:
    """``duplicate_of`` is the stored article id, or ``None`` for a new story."""

    duplicate_of: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class ChurnDecision:
    """Whether a poll looks like a feed that re-keyed its entries; ``rekey`` maps each
    new entry key to the stored entry key it replaces (empty unless ``churned``)."""

    churned: bool
    rekey: Mapping[str, str]
    reason: str


def story_keys(
    title: str, summary: str, link: str | None, *, sites: Collection[str] = ()
) -> StoryKeys:
    """Keys of an item from its plain-text title and summary and its link."""
    title_key, names = title_key_and_names(title, sites=sites)
    text = f"{title_key} {normalize_text(summary)}" if summary else title_key
    parts = units(text)
    ids = shingles(parts)
    value = simhash(ids)
    bands = band_keys(value) if len(ids) >= MIN_SHINGLES else ()
    return StoryKeys(
        url_key=url_key(link),
        title_key=title_key,
        simhash=value,
        bands=bands,
        shingles=ids,
        names=names | frozenset(filterfalse(str.isalpha, parts)),  # numbers
        vocab=term_ids(parts),
    )


def _unmatched_names(a: StoryKeys, b: StoryKeys) -> list[str]:
    return sorted(n for n in a.names if term_id(n) not in b.vocab)


def _near(a: StoryKeys, b: StoryKeys, article_id: str) -> tuple[int, float] | None:
    """(hamming, jaccard) when *a* and *b* are near-identical texts, else ``None``."""
    if not (a.bands and b.bands):
        return None
    similarity = jaccard(a.shingles, b.shingles)
    if similarity < MIN_JACCARD:
        return None
    distance = hamming(a.simhash, b.simhash)
    ours, theirs = _unmatched_names(a, b), _unmatched_names(b, a)
    if ours and theirs:
        log.debug(
            "not a duplicate of %s: different names or numbers (%s / %s), jaccard=%.2f",
            article_id,
            ",".join(ours),
            ",".join(theirs),
            similarity,
        )
        return None
    return distance, similarity


def could_decide(
    new: StoryKeys,
    url_key: str | None,
    title_key: str,
    bands: Sequence[str],
    shingles: Collection[int],
) -> bool:
    """Could a stored story with these keys (*shingles*: its distinct shingle ids, in any
    collection) be the one ``decide`` names for *new*?

    False only when no rule of ``decide`` can pick it: another canonical URL, another title,
    and shingles less alike than ``MIN_JACCARD`` (or no bands). Such a candidate never
    changes the decision, so it can be dropped before its keys are built into sets.
    """
    if new.url_key is not None and url_key == new.url_key:
        return True
    if title_key == new.title_key:
        return True
    return bool(new.bands and bands) and jaccard(new.shingles, shingles) >= MIN_JACCARD


def settled_by_exact_match(new: StoryKeys) -> tuple[bool, bool]:
    """Which exact matches decide *new* whatever other candidates there are: (a stored
    story with the same canonical URL, at any date; one with the same title, within the
    window). ``decide`` tries those two rules first, and every stored story that either
    rule can pick is found by its exact key, so band candidates cannot change the outcome
    once such a match is known."""
    return new.url_key is not None, len(units(new.title_key)) >= MIN_TITLE_UNITS


def decide(
    new: StoryKeys,
    published: datetime,
    candidates: Sequence[Candidate],
    *,
    window: timedelta = DEFAULT_WINDOW,
) -> DedupDecision:
    """Is *new* a story one of *candidates* already reports?

    In order: the same canonical URL (at any time); the same normalised title (at least
    ``MIN_TITLE_UNITS`` words) published within *window*; near-identical text within
    *window*: shingle Jaccard ≥ ``MIN_JACCARD``, unless each item names something (a
    capitalised title word, a number) the other never mentions. SimHash only finds
    candidates (see ``docs/dedup.md``). Among several matches the earliest published wins
    (ties: smallest id); among near-identical ones the most similar.
    """
    when = as_utc(published)
    stamped = sorted(
        ((as_utc(c.published), c.article_id, c) for c in candidates), key=lambda s: s[:2]
    )
    ordered = [c for _, _, c in stamped]
    if new.url_key is not None:
        for cand in ordered:
            if cand.keys.url_key == new.url_key:
                return DedupDecision(cand.article_id, "same canonical URL")
    recent = [c for at, _, c in stamped if abs(at - when) <= window]
    hours = f"{window.total_seconds() / 3600:g}h"
    if len(units(new.title_key)) >= MIN_TITLE_UNITS:
        for cand in recent:
            if cand.keys.title_key == new.title_key:
                return DedupDecision(cand.article_id, f"same title within {hours}")
    best: tuple[int, float, Candidate] | None = None
    for cand in recent:
        near = _near(new, cand.keys, cand.article_id)
        if near is not None and (best is None or (near[0], -near[1]) < (best[0], -best[1])):
            best = (near[0], near[1], cand)
    if best is not None:
        distance, similarity, cand = best
        return DedupDecision(
            cand.article_id,
            f"near-identical text (hamming={distance}, jaccard={similarity:.2f})",
        )
    return DedupDecision(None, "new story")


def churn_index(entries: Iterable[tuple[str, str | None, str]]) -> dict[str, str]:
    """The ``known`` mapping for :func:`churn_check` from stored ``(key, link, title)``:
    canonical link and title key (when long enough) → stored entry key."""
    known: dict[str, str] = {}
    for key, link, title in entries:
        link_key = url_key(link)
        if link_key is not None:
            known.setdefault(link_key, key)
        title_key = normalize_title(title)
        if len(units(title_key)) >= MIN_TITLE_UNITS:
            known.setdefault(title_key, key)
    return known


def churn_check(
    new_entries: Sequence[tuple[str, str | None, str]],
    known: Mapping[str, str],
    *,
    threshold: float = 0.5,
) -> ChurnDecision:
    """Did a known feed regenerate its entry keys (CMS migration, http→https, new GUIDs)?

    *new_entries* are ``(key, link, title)`` of one poll; *known* maps canonical links and
    title keys of the feed's stored entries to their keys (see :func:`churn_index`). When
    at least *threshold* of the entries have unknown keys but match a stored entry by link
    (or else by title), the feed churned and every such entry is re-keyed to the stored
    one. Each stored key is claimed at most once.
    """
    total = len(new_entries)
    if not known:
        return ChurnDecision(False, {}, "no stored entries for this feed")
    if total == 0:
        return ChurnDecision(False, {}, "no entries in this poll")
    stored_keys = set(known.values())
    rekey: dict[str, str] = {}
    claimed: set[str] = set()
    unknown = 0
    for key, link, title in new_entries:
        if key in stored_keys:
            continue
        unknown += 1
        link_key = url_key(link)
        old = known.get(link_key) if link_key is not None else None
        if old is None:
            title_key = normalize_title(title)
            if len(units(title_key)) >= MIN_TITLE_UNITS:
                old = known.get(title_key)
        if old is not None and old not in claimed and key not in rekey:
            rekey[key] = old
            claimed.add(old)
    share = len(rekey) / total
    summary = f"{len(rekey)} of {total} entries have new keys but match stored entries"
    if rekey and share >= threshold:
        log.debug("entry keys churned: %s", summary)
        return ChurnDecision(True, rekey, summary)
    return ChurnDecision(False, {}, f"{summary} ({unknown} unknown keys); below {threshold:g}")
