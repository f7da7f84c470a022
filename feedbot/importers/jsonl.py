"""JSON Lines: one JSON object per line, one article per object; blank lines skipped."""

from __future__ import annotations

import json

from feedbot.errors import InputError
from feedbot.importers.common import Draft, Fields, first_paragraph_text, text_to_html
from feedbot.text import clean_text, sanitize_html


def looks_like_jsonl(text: str) -> bool:
    return text.lstrip().startswith("{")


def _content(fields: Fields, *, link: str | None) -> str:
    html = fields.text("content")
    if html is not None and html.strip():
        return sanitize_html(html, base_url=link).strip()
    plain = fields.text("content_text") or ""
    paragraphs = [clean_text(block) for block in plain.replace("\r\n", "\n").split("\n\n")]
    return text_to_html(("p", p) for p in paragraphs if p) if any(paragraphs) else ""


def _draft(fields: Fields, *, source: str) -> Draft:
    title = fields.clean("title")
    if not title:
        raise fields.error("title", "missing title")
    link = fields.link("link")
    content = _content(fields, link=link)
    categories = fields.items("categories")
    return Draft(
        line=fields.line,
        title=title,
        summary=fields.clean("summary") or (first_paragraph_text(content) if content else ""),
        content=content,
        link=link,
        authors=fields.items("authors"),
        language=fields.text("lang"),
        categories=categories + tuple(t for t in fields.items("tags") if t not in categories),
        published=fields.when("published"),
        updated=fields.when("updated"),
        id=fields.ident("id"),
        source=source,
        path=fields.path,
    )


def parse_jsonl(text: str, *, path: str, source: str) -> list[Draft]:
    """Articles of a JSON Lines file, in file order; *source* is the id's source slug."""
    drafts = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON: {exc.msg}", resource=path, line=line) from exc
        if not isinstance(record, dict):
            raise InputError("not a JSON object", resource=path, line=line)
        drafts.append(_draft(Fields(record, path=path, line=line), source=source))
    return drafts
