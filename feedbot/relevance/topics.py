"""Multilingual topic matching (pure): topic specs in, matched terms and positions out.

A topic is a list of terms (any script), phrase-level exclusions that veto only the term
matches they overlap, regexes, and context-gated terms: ambiguous names that count only
when one of their context words appears in the document, or when an ungated term of the
same topic matched. A topic may include other topics: it matches whenever they do.
Positions in a ``TopicMatch`` are offsets into the folded field text that ``field_text``
returns (``normalize.fold`` of the visible text).
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from feedbot.models import ArticleData, StoredArticle, TopicMatch
from feedbot.relevance.normalize import AnchorSet, FoldedText, PhraseSet, canonical, fold
from feedbot.text import html_to_text

_log = logging.getLogger(__name__)

FIELDS = ("title", "summary", "content", "categories", "link")
DEFAULT_FIELDS = ("title", "summary", "content", "categories")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_MARKUP = re.compile(r"<[A-Za-z!/]|&(?:#\d+|#x[0-9A-Fa-f]+|[A-Za-z]+);")
_CATEGORY_SEPARATOR = " | "
_KEYS = frozenset(
    {"description", "terms", "exclude", "regexes", "fields", "includes", "context_terms"}
)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """What makes a document belong to a topic. Invalid specs raise ``ValueError``."""

    name: str
    terms: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    regexes: tuple[str, ...] = ()
    fields: tuple[str, ...] = DEFAULT_FIELDS
    includes: tuple[str, ...] = ()
    # (term, context words): the term counts only next to one of its context words.
    context_terms: tuple[tuple[str, tuple[str, ...]], ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"name: {self.name!r} is not a valid topic name")
        for key in ("terms", "exclude", "includes"):
            _check_words(key, getattr(self, key))
        for pattern in self.regexes:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"regexes: {pattern!r}: {exc}") from exc
        if not self.fields or any(f not in FIELDS for f in self.fields):
            raise ValueError(f"fields: expected some of {', '.join(FIELDS)}, got {self.fields}")
        if self.name in self.includes:
            raise ValueError("includes: a topic cannot include itself")
        plain = {canonical(fold(t)) for t in self.terms}
        for term, words in self.context_terms:
            _check_words("context_terms", (term,))
            if not words:
                raise ValueError(f"context_terms.{term}: needs at least one context word")
            _check_words(f"context_terms.{term}", words)
            if canonical(fold(term)) in plain:
                raise ValueError(f"context_terms.{term}: also listed in terms")
        if not (self.terms or self.regexes or self.context_terms or self.includes):
            raise ValueError("terms: a topic needs terms, regexes, context_terms or includes")


def _check_words(key: str, words: object) -> None:
    if not isinstance(words, tuple) or not all(isinstance(w, str) for w in words):
        raise ValueError(f"{key}: expected a list of strings")
    for word in words:
        if not canonical(fold(word)):
            raise ValueError(f"{key}: empty term {word!r}")


def topic_specs_from_mapping(
    mapping: Mapping[str, object], *, known: Iterable[str] = ()
) -> dict[str, TopicSpec]:
    """Build specs from ``[topics.NAME]`` tables; errors name the offending key.

    ``includes`` may name a topic of *mapping* or one of *known*.
    """
    specs: dict[str, TopicSpec] = {}
    for name, table in mapping.items():
        where = f"topics.{name}"
        if not isinstance(table, Mapping):
            raise ValueError(f"{where}: expected a table")
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r}")
        try:
            specs[name] = TopicSpec(
                name=name,
                terms=_strings(table, "terms", ()),
                exclude=_strings(table, "exclude", ()),
                regexes=_strings(table, "regexes", ()),
                fields=_strings(table, "fields", DEFAULT_FIELDS),
                includes=_strings(table, "includes", ()),
                context_terms=_context(table.get("context_terms", {})),
                description=_string(table.get("description", "")),
            )
        except ValueError as exc:
            raise ValueError(f"{where}.{exc}") from exc
    names = set(specs) | set(known)
    for name, spec in specs.items():
        for other in spec.includes:
            if other not in names:
                raise ValueError(f"topics.{name}.includes: unknown topic {other!r}")
    return specs


def _strings(table: Mapping[str, object], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = table.get(key, default)
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"{key}: expected a list of strings")
    return tuple(value)


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("description: expected a string")
    return value


def _context(value: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, Mapping):
        raise ValueError("context_terms: expected a table of term = [context words]")
    out = []
    for term, words in value.items():
        if isinstance(words, str) or not isinstance(words, list | tuple):
            raise ValueError(f"context_terms.{term}: expected a list of strings")
        out.append((str(term), tuple(words)))
    return tuple(out)


@cache
def _default_specs() -> tuple[TopicSpec, ...]:
    source = resources.files("feedbot.relevance").joinpath("default_topics.toml")
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    return tuple(topic_specs_from_mapping(data["topics"]).values())


def load_default_topics() -> dict[str, TopicSpec]:
    """The curated topics shipped in ``default_topics.toml``, by name."""
    return {spec.name: spec for spec in _default_specs()}


@dataclass(frozen=True, slots=True)
class MatchInput:
    """The parts of an entry that topics look at. Summary and content may be HTML.

    ``summary_in_content`` says the summary was cut from the start of the content (feeds
    without a separate summary): a topic that reads the content then skips the summary,
    whose words it would only find twice.
    """

    title: str = ""
    summary: str = ""
    content: str = ""
    categories: tuple[str, ...] = ()
    link: str | None = None
    summary_in_content: bool = False

    @classmethod
    def from_article(cls, article: ArticleData | StoredArticle) -> MatchInput:
        return cls(
            title=article.title,
            summary=article.summary,
            content=article.content,
            categories=article.categories,
            link=article.link,
        )


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Matched topics (sorted), the term matches behind each, and the vetoing exclusions.

    ``matches`` are grouped by topic in ``topics`` order; a topic that includes others
    repeats their matches under its own name, so filtering by topic is always enough.
    """

    topics: tuple[str, ...]
    matches: tuple[TopicMatch, ...]
    exclusions: tuple[tuple[str, str, str], ...]  # (topic, exclusion phrase, field)

    @property
    def matched_terms(self) -> tuple[str, ...]:
        """Distinct matched terms, sorted."""
        return tuple(sorted({m.term for m in self.matches}))


_NO_MATCH = MatchResult((), (), ())


def field_text(doc: MatchInput, field: str) -> str:
    """The folded text of one field, as match positions refer to it."""
    if field == "categories":
        if not doc.categories:
            return ""
        raw = _CATEGORY_SEPARATOR.join(doc.categories)
    elif field == "link":
        raw = doc.link or ""
    else:
        raw = getattr(doc, field)
        if raw and ("<" in raw or "&" in raw) and _MARKUP.search(raw):
            # HTML (an article's content), or text holding markup: strip it, repair nothing
            # (entries and articles hold repaired text already)
            raw = html_to_text(raw, repair=False)
    return fold(raw)


def field_texts(doc: MatchInput) -> dict[str, str]:
    """Every field's folded text, keyed by field name."""
    return {f: field_text(doc, f) for f in FIELDS}


@dataclass(frozen=True, slots=True)
class _Topic:
    name: str
    fields: tuple[str, ...]
    terms: PhraseSet  # plain and gated terms together: the longest wins
    gates: Mapping[str, frozenset[str]]  # gated canonical term -> canonical context words
    context: PhraseSet
    exclude: PhraseSet
    regexes: tuple[tuple[str, re.Pattern[str]], ...]

    @classmethod
    def build(cls, spec: TopicSpec) -> _Topic:
        gated = dict(spec.context_terms)
        words = [w for ws in gated.values() for w in ws]
        gates = {
            canonical(fold(t)): frozenset(canonical(fold(w)) for w in ws) for t, ws in gated.items()
        }
        return cls(
            name=spec.name,
            fields=spec.fields,
            terms=PhraseSet.build((*spec.terms, *gated)),
            gates=gates,
            context=PhraseSet.build(words),
            exclude=PhraseSet.build(spec.exclude),
            regexes=tuple((p, re.compile(p)) for p in spec.regexes),
        )


class Matcher:
    """Topic specs compiled once; ``match`` is pure and the matcher holds no mutable state."""

    def __init__(self, specs: Iterable[TopicSpec]) -> None:
        specs = tuple(specs)
        by_name = {s.name: s for s in specs}
        if len(by_name) != len(specs):
            raise ValueError("topics: duplicate topic name")
        for spec in specs:
            for other in spec.includes:
                if other not in by_name:
                    raise ValueError(f"topics.{spec.name}.includes: unknown topic {other!r}")
        self._topics = tuple(_Topic.build(s) for s in specs)
        self._closure = {s.name: _closure(s.name, by_name) for s in specs}
        self._fields = tuple(f for f in FIELDS if any(f in s.fields for s in specs))
        # topics that a text without any of their anchors cannot match are skipped
        self._anchors = AnchorSet(t.terms.lookup for t in self._topics)
        self._always = frozenset(i for i, t in enumerate(self._topics) if t.regexes)
        self._scanned = {  # the fields some topic reads, by MatchInput.summary_in_content
            cut: tuple(
                f for f in self._fields
                if any(f in _fields(t, MatchInput(summary_in_content=cut)) for t in self._topics)
            )
            for cut in (False, True)
        }  # fmt: skip

    @classmethod
    def default(cls) -> Matcher:
        """A matcher for the shipped default topics."""
        return cls(load_default_topics().values())

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(sorted(t.name for t in self._topics))

    def match(self, doc: MatchInput) -> MatchResult:
        texts = _Texts(doc)
        candidates = self._candidates(doc, texts)
        if not candidates:  # most entries of most feeds
            return _NO_MATCH
        exclusions: set[tuple[str, str, str]] = set()
        own: dict[str, list[TopicMatch]] = {}
        for index in candidates:
            topic = self._topics[index]
            found = self._match_topic(topic, doc, texts, exclusions, index)
            if found:
                own[topic.name] = found
        topics = sorted(name for name, inc in self._closure.items() if not inc.isdisjoint(own))
        matches: list[TopicMatch] = []
        for name in topics:
            for source in (name, *sorted(self._closure[name] - {name})):
                matches.extend(
                    m if source == name else TopicMatch(name, m.term, m.field, m.start, m.end)
                    for m in own.get(source, ())
                )
        return MatchResult(tuple(topics), tuple(matches), tuple(sorted(exclusions)))

    def _candidates(self, doc: MatchInput, texts: _Texts) -> list[int]:
        """The topics that may match *doc*, in order: those with an anchor in a field
        they read, and those with regexes."""
        found = set(self._always)
        if len(found) < len(self._topics):
            for field in self._scanned[doc.summary_in_content]:
                owners = texts.anchored[field] = set()
                self._anchors.owners_in(texts.plain(field), owners)
                found |= owners
        return sorted(found)

    def _match_topic(
        self,
        topic: _Topic,
        doc: MatchInput,
        texts: _Texts,
        exclusions: set[tuple[str, str, str]],
        index: int,
    ) -> list[TopicMatch]:
        plain: list[TopicMatch] = []
        gated: list[tuple[TopicMatch, frozenset[str]]] = []
        for field in _fields(topic, doc):
            anchored = texts.anchored.get(field)
            if not topic.regexes and anchored is not None and index not in anchored:
                continue  # none of the topic's terms can be in this field (``AnchorSet``)
            text = _text(doc, field, texts)
            if not text.folded:
                continue
            hits = [(topic.terms.lookup[k], k, s, e) for k, s, e in topic.terms.find(text)]
            for source, regex in topic.regexes:
                hits.extend((source, "", m.start(), m.end()) for m in regex.finditer(text.folded))
            if not hits:
                continue
            vetoes = topic.exclude.find(text, overlapping=True)
            for term, key, start, end in hits:
                veto = next((k for k, s, e in vetoes if s < end and start < e), None)
                if veto is not None:
                    exclusions.add((topic.name, topic.exclude.lookup[veto], field))
                    _log.debug("topic %s: %r in %s vetoed by %r", topic.name, term, field, veto)
                    continue
                match = TopicMatch(topic.name, term, field, start, end)
                if key in topic.gates:
                    gated.append((match, topic.gates[key]))
                else:
                    plain.append(match)
        if gated and not plain:
            seen = self._context_words(topic, doc, texts)
            gated = [(m, words) for m, words in gated if words & seen]
        return sorted(plain + [m for m, _ in gated], key=_position)

    @staticmethod
    def _context_words(topic: _Topic, doc: MatchInput, texts: _Texts) -> set[str]:
        seen: set[str] = set()
        for field in _fields(topic, doc):
            text = _text(doc, field, texts)
            seen.update(k for k, _, _ in topic.context.find(text, overlapping=True))
        return seen


def _fields(topic: _Topic, doc: MatchInput) -> tuple[str, ...]:
    if doc.summary_in_content and "content" in topic.fields and "summary" in topic.fields:
        return tuple(f for f in topic.fields if f != "summary")
    return topic.fields


class _Texts:
    """One document's folded fields, made when first read (tokens only when searched)."""

    __slots__ = ("anchored", "doc", "folded", "searched")

    def __init__(self, doc: MatchInput) -> None:
        self.doc = doc
        self.folded: dict[str, str] = {}
        self.searched: dict[str, FoldedText] = {}
        self.anchored: dict[str, set[int]] = {}  # field -> topics with an anchor in it

    def plain(self, field: str) -> str:
        text = self.folded.get(field)
        if text is None:
            text = self.folded[field] = field_text(self.doc, field)
        return text


def _text(doc: MatchInput, field: str, cache: _Texts) -> FoldedText:
    text = cache.searched.get(field)
    if text is None:
        text = cache.searched[field] = FoldedText.of(cache.plain(field))
    return text


def _position(m: TopicMatch) -> tuple[int, int, int, str]:
    return (FIELDS.index(m.field), m.start, m.end, m.term)


def _closure(name: str, by_name: Mapping[str, TopicSpec]) -> frozenset[str]:
    """*name* and every topic it includes, directly or not (cycles are harmless)."""
    seen = {name}
    todo = [name]
    while todo:
        for other in by_name[todo.pop()].includes:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return frozenset(seen)
