"""Helpers shared by the importers: ids, stable dates, field coercion, language."""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from feedbot.clock import as_utc
from feedbot.errors import InputError
from feedbot.models import ArticleData
from feedbot.text import clean_text, html_to_text, sanitize_html

UNDATED_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
ID_YEAR = "2026"
_SLUG_MAX = 80


@dataclass(frozen=True, slots=True)
class Draft:
    """One article as a format module read it, before ids and default dates."""

    line: int
    title: str
    summary: str
    content: str
    link: str | None = None
    authors: tuple[str, ...] = ()
    language: str | None = None
    categories: tuple[str, ...] = ()
    published: datetime | None = None
    updated: datetime | None = None
    id: str | None = None
    source: str = ""  # the source slug used for generated ids
    path: str = ""  # the file it came from, for error messages


_LIGATURES = str.maketrans({"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ß": "ss", "ø": "o",
                            "Ø": "o", "ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "ı": "i"})  # fmt: skip


def slugify(text: str) -> str:
    """ASCII slug: accents dropped, lowercase, runs of anything else become '-'.

    Text with no ASCII letters or digits (Chinese) gets ``t-`` plus 12 hex digits of
    its SHA-256, so that the slug is still stable.
    """
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    kept = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    slug = re.sub(r"[^a-z0-9]+", "-", kept.lower()).strip("-")
    if len(slug) > _SLUG_MAX:
        slug = slug[:_SLUG_MAX].rsplit("-", 1)[0]
    if slug:
        return slug
    digest = hashlib.sha256(unicodedata.normalize("NFC", text).encode("utf-8")).hexdigest()
    return f"t-{digest[:12]}"


def tag_id(authority: str, source: str, title: str) -> str:
    return f"tag:{authority},{ID_YEAR}:{source}/{slugify(title)}"


def undated(index: int, count: int) -> datetime:
    """Date of the *index*-th (1-based) of *count* undated articles: first is newest."""
    return UNDATED_EPOCH + timedelta(minutes=count - index)


def text_to_html(paragraphs: Iterable[tuple[str, str]]) -> str:
    """``(tag, text)`` pairs to sanitised HTML; ``figcaption`` gets its ``figure``."""
    parts = []
    for tag, text in paragraphs:
        body = html.escape(text, quote=False)
        if tag == "figcaption":
            parts.append(f"<figure><figcaption>{body}</figcaption></figure>")
        else:
            parts.append(f"<{tag}>{body}</{tag}>")
    return sanitize_html("\n".join(parts))


_FIRST_P = re.compile(r"<p>(.*?)</p>", re.DOTALL)


def first_paragraph_text(content_html: str) -> str:
    match = _FIRST_P.search(content_html)
    return html_to_text(match.group(1)) if match else html_to_text(content_html)


@dataclass(frozen=True, slots=True)
class Fields:
    """Typed access to one record's fields; errors name the file and the key's line."""

    values: Mapping[str, object]
    path: str
    line: int  # the record's line, for keys without their own
    key_lines: Mapping[str, int] = field(default_factory=dict)

    def error(self, key: str, message: str) -> InputError:
        return InputError(message, resource=self.path, line=self.key_lines.get(key, self.line))

    def text(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        return self._fail(key, f"{key} must be a string")

    def clean(self, key: str) -> str:
        return clean_text(self.text(key) or "")

    def items(self, key: str) -> tuple[str, ...]:
        """A list of strings, or one string (comma-separated for tags), cleaned."""
        value = self.values.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            items: Sequence[object] = value.split(",") if key in _LIST_KEYS else [value]
        elif isinstance(value, list):
            items = value
        else:
            return self._fail(key, f"{key} must be a string or a list of strings")
        out: list[str] = []
        for item in items:
            if not isinstance(item, str):
                return self._fail(key, f"{key} must be a string or a list of strings")
            text = clean_text(item)
            if text and text not in out:
                out.append(text)
        return tuple(out)

    def when(self, key: str) -> datetime | None:
        """RFC 3339 text (or a YAML date/datetime) as aware UTC; naive means UTC."""
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, datetime):
            return as_utc(value)
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        if isinstance(value, str):
            try:
                return as_utc(datetime.fromisoformat(value.strip()))
            except ValueError:
                pass
        return self._fail(key, f"{key} is not an RFC 3339 date: {value!r}")

    def link(self, key: str) -> str | None:
        link = (self.text(key) or "").strip()
        if not link:
            return None
        parts = urlsplit(link)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            return self._fail(key, f"{key} is not an http(s) URL: {link!r}")
        return link

    def ident(self, key: str) -> str | None:
        ident = (self.text(key) or "").strip()
        if not ident:
            return None
        if not _URI.match(ident):
            return self._fail(key, f"{key} is not an absolute URI: {ident!r}")
        return ident

    def _fail(self, key: str, message: str) -> NoReturn:
        raise self.error(key, message)


_LIST_KEYS = frozenset({"tags", "categories"})
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


def finish(drafts: Sequence[Draft], *, authority: str) -> list[ArticleData]:
    """Give ids and stable dates: the i-th of N drafts (one file, or one folder of
    Markdown) without a date is published at ``undated(i, N)``."""
    seen: dict[str, Draft] = {}
    articles = []
    for index, draft in enumerate(drafts, start=1):
        ident = draft.id
        if ident is not None and ident in seen:
            first = seen[ident]
            raise InputError(
                f"duplicate id {ident!r} (first at {first.path}:{first.line})",
                resource=draft.path,
                line=draft.line,
            )
        if ident is None:
            base = tag_id(authority, draft.source, draft.title)
            ident, n = base, 1
            while ident in seen:
                n += 1
                ident = f"{base}-{n}"
        seen[ident] = draft
        published = draft.published or draft.updated or undated(index, len(drafts))
        sample = f"{draft.title} {draft.summary} {html_to_text(draft.content)[:_SAMPLE]}"
        articles.append(
            ArticleData(
                id=ident,
                title=draft.title,
                summary=draft.summary,
                content=draft.content,
                link=draft.link,
                authors=draft.authors,
                language=draft.language or detect_language(sample),
                categories=draft.categories,
                published=published,
                updated=draft.updated or published,
            )
        )
    return articles


_SAMPLE = 2000
_STOPWORDS = {
    "fr": frozenset(
        [
            "le",
            "la",
            "les",
            "des",
            "du",
            "de",
            "et",
            "est",
            "une",
            "un",
            "dans",
            "pour",
            "que",
            "qui",
            "sur",
            "au",
            "aux",
            "ne",
            "pas",
            "ce",
            "cette",
            "il",
            "elle",
            "ses",
            "son",
            "sa",
            "avec",
            "par",
            "plus",
            "se",
            "en",
            "ont",
            "été",
            "sont",
            "leur",
        ]
    ),
    "en": frozenset(
        [
            "the",
            "of",
            "and",
            "to",
            "in",
            "is",
            "that",
            "for",
            "on",
            "with",
            "as",
            "was",
            "by",
            "it",
            "are",
            "be",
            "this",
            "from",
            "an",
            "has",
            "have",
            "its",
            "at",
            "which",
            "were",
            "will",
            "their",
            "not",
        ]
    ),
}
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def detect_language(text: str) -> str | None:
    """'zh', 'fr' or 'en' from CJK share and stopword counts; None when unsure."""
    cjk = len(_CJK.findall(text))
    letters = sum(1 for ch in text if ch.isalpha())
    if letters and cjk / letters >= 0.3:
        return "zh"
    words = [w.lower() for w in _WORD.findall(text)]
    words = [re.split(r"['’]", w)[-1] for w in words]  # l’offre -> offre, d'Alibaba
    scores = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    others = max(v for lang, v in scores.items() if lang != best)
    if scores[best] >= 2 and scores[best] > others:
        return best
    return None


def read_text(path: Path) -> str:
    """The file's text (UTF-8, BOM dropped); InputError when unreadable or empty."""
    resource = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", resource=resource) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError("not UTF-8 text", resource=resource, line=line) from exc
    if not text.strip():
        raise InputError("file is empty", resource=resource)
    return text
