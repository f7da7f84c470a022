"""Microsoft Teams Workflows webhooks: a message carrying one Adaptive Card (1.4).

Teams refuses bodies over about 28 KB, so size is measured in bytes of the JSON body and
the summary is shortened until the whole message fits. TextBlocks keep feed text as it is,
except that ``](`` is split by a zero-width space so a headline cannot smuggle a
Markdown link into the card.
"""

from __future__ import annotations

from collections.abc import Sequence

from feedbot.notify.kinds.base import (
    Kind,
    Notice,
    Payload,
    Rate,
    digest_heading,
    event_label,
    fit,
    iso,
    join_within,
    json_bytes,
    pack,
    part_suffix,
    safe_url,
    topics_text,
    truncate,
)

MAX_TITLE = 256  # our choice
MAX_TEXT = 8_000  # our choice; the byte limit usually bites first for CJK text
MAX_BYTES = 28_000  # "about 28 KB" per message, JSON body bytes
MAX_SOURCE = 200
DIGEST_EXCERPT = 300
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


def card_text(text: str) -> str:
    """Feed text for a TextBlock: unchanged but for a break in Markdown link syntax."""
    return text.replace("](", "]\u200b(")


def _when(notice: Notice) -> str:
    stamp = iso(notice.published)
    return f"{{{{DATE({stamp}, SHORT)}}}} {{{{TIME({stamp})}}}}"


def _meta(notice: Notice) -> str:
    parts = [event_label(notice.event)]
    if notice.source:
        parts.append(card_text(truncate(notice.source, MAX_SOURCE)))
    parts.append(_when(notice))
    if notice.topics:
        parts.append("Topics: " + card_text(truncate(topics_text(notice.topics), 500)))
    return " · ".join(parts)


def _block(text: str, **style: object) -> Payload:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _title(notice: Notice) -> str:
    return card_text(truncate(notice.title, MAX_TITLE)) or "(untitled)"


def _message(body: list[Payload], actions: list[Payload]) -> Payload:
    card: Payload = {
        "$schema": SCHEMA,
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    }
    if actions:
        card["actions"] = actions
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_TYPE, "contentUrl": None, "content": card}],
    }


def _open(title: str, url: str | None) -> list[Payload]:
    safe = safe_url(url)
    return [{"type": "Action.OpenUrl", "title": title, "url": safe}] if safe else []


def render(notice: Notice) -> Payload:
    """One card: title, source/time/topics line, summary, Read and Source buttons."""
    head = [
        _block(_title(notice), weight="Bolder", size="Medium"),
        _block(_meta(notice), isSubtle=True, spacing="None", size="Small"),
    ]
    tail = []
    if notice.also_reported:
        names = [card_text(truncate(name, 80)) for name, _ in notice.also_reported]
        tail.append(_block("Also reported by " + join_within(names, 1_000), isSubtle=True))
    actions = _open("Read article", notice.link) + _open("Source", notice.source_url)

    def build(budget: int) -> Payload:
        summary = card_text(truncate(notice.summary, budget))
        body = [*head, _block(summary)] if summary else [*head]
        return _message([*body, *tail], actions)

    return fit(build, json_bytes, MAX_BYTES, min(len(notice.summary), MAX_TEXT))


def _digest_item(notice: Notice) -> Payload:
    items = [
        _block(_title(notice), weight="Bolder"),
        _block(_meta(notice), isSubtle=True, spacing="None", size="Small"),
    ]
    excerpt = card_text(truncate(notice.summary, DIGEST_EXCERPT))
    if excerpt:
        items.append(_block(excerpt, spacing="Small"))
    container: Payload = {"type": "Container", "separator": True, "items": items}
    link = safe_url(notice.link)
    if link:
        container["selectAction"] = {"type": "Action.OpenUrl", "title": "Read", "url": link}
    return container


def render_digest(notices: Sequence[Notice], *, topic_summary: str = "") -> list[Payload]:
    """One card with a container per notice; a new card only when 28 KB would be exceeded."""
    if not notices:
        return []
    heading = card_text(truncate(digest_heading(notices, topic_summary), 300))
    items = [_digest_item(notice) for notice in notices]

    def top(suffix: str) -> Payload:
        return _block(heading + suffix, weight="Bolder", size="Large")

    reserve = json_bytes(_message([top(" (99/99)")], [])) + 16
    groups = pack(
        [json_bytes(item) + 2 for item in items], capacity=MAX_BYTES - reserve, max_items=None
    )
    return [
        _message([top(part_suffix(index, len(groups))), *(items[i] for i in group)], [])
        for index, group in enumerate(groups)
    ]


KIND = Kind(
    name="teams",
    max_title=MAX_TITLE,
    max_text=MAX_TEXT,
    max_total=MAX_BYTES,
    total_unit="bytes",
    max_items_per_message=None,
    rates=(
        Rate(4, 1.0),
        Rate(60, 30.0),
        Rate(100, 3_600.0),
        Rate(150, 7_200.0),
        Rate(1_800, 86_400.0),
    ),
    render=render,
    render_digest=render_digest,
    measure=json_bytes,
)
