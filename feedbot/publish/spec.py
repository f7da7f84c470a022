"""What a published feed is (``FeedSpec``) and the values every renderer derives alike."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from feedbot.clock import as_utc
from feedbot.errors import ConfigError
from feedbot.models import StoredArticle

FORMATS: tuple[str, ...] = ("atom", "rss", "json")
EXTENSIONS: dict[str, str] = {"atom": ".atom", "rss": ".rss", "json": ".json"}
MEDIA_TYPES: dict[str, str] = {
    "atom": "application/atom+xml",
    "rss": "application/rss+xml",
    "json": "application/feed+json",
}
DEFAULT_STYLESHEET = "/feed.xsl"
# ``updated`` of a feed without entries: fixed, so that an empty store renders stable bytes.
EMPTY_FEED_UPDATED = datetime(1970, 1, 1, tzinfo=UTC)

_NAME = re.compile(r"[a-z0-9-]+")
_ABSOLUTE_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
# Characters XML 1.0 cannot carry (C0 controls but tab, LF, CR; lone surrogates; U+FFFE/F).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One published feed: identity, metadata and the formats to write.

    ``self_url`` is the absolute URL of the ``.atom`` file as served; the other formats
    are served beside it (``url_for``). ``id`` never changes once published.
    """

    name: str
    title: str
    subtitle: str | None
    id: str
    self_url: str
    site_url: str | None
    author_name: str
    author_uri: str | None
    language: str | None
    max_entries: int = 50
    formats: tuple[str, ...] = ("atom",)
    hub_url: str | None = None
    stylesheet_href: str | None = DEFAULT_STYLESHEET

    def __post_init__(self) -> None:
        problems = spec_problems(self)
        if problems:
            raise ConfigError(problems, resource=f"feed {self.name!r}")

    def url_for(self, fmt: str) -> str:
        """The absolute URL of this feed in *fmt* (``atom``, ``rss`` or ``json``)."""
        return self.self_url[: -len(EXTENSIONS["atom"])] + EXTENSIONS[fmt]

    def filename(self, fmt: str) -> str:
        """The file name of this feed in *fmt*, e.g. ``alibaba.atom``."""
        return self.name + EXTENSIONS[fmt]


def spec_problems(spec: FeedSpec) -> list[str]:
    """Why *spec* is invalid, one line per problem (empty when valid)."""
    problems: list[str] = []
    if not _NAME.fullmatch(spec.name):
        problems.append("name: must match [a-z0-9-]+")
    if not spec.title.strip():
        problems.append("title: must not be empty")
    if not spec.author_name.strip():
        problems.append("author_name: must not be empty")
    if not is_absolute_iri(spec.id):
        problems.append("id: not an absolute IRI")
    if not _is_http_url(spec.self_url) or not spec.self_url.endswith(EXTENSIONS["atom"]):
        problems.append("self_url: not an absolute http(s) URL ending in .atom")
    for key, url in (
        ("site_url", spec.site_url),
        ("author_uri", spec.author_uri),
        ("hub_url", spec.hub_url),
    ):
        if url is not None and not _is_http_url(url):
            problems.append(f"{key}: not an absolute http(s) URL")
    if spec.language is not None and not _LANGUAGE_TAG.fullmatch(spec.language):
        problems.append("language: not a language tag")
    if spec.max_entries < 1:
        problems.append("max_entries: must be at least 1")
    if not spec.formats or not set(spec.formats) <= set(FORMATS):
        problems.append(f"formats: must be a non-empty subset of {', '.join(FORMATS)}")
    return problems


def is_absolute_iri(value: str) -> bool:
    """True when *value* has a scheme and no whitespace (``tag:``, ``urn:``, ``https:``)."""
    return _ABSOLUTE_IRI.fullmatch(value) is not None


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def feed_updated(articles: Sequence[StoredArticle]) -> datetime:
    """The newest ``updated`` of *articles*: never "now", so output depends on input only."""
    if not articles:
        return EMPTY_FEED_UPDATED
    return stamp(max(as_utc(a.updated) for a in articles))


def feed_language(spec: FeedSpec, articles: Sequence[StoredArticle]) -> str | None:
    """``spec.language``, else the most common valid article language (first seen on ties)."""
    if spec.language:
        return spec.language
    counts = Counter(a.language for a in articles if a.language and is_language_tag(a.language))
    if not counts:
        return None
    return counts.most_common(1)[0][0]


def is_language_tag(value: str) -> bool:
    """True when *value* has the shape of a BCP 47 tag (``fr``, ``zh-Hans``)."""
    return _LANGUAGE_TAG.fullmatch(value) is not None


def stamp(value: datetime) -> datetime:
    """*value* as aware UTC with whole seconds: the precision every published date has."""
    return as_utc(value).replace(microsecond=0)


def xml_safe(text: str) -> str:
    """*text* without the characters XML 1.0 cannot carry."""
    return _NOT_XML.sub("", text)
