"""Generic JSON webhooks in the Standard Webhooks style, schema version 1.

The body is ``{"type", "version", "timestamp", "data"}``; the delivery id travels in the
``webhook-id`` header (see ``feedbot.notify.signing``). docs/webhook-payloads.md is the
schema's reference; change ``VERSION`` with any incompatible change.
"""

from __future__ import annotations

from collections.abc import Sequence

from feedbot.notify.kinds.base import (
    Kind,
    Notice,
    Payload,
    digest_heading,
    iso,
    json_chars,
    pack,
    safe_url,
    truncate,
)

VERSION = 1
DIGEST_TYPE = "article.digest"
MAX_TITLE = 1_024
MAX_TEXT = 4_096
MAX_ARTICLES = 100  # per digest message: bounds the body a receiver must accept


def article(notice: Notice) -> Payload:
    """The ``data`` object describing one article."""
    source = None
    if notice.source or notice.source_url:
        source = {"title": notice.source, "url": safe_url(notice.source_url)}
    summary = truncate(notice.summary, MAX_TEXT)
    return {
        "id": notice.article_id,
        "title": truncate(notice.title, MAX_TITLE),
        "summary": summary,
        "summary_truncated": summary != notice.summary,
        "link": safe_url(notice.link),
        "source": source,
        "published": iso(notice.published),
        "updated": iso(notice.updated) if notice.updated else None,
        "topics": list(notice.topics),
        "also_reported": [
            {"source": name, "link": safe_url(link)} for name, link in notice.also_reported
        ],
    }


def render(notice: Notice) -> Payload:
    """``{"type": "article.new"|"article.updated", "version": 1, "timestamp", "data"}``."""
    return {
        "type": notice.event,
        "version": VERSION,
        "timestamp": iso(notice.occurred),
        "data": article(notice),
    }


def render_digest(notices: Sequence[Notice], *, topic_summary: str = "") -> list[Payload]:
    """``article.digest`` messages of at most 100 articles each, in the order given."""
    if not notices:
        return []
    groups = pack([1] * len(notices), capacity=None, max_items=MAX_ARTICLES)
    heading = digest_heading(notices, topic_summary)
    return [
        {
            "type": DIGEST_TYPE,
            "version": VERSION,
            "timestamp": iso(max(notices[i].occurred for i in group)),
            "data": {
                "summary": heading,
                "part": index + 1,
                "parts": len(groups),
                "articles": [article(notices[i]) for i in group],
            },
        }
        for index, group in enumerate(groups)
    ]


KIND = Kind(
    name="generic",
    max_title=MAX_TITLE,
    max_text=MAX_TEXT,
    max_total=None,
    total_unit="chars",
    max_items_per_message=MAX_ARTICLES,
    rates=(),
    render=render,
    render_digest=render_digest,
    measure=json_chars,
)
