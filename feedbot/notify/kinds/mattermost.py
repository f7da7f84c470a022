"""Mattermost incoming webhooks: Slack-compatible text plus message attachments.

Mattermost renders Markdown (not Slack mrkdwn) in ``text``, attachment ``text`` and field
values, turns ``<!channel>`` into ``@channel`` and notifies ``@mentions`` there. So
Markdown fields get entity escaping (``&``, ``<``, ``>``), backslash escapes and a
zero-width space after every ``@``; plain fields (title, author, fallback) only the
mention guard.
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
    markdown_escape,
    pack,
    part_suffix,
    safe_url,
    topics_text,
    truncate,
    truncate_marked,
    when_text,
)

MAX_TITLE = 256  # our choice
MAX_TEXT = 4_000  # our choice: Mattermost collapses long attachment text anyway
MAX_MESSAGE = 16_383  # post message runes (Mattermost >= 5.0)
MAX_PROPS = 760_000  # props (attachments) runes a post may carry from a client
MAX_SOURCE = 200
DIGEST_EXCERPT = 300
COLOR = "#FF6A00"
_ZWSP = "\u200b"


def plain(text: str) -> str:
    """Guard a plain-text field: ``@name`` and ``<!channel>`` can no longer mention."""
    return text.replace("@", "@" + _ZWSP).replace("<!", "<" + _ZWSP + "!")


def markdown(text: str) -> str:
    """Escape text for a Markdown field: entities, Markdown syntax, mentions."""
    return markdown_escape(escape_entities(text)).replace("@", "@" + _ZWSP)


def _link(url: str | None, label: str) -> str:
    safe = safe_url(url)
    if safe is None:
        return label
    return f"[{label}]({safe.replace('(', '%28').replace(')', '%29')})"


def _attachment(notice: Notice, text_limit: int, *, compact: bool) -> Payload:
    title = plain(truncate(notice.title, MAX_TITLE)) or "(untitled)"
    source = plain(truncate(notice.source, MAX_SOURCE)) if notice.source else None
    attachment: Payload = {
        "fallback": f"{event_label(notice.event)}: {title}" + (f" ({source})" if source else ""),
        "color": COLOR,
        "title": title,
        "ts": epoch(notice.published),
        "footer": "feedbot" if notice.event == "article.new" else "feedbot · updated",
    }
    link = safe_url(notice.link)
    if link:
        attachment["title_link"] = link
    if source:
        attachment["author_name"] = source
        source_url = safe_url(notice.source_url)
        if source_url:
            attachment["author_link"] = source_url
    text = truncate_marked(notice.summary, text_limit, markdown)
    if text:
        attachment["text"] = text
    fields: list[Payload] = []
    if notice.topics:
        value = markdown(truncate(topics_text(notice.topics), 500))
        fields.append({"title": "Topics", "value": value, "short": True})
    if not compact:
        fields.append({"title": "Published", "value": when_text(notice.published), "short": True})
        others = [_link(url, markdown(truncate(name, 80))) for name, url in notice.also_reported]
        if others:
            value = join_within(others, 2_000)
            fields.append({"title": "Also reported by", "value": value, "short": False})
    if fields:
        attachment["fields"] = fields
    return attachment


def render(notice: Notice) -> Payload:
    """One post: a short text line and one attachment carrying the article."""
    source = f" from {markdown(truncate(notice.source, MAX_SOURCE))}" if notice.source else ""
    return {
        "text": f"**{event_label(notice.event)} article**{source}",
        "attachments": [_attachment(notice, MAX_TEXT, compact=False)],
    }


def render_digest(notices: Sequence[Notice], *, topic_summary: str = "") -> list[Payload]:
    """One post with a compact attachment per notice; split only past the props limit."""
    if not notices:
        return []
    attachments = [_attachment(n, DIGEST_EXCERPT, compact=True) for n in notices]
    groups = pack(
        [json_chars(attachment) + 2 for attachment in attachments],
        capacity=MAX_PROPS - 2 * MAX_MESSAGE,
        max_items=None,
    )
    heading = markdown(truncate(digest_heading(notices, topic_summary), 1_000))
    return [
        {
            "text": f"**{heading}**{part_suffix(index, len(groups))}",
            "attachments": [attachments[i] for i in group],
        }
        for index, group in enumerate(groups)
    ]


KIND = Kind(
    name="mattermost",
    max_title=MAX_TITLE,
    max_text=MAX_TEXT,
    max_total=MAX_PROPS,
    total_unit="chars",
    max_items_per_message=None,
    rates=(Rate(10, 1.0),),
    render=render,
    render_digest=render_digest,
    measure=json_chars,
)
