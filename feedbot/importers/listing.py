"""The listing text format: a name line, then articles that start with a "•" line.

Each non-empty line after a "•" line is one paragraph, blank lines or not. The first
is the summary, unless it looks like a photo caption (short, no final punctuation, and
more text follows): then it becomes a ``<figure><figcaption>`` opening the content and
the next paragraph is the summary. The content holds every paragraph, summary included;
short body lines without final punctuation, or short questions, are ``<h3>`` headings.
"""

from __future__ import annotations

import logging

from feedbot.errors import InputError
from feedbot.importers.common import Draft, slugify, text_to_html
from feedbot.text import clean_text

logger = logging.getLogger(__name__)

BULLET = "•"
HEADING_MAX = 80  # a heading is at most this long and has no final punctuation...
QUESTION_HEADING_MAX = 50  # ...or is a question or exclamation at most this long
FINAL_PUNCTUATION = tuple('.!?:;…»”"')


def looks_like_listing(text: str) -> bool:
    return any(line.strip().startswith(BULLET) for line in text.splitlines())


def _is_heading(line: str) -> bool:
    if len(line) > HEADING_MAX:
        return False
    if not line.endswith(FINAL_PUNCTUATION):
        return True
    return line.endswith(("?", "!")) and len(line) <= QUESTION_HEADING_MAX


def _article(
    path: str, source: str, category: str, line_no: int, title: str, body: list[str]
) -> Draft:
    if not title:
        raise InputError("article has an empty title", resource=path, line=line_no)
    paragraphs: list[tuple[str, str]] = []
    rest = body
    if len(body) > 1 and len(body[0]) <= HEADING_MAX and not body[0].endswith(FINAL_PUNCTUATION):
        paragraphs.append(("figcaption", body[0]))
        rest = body[1:]
    summary = rest[0] if rest else ""
    for index, text in enumerate(rest):
        last = index == len(rest) - 1
        heading = index > 0 and not last and _is_heading(text)
        paragraphs.append(("h3" if heading else "p", text))
    return Draft(
        line=line_no,
        title=title,
        summary=summary,
        content=text_to_html(paragraphs),
        categories=(category,),
        source=source,
        path=path,
    )


def parse_listing(text: str, *, path: str) -> list[Draft]:
    """Articles of a listing, in file order."""
    lines = text.splitlines()
    numbered = [(n, clean_text(line)) for n, line in enumerate(lines, start=1)]
    numbered = [(n, line) for n, line in numbered if line]
    if not numbered or numbered[0][1].startswith(BULLET):
        raise InputError("the first line must be the listing's name", resource=path, line=1)
    name_line, name = numbered[0]
    source = slugify(name)
    drafts: list[Draft] = []
    current: tuple[int, str] | None = None
    body: list[str] = []
    for n, line in numbered[1:]:
        if line.startswith(BULLET):
            if current is not None:
                drafts.append(_article(path, source, name, *current, body))
            current, body = (n, clean_text(line[len(BULLET) :])), []
        elif current is None:
            raise InputError(f"text before the first {BULLET} line", resource=path, line=n)
        else:
            body.append(line)
    if current is None:
        raise InputError(f"no article (no line starting with {BULLET})", resource=path)
    drafts.append(_article(path, source, name, *current, body))
    logger.debug("listing %s: %d articles (name on line %d)", path, len(drafts), name_line)
    return drafts
