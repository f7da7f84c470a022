"""Text hygiene shared by importers and the feed parser (STUB: being written).

Public functions (signatures are fixed; other modules rely on them):

- ``repair_text(s) -> str``: mojibake repair, NFC, keeps typographic quotes.
- ``clean_text(s) -> str``: ``repair_text`` plus whitespace normalised to single spaces.
- ``sanitize_html(html) -> str``: repaired and sanitised HTML safe to republish.
- ``html_to_text(html) -> str``: visible text of an HTML fragment, for matching and summaries.
"""

from __future__ import annotations

import re
import unicodedata

import nh3

_WS = re.compile(r"\s+")


def repair_text(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def clean_text(s: str) -> str:
    return _WS.sub(" ", repair_text(s)).strip()


def sanitize_html(html: str) -> str:
    return nh3.clean(repair_text(html))


def html_to_text(html: str) -> str:
    return clean_text(re.sub(r"<[^>]+>", " ", html))
