"""Why an entry matched (pure): a ``MatchResult`` turned into a report or a JSON object.

Positions are offsets into the folded field text (``topics.field_text``), as in
``TopicMatch``; a snippet shows that folded text around the match with the match in
``[brackets]``. Exclusions are located by searching their phrase in the field again,
since ``MatchResult`` only says which phrase fired in which field.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from feedbot.relevance.normalize import FoldedText, PhraseSet
from feedbot.relevance.topics import MatchInput, MatchResult, field_text

CONTEXT = 30  # characters of folded text shown on each side of a match
_SPACE = re.compile(r"\s")
_HTML = re.compile(r"<(?:!doctype|html|head|body|article|div|p|h[1-6]|br)\b", re.IGNORECASE)
_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_H1 = re.compile(r"<h1\b[^>]*>(.*?)</h1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True, slots=True)
class ExplainedMatch:
    """One term match: ``text`` is the folded text it covers, ``snippet`` its context."""

    topic: str
    term: str
    field: str
    start: int
    end: int
    text: str
    snippet: str


@dataclass(frozen=True, slots=True)
class ExplainedExclusion:
    """An exclusion phrase that vetoed a term match of *topic* in *field*.

    ``start``/``end`` locate the phrase in the folded field text (``None`` when it cannot
    be found again, which only happens if the field changed since matching).
    """

    topic: str
    phrase: str
    field: str
    start: int | None
    end: int | None
    snippet: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """The topics an entry belongs to, the matches behind them, the exclusions that fired."""

    topics: tuple[str, ...]
    matches: tuple[ExplainedMatch, ...]
    exclusions: tuple[ExplainedExclusion, ...]
    id: str | None = None
    lang: str | None = None  # echoed from ``--jsonl`` input


@dataclass(frozen=True, slots=True)
class JsonlItem:
    """One line of ``explain --jsonl`` input."""

    id: str
    doc: MatchInput
    lang: str | None


def snippet(text: str, start: int, end: int, context: int = CONTEXT) -> str:
    """*text* around ``[start, end)`` on one line, the match in brackets, cuts marked by …."""
    left = max(0, start - context)
    right = min(len(text), end + context)
    parts = (
        "…" if left > 0 else "",
        text[left:start],
        "[",
        text[start:end],
        "]",
        text[end:right],
        "…" if right < len(text) else "",
    )
    return _SPACE.sub(" ", "".join(parts))


def explain(
    doc: MatchInput,
    result: MatchResult,
    *,
    doc_id: str | None = None,
    lang: str | None = None,
    context: int = CONTEXT,
) -> Explanation:
    """Attach the matched text and a snippet to every match and exclusion of *result*."""
    texts: dict[str, str] = {}

    def text_of(name: str) -> str:
        if name not in texts:
            texts[name] = field_text(doc, name)
        return texts[name]

    matches = tuple(
        ExplainedMatch(
            topic=m.topic,
            term=m.term,
            field=m.field,
            start=m.start,
            end=m.end,
            text=text_of(m.field)[m.start : m.end],
            snippet=snippet(text_of(m.field), m.start, m.end, context),
        )
        for m in result.matches
    )
    exclusions: list[ExplainedExclusion] = []
    for topic, phrase, where in result.exclusions:
        text = text_of(where)
        spots = PhraseSet.build([phrase]).find(FoldedText.of(text), overlapping=True)
        if not spots:
            exclusions.append(ExplainedExclusion(topic, phrase, where, None, None, ""))
        for _, start, end in spots:
            exclusions.append(
                ExplainedExclusion(
                    topic, phrase, where, start, end, snippet(text, start, end, context)
                )
            )
    return Explanation(
        topics=result.topics,
        matches=matches,
        exclusions=tuple(exclusions),
        id=doc_id,
        lang=lang,
    )


def to_json(expl: Explanation) -> dict[str, object]:
    """The JSON object ``explain --json`` and ``explain --jsonl`` print."""
    out: dict[str, object] = {}
    if expl.id is not None:
        out["id"] = expl.id
    if expl.lang is not None:
        out["lang"] = expl.lang
    out["topics"] = list(expl.topics)
    out["matches"] = [
        {
            "topic": m.topic,
            "term": m.term,
            "field": m.field,
            "start": m.start,
            "end": m.end,
            "text": m.text,
            "snippet": m.snippet,
        }
        for m in expl.matches
    ]
    out["exclusions"] = [
        {
            "topic": x.topic,
            "phrase": x.phrase,
            "field": x.field,
            "start": x.start,
            "end": x.end,
            "snippet": x.snippet,
        }
        for x in expl.exclusions
    ]
    return out


def render(expl: Explanation) -> str:
    """A human report: topics, then one row per match and per exclusion."""
    lines = []
    if expl.id is not None:
        lines.append(f"id: {expl.id}")
    lines.append(f"topics: {', '.join(expl.topics) if expl.topics else '(none)'}")
    if expl.matches:
        lines.append("matches:")
        lines += _rows(
            [[m.topic, m.term, m.field, f"{m.start}-{m.end}", m.snippet] for m in expl.matches]
        )
    else:
        lines.append("matches: (none)")
    if expl.exclusions:
        lines.append("exclusions fired (they veto the term matches they overlap):")
        lines += _rows(
            [
                [x.topic, x.phrase, x.field, _span(x.start, x.end), x.snippet]
                for x in expl.exclusions
            ]
        )
    return "\n".join(lines)


def _span(start: int | None, end: int | None) -> str:
    return "?" if start is None or end is None else f"{start}-{end}"


def _rows(rows: list[list[str]]) -> list[str]:
    """Aligned columns; the last one (the snippet) is left ragged."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]
        for r in rows
    ]


def item_from_json(obj: object) -> JsonlItem:
    """Validate one decoded JSONL object. Raises ``ValueError`` naming the bad key."""
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    ident = obj.get("id")
    if isinstance(ident, bool) or not isinstance(ident, str | int):
        raise ValueError("id: expected a string or an integer")
    strings = {}
    for key in ("title", "summary", "content", "link", "lang"):
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{key}: expected a string")
        strings[key] = value
    categories = obj.get("categories", [])
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise ValueError("categories: expected a list of strings")
    if not (strings["title"] or strings["summary"] or strings["content"]):
        raise ValueError("title: expected a title, a summary or a content")
    doc = MatchInput(
        title=strings["title"] or "",
        summary=strings["summary"] or "",
        content=strings["content"] or "",
        categories=tuple(categories),
        link=strings["link"],
    )
    return JsonlItem(str(ident), doc, strings["lang"])


def input_from_file(text: str, *, html_hint: bool = False) -> MatchInput:
    """A document from a file's text: HTML gives its ``<title>`` (or first ``<h1>``) as
    title and the page as content; plain text gives its first line as title, the rest as
    content."""
    if html_hint or _HTML.search(text):
        found = _TITLE.search(text) or _H1.search(text)
        title = html.unescape(_TAG.sub("", found.group(1))).strip() if found else ""
        return MatchInput(title=" ".join(title.split()), content=text)
    lines = text.strip().splitlines()
    if not lines:
        return MatchInput()
    return MatchInput(title=lines[0].strip(), content="\n".join(lines[1:]).strip())
