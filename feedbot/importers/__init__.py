"""Article importers: a listing text file, Markdown (a file or a folder), JSON Lines.

``load_articles`` reads everything before returning, so a caller that stores its
result imports nothing when any file is bad: the first problem raises ``InputError``
naming the file and line. See docs/import-formats.md.
"""

from __future__ import annotations

import logging
from pathlib import Path

from feedbot.errors import InputError
from feedbot.importers.common import Draft, finish, read_text, slugify
from feedbot.importers.jsonl import looks_like_jsonl, parse_jsonl
from feedbot.importers.listing import looks_like_listing, parse_listing
from feedbot.importers.markdown import markdown_files, parse_markdown, source_slug
from feedbot.models import ArticleData

__all__ = ["load_articles"]

logger = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})


def _drafts(path: Path) -> list[Draft]:
    resource = str(path)
    if path.is_dir():
        files = markdown_files(path)
        if not files:
            raise InputError("no *.md files in this folder", resource=resource)
        return [parse_markdown(read_text(f), path=str(f), source=source_slug(f)) for f in files]
    text = read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return parse_jsonl(text, path=resource, source=slugify(path.stem))
    if suffix in MARKDOWN_SUFFIXES or text.lstrip().startswith("---"):
        return [parse_markdown(text, path=resource, source=source_slug(path))]
    if looks_like_listing(text):
        return parse_listing(text, path=resource)
    if looks_like_jsonl(text):
        return parse_jsonl(text, path=resource, source=slugify(path.stem))
    raise InputError(
        "unknown format: not a listing (no • line), Markdown (.md) or JSON Lines (.jsonl)",
        resource=resource,
    )


def load_articles(path: Path, *, authority: str = "feedbot.localhost") -> list[ArticleData]:
    """Every article in *path* (a file, or a folder of Markdown), in file order."""
    drafts = _drafts(path)
    articles = finish(drafts, authority=authority)
    logger.info("loaded %d articles from %s", len(articles), path)
    return articles
