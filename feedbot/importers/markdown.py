"""Markdown files with YAML front matter, one article per file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from markdown_it import MarkdownIt

from feedbot.errors import InputError
from feedbot.importers.common import Draft, Fields, first_paragraph_text, slugify
from feedbot.text import clean_text, sanitize_html

# libyaml when PyYAML was built with it (about 10x faster), else the pure-Python safe loader.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

FENCE = "---"
_KEY = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:")
_H1 = re.compile(r"\A\s*#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def _renderer() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def split_front_matter(text: str, *, path: str) -> tuple[dict[str, Any], str, dict[str, int]]:
    """Return (front matter, body, line number of each top-level key)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != FENCE:
        return {}, text, {}
    for index in range(1, len(lines)):
        if lines[index].strip() in {FENCE, "..."}:
            break
    else:
        raise InputError("front matter has no closing '---' line", resource=path, line=1)
    source = "".join(lines[1:index])
    try:
        meta = yaml.load(source, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = 2 + mark.line if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(
            f"front matter is not valid YAML: {problem}", resource=path, line=line
        ) from exc
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise InputError("front matter is not a mapping", resource=path, line=2)
    key_lines: dict[str, int] = {}
    for number, line in enumerate(lines[1:index], start=2):
        key = _KEY.match(line)
        if key is not None:
            key_lines.setdefault(key.group(1), number)
    return meta, "".join(lines[index + 1 :]), key_lines


def parse_markdown(text: str, *, path: str, source: str) -> Draft:
    """One article from one Markdown file; *source* is the id's source slug."""
    meta, body, key_lines = split_front_matter(text, path=path)
    fields = Fields(meta, path=path, line=1, key_lines=key_lines)
    title = fields.clean("title")
    if not title:
        heading = _H1.match(body)
        if heading is None:
            raise InputError("missing title", resource=path, line=1)
        title = clean_text(heading.group(1))
        body = body[heading.end() :]
    link = fields.link("link")
    content = sanitize_html(_renderer().render(body), base_url=link).strip()
    tags = fields.items("tags")
    return Draft(
        line=1,
        title=title,
        summary=fields.clean("summary") or first_paragraph_text(content),
        content=content,
        link=link,
        authors=fields.items("authors" if "authors" in meta else "author"),
        language=fields.text("lang"),
        categories=tags + tuple(c for c in fields.items("categories") if c not in tags),
        published=fields.when("date"),
        updated=fields.when("updated"),
        id=fields.ident("id"),
        source=source,
        path=path,
    )


def markdown_files(folder: Path) -> list[Path]:
    """``*.md`` files under *folder*, recursively, sorted by relative path."""
    return sorted(
        (p for p in folder.rglob("*.md") if p.is_file()),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


def source_slug(path: Path) -> str:
    """A Markdown article's id source: its folder's name, so ids do not depend on how
    the file was imported (alone or with its folder)."""
    return slugify(path.resolve().parent.name or "notes")
