"""Discord webhooks (Execute Webhook): one rich embed per article.

Discord counts characters (code points) and caps the sum of embed text per message at
6,000; ``measure`` computes exactly that sum. ``allowed_mentions: {"parse": []}`` on every
message means ``@everyone`` in a headline is shown, never pinged.
"""

from __future__ import annotations

from collections.abc import Sequence

from feedbot.notify.kinds.base import (
    Kind,
    Notice,
    Payload,
    Rate,
    digest_heading,
    iso,
    join_within,
    markdown_escape,
    pack,
    part_suffix,
    safe_url,
    topics_text,
    truncate,
    truncate_marked,
)

MAX_TITLE = 256
MAX_DESCRIPTION = 4_096
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1_024
MAX_FOOTER = 2_048
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6_000  # title+description+fields+footer+author over all embeds
MAX_CONTENT = 2_000
MAX_SOURCE = 200  # our choice for the footer
DIGEST_FOOTER = 120
DIGEST_EMBED = MAX_EMBED_TOTAL // MAX_EMBEDS  # so ten digest embeds always fit
COLOR = 0xFF6A00
NO_MENTIONS: Payload = {"parse": []}


def embed_chars(embed: Payload) -> int:
    """The characters Discord counts toward the 6,000 total for one embed."""
    fields = embed.get("fields", [])
    return (
        len(embed.get("title", ""))
        + len(embed.get("description", ""))
        + sum(len(field["name"]) + len(field["value"]) for field in fields)
        + len(embed.get("footer", {}).get("text", ""))
        + len(embed.get("author", {}).get("name", ""))
    )


def measure(payload: Payload) -> int:
    """Sum of counted embed text over the message."""
    return sum(embed_chars(embed) for embed in payload.get("embeds", []))


def _footer(notice: Notice, limit: int, *, with_topics: bool = False) -> str:
    parts = [truncate(notice.source, MAX_SOURCE) if notice.source else "feedbot"]
    if notice.event == "article.updated":
        parts.append("Updated")
    if with_topics and notice.topics:
        parts.append(topics_text(notice.topics))
    return truncate(" · ".join(parts), limit)


def _embed(notice: Notice, footer: str) -> Payload:
    embed: Payload = {
        "type": "rich",
        "title": truncate(notice.title, MAX_TITLE) or "(untitled)",
        "timestamp": iso(notice.published),
        "color": COLOR,
        "footer": {"text": footer},
    }
    url = safe_url(notice.link)
    if url:
        embed["url"] = url
    return embed


def _fields(notice: Notice) -> list[Payload]:
    fields: list[Payload] = []
    if notice.topics:
        value = truncate(topics_text(notice.topics), MAX_FIELD_VALUE)
        fields.append({"name": "Topics", "value": value, "inline": True})
    others = []
    for name, url in notice.also_reported:
        label = markdown_escape(truncate(name, 80))
        safe = safe_url(url)
        if safe:
            safe = safe.replace("(", "%28").replace(")", "%29")
        others.append(f"[{label}]({safe})" if safe else label)
    if others:
        value = join_within(others, MAX_FIELD_VALUE)
        fields.append({"name": "Also reported by", "value": value, "inline": False})
    return fields


def render(notice: Notice) -> Payload:
    """One embed: title, link, summary, time, source footer, topic fields."""
    embed = _embed(notice, _footer(notice, MAX_FOOTER))
    fields = _fields(notice)
    if fields:
        embed["fields"] = fields
    room = min(MAX_DESCRIPTION, MAX_EMBED_TOTAL - embed_chars(embed))
    description = truncate_marked(notice.summary, room, markdown_escape)
    if description:
        embed["description"] = description
    return {"embeds": [embed], "allowed_mentions": NO_MENTIONS}


def _digest_embed(notice: Notice) -> Payload:
    embed = _embed(notice, _footer(notice, DIGEST_FOOTER, with_topics=True))
    room = DIGEST_EMBED - embed_chars(embed)
    description = truncate_marked(notice.summary, room, markdown_escape)
    if description:
        embed["description"] = description
    return embed


def render_digest(notices: Sequence[Notice], *, topic_summary: str = "") -> list[Payload]:
    """Compact embeds, ten per message (each at most 600 counted characters)."""
    if not notices:
        return []
    embeds = [_digest_embed(notice) for notice in notices]
    groups = pack(
        [embed_chars(embed) for embed in embeds],
        capacity=MAX_EMBED_TOTAL,
        max_items=MAX_EMBEDS,
    )
    heading = digest_heading(notices, topic_summary)
    return [
        {
            "content": truncate(heading, MAX_CONTENT - 8) + part_suffix(index, len(groups)),
            "embeds": [embeds[i] for i in group],
            "allowed_mentions": NO_MENTIONS,
        }
        for index, group in enumerate(groups)
    ]


KIND = Kind(
    name="discord",
    max_title=MAX_TITLE,
    max_text=MAX_DESCRIPTION,
    max_total=MAX_EMBED_TOTAL,
    total_unit="chars",
    max_items_per_message=MAX_EMBEDS,
    rates=(Rate(5, 2.0), Rate(30, 60.0, scope="channel")),
    render=render,
    render_digest=render_digest,
    measure=measure,
)
