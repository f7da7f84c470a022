from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from feedbot.errors import NotifyError
from feedbot.models import Origin, StoredArticle
from feedbot.notify.kinds import discord, slack, teams
from feedbot.notify.kinds.base import fit, join_within, json_bytes, pack, truncate
from feedbot.notify.payloads import KINDS, Notice, Rate, kind, notice_from_article

PUBLISHED = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
HOSTILE = "Q&A: <Qwen> | Alibaba *ships* @everyone"
LONG = " ".join(f"mot{i}" for i in range(2_500))  # 10,000+ characters of words
CJK = "阿里巴巴发布通义千问新模型" * 800  # 10,400 characters, no spaces


def notice(**changes: Any) -> Notice:
    base = Notice(
        delivery_id="dlv-1",
        event="article.new",
        article_id="tag:feedbot.example,2024:article-1",
        title="Alibaba Cloud cuts model prices",
        summary="The cloud unit lowered prices for its large language models.",
        link="https://news.example/articles/1",
        source="Example Tech News",
        source_url="https://news.example/feed.xml",
        published=PUBLISHED,
        topics=("Alibaba", "Qwen"),
    )
    return replace(base, **changes)


# Where each kind puts the summary and the title of a single message.
SUMMARY: dict[str, Callable[[dict[str, Any]], str]] = {
    "slack": lambda p: p["blocks"][0]["text"]["text"].split("\n", 1)[1],
    "discord": lambda p: p["embeds"][0]["description"],
    "mattermost": lambda p: p["attachments"][0]["text"],
    "teams": lambda p: p["attachments"][0]["content"]["body"][2]["text"],
    "generic": lambda p: p["data"]["summary"],
}
TITLE: dict[str, Callable[[dict[str, Any]], str]] = {
    "slack": lambda p: p["text"],
    "discord": lambda p: p["embeds"][0]["title"],
    "mattermost": lambda p: p["attachments"][0]["title"],
    "teams": lambda p: p["attachments"][0]["content"]["body"][0]["text"],
    "generic": lambda p: p["data"]["title"],
}


def within_limits(name: str, payload: dict[str, Any]) -> None:
    """JSON round trip is lossless and the platform's own measure is within its limit."""
    k = KINDS[name]
    again = json.loads(json.dumps(payload))
    assert again == payload
    if k.max_total is not None:
        assert k.measure(again) <= k.max_total
    if name == "discord":
        for embed in again["embeds"]:
            assert len(embed["title"]) <= discord.MAX_TITLE
            assert len(embed.get("description", "")) <= discord.MAX_DESCRIPTION
            assert len(embed["footer"]["text"]) <= discord.MAX_FOOTER
            for field in embed.get("fields", []):
                assert len(field["name"]) <= discord.MAX_FIELD_NAME
                assert 0 < len(field["value"]) <= discord.MAX_FIELD_VALUE
        assert len(again.get("content", "")) <= discord.MAX_CONTENT
        assert again["allowed_mentions"] == {"parse": []}
    if name == "slack":
        assert len(again["blocks"]) <= slack.MAX_BLOCKS
        for block in again["blocks"]:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= slack.MAX_SECTION
            if block["type"] == "header":
                assert len(block["text"]["text"]) <= slack.MAX_HEADER


@pytest.mark.parametrize("name", list(KINDS))
def test_plain_notice_renders_within_limits(name: str) -> None:
    payload = KINDS[name].render(notice())
    within_limits(name, payload)
    text = json.dumps(payload, ensure_ascii=False)
    for needle in ("Alibaba Cloud cuts model prices", "Example Tech News", "Qwen"):
        assert needle in text
    assert "2024" in text  # when


@pytest.mark.parametrize("name", list(KINDS))
def test_long_summary_is_truncated_not_lost(name: str) -> None:
    payload = KINDS[name].render(notice(summary=LONG))
    within_limits(name, payload)
    summary = SUMMARY[name](payload)
    assert summary.startswith(LONG[:200])
    assert summary.endswith("…")
    assert len(summary) < len(LONG)
    assert not summary[:-1].endswith(" mot")  # cut at a word boundary


@pytest.mark.parametrize("name", list(KINDS))
def test_cjk_summary_is_truncated_by_the_platform_count(name: str) -> None:
    payload = KINDS[name].render(notice(summary=CJK, title="阿里巴巴" * 100))
    within_limits(name, payload)
    summary = SUMMARY[name](payload)
    assert summary.startswith(CJK[:100])
    assert summary.endswith("…")


def test_teams_fills_but_does_not_exceed_its_byte_budget() -> None:
    payload = teams.render(notice(summary=CJK))
    size = json_bytes(payload)
    assert teams.MAX_BYTES - 12 < size <= teams.MAX_BYTES  # one more character would not fit


def test_discord_full_embed_stays_under_every_limit() -> None:
    others = tuple((f"Source {i}", f"https://other{i}.example/a") for i in range(40))
    payload = discord.render(notice(summary=LONG, title="T" * 400, also_reported=others))
    embed = payload["embeds"][0]
    assert discord.measure(payload) <= discord.MAX_EMBED_TOTAL
    assert discord.MAX_DESCRIPTION - 30 < len(embed["description"]) <= discord.MAX_DESCRIPTION
    assert embed["title"] == "T" * 255 + "…"
    assert embed["fields"][1]["value"].endswith("more")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("slack", "Q&amp;A: &lt;Qwen&gt; | Alibaba *ships* @everyone"),
        ("discord", HOSTILE),
        ("mattermost", HOSTILE.replace("@", "@\u200b")),
        ("teams", HOSTILE),
        ("generic", HOSTILE),
    ],
)
def test_hostile_title_arrives_harmless_and_readable(name: str, expected: str) -> None:
    payload = KINDS[name].render(notice(title=HOSTILE))
    within_limits(name, payload)
    assert expected in TITLE[name](payload)
    if name == "slack":
        assert "<Qwen>" not in json.dumps(payload)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("slack", "ping &lt;!channel&gt; and &lt;https://evil.example|here&gt;"),
        ("discord", r"ping \<!channel\> and \[here\]\(https://evil.example\)"),
        ("mattermost", r"ping &lt;!channel&gt; and \[here\]\(https://evil.example\)"),
        ("teams", "ping <!channel> and [here]\u200b(https://evil.example)"),
        ("generic", "ping <!channel> and [here](https://evil.example)"),
    ],
)
def test_markup_in_summary_stays_text(name: str, expected: str) -> None:
    summary = "ping <!channel> and " + (
        "<https://evil.example|here>" if name == "slack" else "[here](https://evil.example)"
    )
    payload = KINDS[name].render(notice(summary=summary))
    assert SUMMARY[name](payload) == expected


def test_mattermost_mentions_in_summary_cannot_notify() -> None:
    payload = KINDS["mattermost"].render(notice(summary="@all @channel read this"))
    assert SUMMARY["mattermost"](payload) == "@\u200ball @\u200bchannel read this"


@pytest.mark.parametrize("name", list(KINDS))
def test_unsafe_links_are_dropped(name: str) -> None:
    payload = KINDS[name].render(notice(link="javascript:alert(1)", source_url="data:text/x"))
    within_limits(name, payload)
    assert "javascript:" not in json.dumps(payload)
    assert "data:text" not in json.dumps(payload)


def test_slack_link_survives_pipes_and_ampersands_in_urls() -> None:
    payload = slack.render(notice(link="https://news.example/a?x=1&y=a|b"))
    assert payload["text"].startswith("New: <https://news.example/a?x=1&amp;y=a%7Cb|Alibaba")
    assert payload["unfurl_links"] is False


def test_slack_context_says_where_when_and_which_topics() -> None:
    context = slack.render(notice())["blocks"][1]["elements"][0]["text"]
    assert "<https://news.example/feed.xml|Example Tech News>" in context
    assert f"<!date^{int(PUBLISHED.timestamp())}^" in context
    assert "|2024-05-01 08:30 UTC>" in context
    assert "Topics: Alibaba, Qwen" in context


def test_discord_embed_shape() -> None:
    payload = discord.render(notice(event="article.updated", updated=PUBLISHED))
    embed = payload["embeds"][0]
    assert embed["url"] == "https://news.example/articles/1"
    assert embed["timestamp"] == "2024-05-01T08:30:00Z"
    assert embed["footer"]["text"] == "Example Tech News · Updated"
    assert embed["fields"][0] == {"name": "Topics", "value": "Alibaba, Qwen", "inline": True}


def test_teams_card_shape() -> None:
    payload = teams.render(notice())
    assert payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert all(block["type"] == "TextBlock" for block in card["body"])
    assert card["actions"][0] == {
        "type": "Action.OpenUrl",
        "title": "Read article",
        "url": "https://news.example/articles/1",
    }


def test_generic_schema_v1() -> None:
    later = PUBLISHED + timedelta(hours=2)
    payload = KINDS["generic"].render(
        notice(
            event="article.updated",
            updated=later,
            also_reported=(("Other Feed", "https://other.example/x"),),
        )
    )
    assert payload == {
        "type": "article.updated",
        "version": 1,
        "timestamp": "2024-05-01T10:30:00Z",
        "data": {
            "id": "tag:feedbot.example,2024:article-1",
            "title": "Alibaba Cloud cuts model prices",
            "summary": "The cloud unit lowered prices for its large language models.",
            "summary_truncated": False,
            "link": "https://news.example/articles/1",
            "source": {"title": "Example Tech News", "url": "https://news.example/feed.xml"},
            "published": "2024-05-01T08:30:00Z",
            "updated": "2024-05-01T10:30:00Z",
            "topics": ["Alibaba", "Qwen"],
            "also_reported": [{"source": "Other Feed", "link": "https://other.example/x"}],
        },
    }


def many(count: int, *, title: str = "Headline", summary: str = LONG) -> list[Notice]:
    return [
        notice(
            delivery_id=f"dlv-{i}",
            article_id=f"tag:feedbot.example,2024:{i}",
            title=f"{title} {i}",
            summary=summary,
            link=f"https://news.example/articles/{i}",
            published=PUBLISHED + timedelta(minutes=i),
        )
        for i in range(count)
    ]


@pytest.mark.parametrize(
    "notices",
    [
        pytest.param(many(50), id="short-titles"),
        pytest.param(many(50, title="T" * 400), id="long-titles"),
        pytest.param(many(50, title="阿里巴巴" * 80, summary=CJK), id="cjk"),
    ],
)
def test_discord_digest_of_50_uses_five_full_messages(notices: list[Notice]) -> None:
    messages = discord.render_digest(notices, topic_summary="Alibaba and Qwen today")
    assert len(messages) == math.ceil(len(notices) / discord.MAX_EMBEDS)
    for message in messages:
        within_limits("discord", message)
        assert len(message["embeds"]) <= discord.MAX_EMBEDS
        assert discord.measure(message) <= discord.MAX_EMBED_TOTAL
    assert messages[0]["content"] == "Alibaba and Qwen today (1/5)"


@pytest.mark.parametrize(
    ("name", "count"),
    [("slack", 2), ("discord", 5), ("mattermost", 1), ("teams", 2), ("generic", 1)],
)
def test_digest_keeps_every_notice_once_and_in_order(name: str, count: int) -> None:
    notices = many(50)
    messages = KINDS[name].render_digest(notices, topic_summary="")
    text = "".join(json.dumps(m) for m in messages)
    found = [list(re.finditer(rf"news\.example/articles/{i}(?!\d)", text)) for i in range(50)]
    assert all(len(hits) == 1 for hits in found)
    positions = [hits[0].start() for hits in found]
    assert positions == sorted(positions)
    for message in messages:
        within_limits(name, message)
    assert len(messages) == count  # the fewest the limits allow
    assert "50 new articles" in json.dumps(messages[0])


@pytest.mark.parametrize("name", list(KINDS))
def test_cjk_digest_within_limits(name: str) -> None:
    notices = many(50, title="阿里巴巴" * 80, summary=CJK)
    messages = KINDS[name].render_digest(notices, topic_summary="通义千问" * 100)
    assert messages
    for message in messages:
        within_limits(name, message)


def test_slack_digest_splits_only_at_50_blocks() -> None:
    messages = slack.render_digest(many(60, summary="short"))
    assert [len(m["blocks"]) for m in messages] == [50, 12]
    assert messages[1]["blocks"][0]["text"]["text"].endswith("(2/2)")


@pytest.mark.parametrize("name", list(KINDS))
def test_empty_digest_is_no_message(name: str) -> None:
    assert KINDS[name].render_digest([]) == []


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("hello world again", 10, "hello…"),
        ("unbrokenwordhere", 8, "unbroke…"),
        ("阿里巴巴集团发布新模型", 5, "阿里巴巴…"),
        ("anything", 1, "…"),
        ("anything", 0, ""),
    ],
)
def test_truncate(text: str, limit: int, expected: str) -> None:
    assert truncate(text, limit) == expected


@pytest.mark.parametrize(
    ("sizes", "capacity", "max_items", "expected"),
    [
        ([], 10, 2, []),
        ([3, 3, 3, 3], 6, None, [range(0, 2), range(2, 4)]),
        ([1] * 5, None, 2, [range(0, 2), range(2, 4), range(4, 5)]),
        ([5, 1, 5], 6, 10, [range(0, 2), range(2, 3)]),
        ([9, 1], 6, 10, [range(0, 1), range(1, 2)]),  # an oversized item stands alone
    ],
)
def test_pack(
    sizes: list[int], capacity: int | None, max_items: int | None, expected: list[range]
) -> None:
    assert pack(sizes, capacity=capacity, max_items=max_items) == expected


@pytest.mark.parametrize(
    ("parts", "limit", "expected"),
    [
        (["a", "b"], 10, "a, b"),
        (["alpha", "beta", "gamma"], 16, "alpha, +2 more"),
        (["toolongpart"], 8, "+1 more"),
        (["toolongpart"], 5, ""),
    ],
)
def test_join_within(parts: list[str], limit: int, expected: str) -> None:
    assert join_within(parts, limit) == expected


def test_fit_finds_the_largest_budget() -> None:
    assert fit(lambda n: "x" * n, len, 37, 100) == "x" * 37
    assert fit(lambda n: "x" * n, len, 500, 100) == "x" * 100


@pytest.mark.parametrize(
    "changes",
    [
        {"event": "article.deleted"},
        {"published": datetime(2024, 5, 1, 8, 30)},  # naive on purpose
    ],
)
def test_invalid_notice_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(NotifyError):
        notice(**changes)


def test_kinds_declare_limits_as_data() -> None:
    assert kind("discord").rates == (Rate(5, 2.0), Rate(30, 60.0, scope="channel"))
    assert kind("slack").rates == (Rate(1, 1.0),)
    assert kind("teams").total_unit == "bytes"
    assert kind("generic").rates == ()
    with pytest.raises(NotifyError, match="known: discord, generic"):
        kind("pager")


def test_notice_from_stored_article() -> None:
    article = StoredArticle(
        id="tag:feedbot.example,2024:9",
        title="Title",
        summary="Summary",
        content="<p>Summary</p>",
        link="https://news.example/9",
        authors=(),
        language="fr",
        categories=(),
        published=PUBLISHED,
        updated=PUBLISHED,
        origin=Origin(title="Feed", url="https://feed.example/rss"),
        content_hash="h",
        topics=("Alibaba",),
        related=(Origin(title="Other", url="https://other.example/rss", link="https://o/1"),),
    )
    made = notice_from_article(article, delivery_id="dlv-9", event="article.new")
    assert (made.source, made.source_url) == ("Feed", "https://feed.example/rss")
    assert made.also_reported == (("Other", "https://o/1"),)
    assert made.topics == ("Alibaba",)
