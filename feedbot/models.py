"""Frozen dataclasses exchanged between pipeline stages.

Naming: ``*Data`` came from outside (an import file or an upstream feed), ``Stored*`` came
from the store, ``*Result`` is the outcome of a stage. All datetimes are aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an aggregated article was first reported: the source feed."""

    title: str
    url: str
    link: str | None = None  # the entry's own link at the source


@dataclass(frozen=True, slots=True)
class ArticleData:
    """An article ready to be stored: text is clean, HTML is sanitised.

    ``id`` is a stable absolute URI (``tag:`` for imported articles). ``published`` and
    ``updated`` are always set by the producer (importers give undated articles a
    stable date) so that the published feed never reorders on re-import.
    """

    id: str
    title: str
    summary: str
    content: str
    link: str | None
    authors: tuple[str, ...]
    language: str | None
    categories: tuple[str, ...]
    published: datetime
    updated: datetime
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class TopicMatch:
    """One matched term: which topic, which term, which field, where."""

    topic: str
    term: str
    field: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """An article as the store holds it."""

    id: str
    title: str
    summary: str
    content: str
    link: str | None
    authors: tuple[str, ...]
    language: str | None
    categories: tuple[str, ...]
    published: datetime
    updated: datetime
    origin: Origin | None
    content_hash: str
    topics: tuple[str, ...] = ()
    matched_terms: tuple[str, ...] = ()
    related: tuple[Origin, ...] = field(default=())  # other reports of the same story


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What one ``feedbot import`` call did."""

    added: int
    updated: int
    unchanged: int
