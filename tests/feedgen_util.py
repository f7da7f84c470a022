"""Small RSS documents written by the tests themselves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Item:
    title: str
    link: str
    guid: str | None = None
    summary: str = ""
    published: datetime = T0


def rss(items: Sequence[Item], *, title: str = "Test feed", ttl: int | None = None) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>https://site.example/</link>",
        "<description>test</description>",
    ]
    if ttl:
        parts.append(f"<ttl>{ttl}</ttl>")
    for it in items:
        parts.append(
            "<item>"
            f"<title>{escape(it.title)}</title><link>{escape(it.link)}</link>"
            f'<guid isPermaLink="false">{escape(it.guid or it.link)}</guid>'
            f"<description>{escape(it.summary)}</description>"
            f"<pubDate>{format_datetime(it.published, usegmt=True)}</pubDate>"
            "</item>"
        )
    parts.append("</channel></rss>")
    return "\n".join(parts).encode("utf-8")


def news(
    n: int, *, prefix: str = "https://site.example/news", topic: str = "Alibaba", start: int = 0
) -> list[Item]:
    """n distinct relevant stories, newest first."""
    subjects = [
        "Taobao",
        "Alipay",
        "Alibaba Cloud",
        "Tmall",
        "Cainiao",
        "DingTalk",
        "Lazada",
        "Youku",
    ]
    out = []
    for i in range(start, start + n):
        s = subjects[i % len(subjects)]
        out.append(
            Item(
                title=f"{s} story {i}: {topic} unit reports quarter {i} figures",
                link=f"{prefix}/{i}",
                summary=f"Details number {i} about {s} and its {i * 7} partners in region {i % 5}.",
                published=T0 - timedelta(hours=i),
            )
        )
    return out
