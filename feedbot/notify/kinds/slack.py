"""Slack incoming webhooks: mrkdwn text plus Block Kit blocks.

Every feed-supplied string goes through ``escape`` (only ``&``, ``<``, ``>``, as Slack
asks), so ``<!channel>`` or a fake ``<url|link>`` in a headline stays text.
"""

from __future__ import annotations

from collections.abc import Sequence

from feedbot.notify.kinds.base import (
    Kind,
    Notice,
    Payload,
    Rate,
    digest_heading,
    epoch,
    escape_entities,
    event_label,
    join_within,
    json_chars,
    pack,
    part_suffix,
    safe_url,
    topics_text,
    truncate,
    truncate_marked,
    when_text,
)

MAX_TITLE = 250  # our choice; keeps the bold link line short
MAX_SECTION = 3_000  # Block Kit section text
MAX_CONTEXT = 3_000  # one context text element (same text-object limit)
MAX_HEADER = 150  # header block plain_text
MAX_BLOCKS = 50  # blocks per message
MAX_TOTAL = 40_000  # Slack truncates text beyond this; we bound the whole JSON body
DIGEST_EXCERPT = 300


escape = escape_entities  # Slack's three control characters


def link(url: str | None, label: str) -> str:
    """``<url|label>`` with *label* already escaped; just the label without a safe URL."""
    safe = safe_url(url)
    if safe is None:
        return label
    for raw, encoded in (("|", "%7C"), ("<", "%3C"), (">", "%3E"), (" ", "%20")):
        safe = safe.replace(raw, encoded)
    return f"<{escape(safe)}|{label}>"


def date_token(notice: Notice) -> str:
    """Slack's ``<!date>`` token: shown in each reader's time zone, UTC text as fallback."""
    return f"<!date^{epoch(notice.published)}^{{date_short_pretty}} {{time}}|{when_text(notice.published)}>"


def _title(notice: Notice) -> str:
    return link(notice.link, truncate_marked(notice.title, MAX_TITLE, escape))


def _meta(notice: Notice) -> str:
    parts = [event_label(notice.event)]
    if notice.source:
        parts.append(link(notice.source_url, truncate_marked(notice.source, 200, escape)))
    parts.append(date_token(notice))
    if notice.topics:
        parts.append("Topics: " + truncate_marked(topics_text(notice.topics), 500, escape))
    return " · ".join(parts)


def render(notice: Notice) -> Payload:
    """One message: fallback text, a section (title link + summary) and context blocks."""
    title = _title(notice)
    head = f"*{title}*"
    room = MAX_SECTION - len(head) - 1
    summary = truncate_marked(notice.summary, room, escape) if room > 0 else ""
    section = f"{head}\n{summary}" if summary else head
    blocks: list[Payload] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": section}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _meta(notice)}]},
    ]
    if notice.also_reported:
        others = [link(url, escape(truncate(name, 80))) for name, url in notice.also_reported]
        text = "Also reported by " + join_within(others, MAX_CONTEXT - 20)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
    source = f" ({escape(truncate(notice.source, 200))})" if notice.source else ""
    return {
        "text": f"{event_label(notice.event)}: {title}{source}",
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _digest_section(notice: Notice) -> Payload:
    head = f"*{_title(notice)}*\n{_meta(notice)}"
    room = min(DIGEST_EXCERPT, MAX_SECTION - len(head) - 1)
    excerpt = truncate_marked(notice.summary, room, escape) if room > 0 else ""
    text = f"{head}\n{excerpt}" if excerpt else head
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def render_digest(notices: Sequence[Notice], *, topic_summary: str = "") -> list[Payload]:
    """Header plus one section per notice; a new message only at 50 blocks or 40,000 chars."""
    if not notices:
        return []
    heading = digest_heading(notices, topic_summary)
    sections = [_digest_section(notice) for notice in notices]
    reserve = 2 * MAX_HEADER * 6 + 200  # header block and fallback text, JSON-escaped
    groups = pack(
        [json_chars(section) + 2 for section in sections],
        capacity=MAX_TOTAL - reserve,
        max_items=MAX_BLOCKS - 1,
    )
    messages = []
    for index, group in enumerate(groups):
        title = truncate(heading, MAX_HEADER - 8) + part_suffix(index, len(groups))
        header = {"type": "header", "text": {"type": "plain_text", "text": title}}
        messages.append(
            {
                "text": escape(title),
                "blocks": [header, *(sections[i] for i in group)],
                "unfurl_links": False,
                "unfurl_media": False,
            }
        )
    return messages


KIND = Kind(
    name="slack",
    max_title=MAX_TITLE,
    max_text=MAX_SECTION,
    max_total=MAX_TOTAL,
    total_unit="chars",
    max_items_per_message=MAX_BLOCKS,
    rates=(Rate(1, 1.0),),
    render=render,
    render_digest=render_digest,
    measure=json_chars,
)
