"""The delivery worker against real loopback receivers, a real store and a fake clock."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from feedbot.clock import utcnow
from feedbot.config import NotifyConfig, WebhookConfig
from feedbot.models import ArticleData, Origin
from feedbot.notify.deliver import Deliverer, DrainResult
from feedbot.notify.kinds import discord
from feedbot.notify.kinds.base import Rate
from feedbot.notify.plan import RetryPolicy, backoff, failing_reason, failing_text
from feedbot.notify.sender import Delivered, Outcome, Permanent, RetryLater, classify
from feedbot.notify.signing import sign
from feedbot.notify.throttle import Throttle, budgets_for, rate_from_limit
from feedbot.store import outbox
from feedbot.store.articles import upsert_article
from feedbot.store.db import Database
from tests.receivers import TOKEN_PATH, Receiver, Reply

NOW = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
NASTY_TITLE = "Q&A: <b>Alibaba</b> @everyone *Qwen* | pipes <!channel>"
LONG_SUMMARY = ("Alibaba Cloud cut prices again. " * 400)[:10_000]
SECRET = "whsec_dGhpcyBpcyBmZWVkYm90J3MgdGVzdCBrZXkgMDEyMzQ="  # made up for these tests


class FakeClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'feedbot.sqlite3'}")
    yield database
    database.close()


@pytest.fixture
def any_db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.close()


def seed(
    db: Database,
    n: int,
    webhooks: Sequence[str],
    *,
    now: datetime = NOW,
    title: str = "Alibaba news {i}",
    summary: str = "Alibaba Cloud story {i}.",
) -> list[str]:
    """*n* stored articles, each enqueued for *webhooks*; returns the article ids."""
    ids = []
    with db.write() as conn:
        for i in range(n):
            article = ArticleData(
                id=f"tag:feedbot.test,2026:a{i}",
                title=title.format(i=i),
                summary=summary.format(i=i),
                content="",
                link=f"https://news.example/articles/{i}",
                authors=(),
                language="en",
                categories=(),
                published=now - timedelta(minutes=n - i),
                updated=now - timedelta(minutes=n - i),
                origin=Origin("Example Tech News", "https://news.example/feed.xml"),
            )
            upsert_article(conn, article, now, topics=("alibaba",))
            outbox.enqueue(conn, article.id, webhooks, "article.new", now)
            ids.append(article.id)
    return ids


def hook(name: str, kind: str, url: str, **kw: Any) -> WebhookConfig:
    return WebhookConfig(name=name, kind=kind, url=url, **kw)  # type: ignore[arg-type]


def deliverer(
    db: Database, hooks: Sequence[WebhookConfig], clock: FakeClock, **notify: Any
) -> Deliverer:
    config = NotifyConfig(**{"read_timeout": "2s", "connect_timeout": "2s", **notify})
    return Deliverer(db, hooks, config, clock=clock, rand=lambda: 0.5)


def rows(db: Database, webhook: str | None = None) -> list[outbox.StoredDelivery]:
    with db.read() as conn:
        found = outbox.list_deliveries(conn, limit=10_000)
    return [d for d in found if webhook is None or d.webhook == webhook]


def state(db: Database, name: str) -> dict[str, Any]:
    with db.read() as conn:
        return outbox.webhook_states(conn).get(name, {})


# --- payloads arrive whole and harmless --------------------------------------------------


@pytest.mark.parametrize("kind", ["slack", "discord", "mattermost", "teams", "generic"])
def test_each_kind_gets_a_valid_truncated_harmless_message(db: Database, kind: str) -> None:
    clock = FakeClock()
    seed(db, 1, ["h"], title=NASTY_TITLE, summary=LONG_SUMMARY)
    with Receiver(kind) as r:
        result = deliverer(db, [hook("h", kind, r.url)], clock).drain_once()
    assert (result.delivered, result.messages) == (1, 1)
    assert r.problems == []
    [got] = r.received
    text = got.body.decode()
    assert "…" in text or "\\u2026" in text  # the 10,000-char summary was cut, not dropped
    assert "Alibaba Cloud cut prices again." in json.dumps(got.payload)
    p = got.payload
    if kind == "discord":
        embed = p["embeds"][0]
        assert embed["title"] == NASTY_TITLE  # shown as written, mentions disabled
        assert p["allowed_mentions"] == {"parse": []}
        assert embed["description"].endswith("…")
    elif kind == "slack":
        section = p["blocks"][0]["text"]["text"]
        assert "Q&amp;A: &lt;b&gt;Alibaba&lt;/b&gt; @everyone" in section
        assert "<!channel>" not in text
        assert "&lt;!channel&gt;" in section
    elif kind == "mattermost":
        assert p["attachments"][0]["title"].startswith("Q&A: <b>Alibaba</b> @\u200beveryone")
        assert "<!channel>" not in text
    elif kind == "teams":
        assert p["attachments"][0]["content"]["body"][0]["text"] == NASTY_TITLE
    else:
        data = p["data"]
        assert data["title"] == NASTY_TITLE
        assert data["summary_truncated"] is True
        assert data["summary"].endswith("…")
        assert len(data["summary"]) <= 4096
        assert got.headers["webhook-id"] == rows(db)[0].id


@pytest.mark.parametrize("kind", ["slack", "discord", "mattermost", "teams", "generic"])
def test_digests_cover_every_article_once_within_limits(db: Database, kind: str) -> None:
    clock = FakeClock()
    seed(db, 25, ["h"], summary=LONG_SUMMARY)
    with Receiver(kind) as r:
        d = deliverer(db, [hook("h", kind, r.url, digest_threshold=10)], clock)
        total = d.drain_once()
        while total.delivered < 25 and total.wake_at:  # wait for budgets on the fake clock
            clock.now = total.wake_at
            total += d.drain_once()
    assert total.delivered == 25
    assert total.messages < 25
    assert r.problems == []
    for i in range(25):
        link = re.compile(rf"https://news\.example/articles/{i}(?!\d)")
        assert sum(bool(link.search(got.body.decode())) for got in r.received) == 1, i
    assert {d.status for d in rows(db)} == {"done"}


def test_generic_signature_verifies_with_the_reference_library(db: Database) -> None:
    clock = FakeClock(utcnow())  # the library rejects timestamps 5 minutes off real time
    seed(db, 2, ["g"], now=clock.now)
    with Receiver("generic", secret=SECRET) as r:
        deliverer(db, [hook("g", "generic", r.url, secret=SECRET)], clock).drain_once()
    assert len(r.received) == 2
    assert r.problems == []
    ids = {d.id for d in rows(db)}
    assert {got.headers["webhook-id"] for got in r.received} == ids
    for got in r.received:
        Webhook(SECRET).verify(got.body, got.headers)  # raises when it does not verify


def test_shared_vector_signs_and_verifies(shared_dir: Path) -> None:
    path = shared_dir / "standards" / "standard-webhooks-vectors.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    v = json.loads(path.read_text(encoding="utf-8"))["vectors"][0]
    headers = sign(v["secret"], v["msg_id"], v["timestamp"], v["payload"].encode())
    assert headers["webhook-signature"] == v["expected_signature"]
    lib = Webhook(v["secret"])
    signed = lib.sign(v["msg_id"], datetime.fromtimestamp(v["timestamp"], UTC), v["payload"])
    assert signed == headers["webhook-signature"]


# --- outcomes -------------------------------------------------------------------------------


def test_429_waits_what_the_server_says_without_using_an_attempt(any_db: Database) -> None:
    clock = FakeClock()
    seed(any_db, 3, ["d"])
    with Receiver("discord") as r:
        r.reply(Reply(429, b'{"retry_after": 12.5, "global": false}', {"Retry-After": "13"}))
        d = deliverer(any_db, [hook("d", "discord", r.url, digest_threshold=50)], clock)
        first = d.drain_once()
        assert (first.retried, first.delivered, first.released) == (1, 0, 2)
        assert first.waiting == ("d",)
        assert first.wake_at == NOW + timedelta(seconds=13)
        [limited] = [row for row in rows(any_db) if row.last_status == 429]
        assert limited.attempts == 0
        assert limited.next_attempt == NOW + timedelta(seconds=13)
        assert state(any_db, "d")["next_send"] == NOW + timedelta(seconds=13)
        clock.advance(seconds=10)
        assert d.drain_once().claimed == 0
        restarted = deliverer(any_db, [hook("d", "discord", r.url, digest_threshold=50)], clock)
        assert restarted.drain_once().claimed == 0  # the persisted wait survives a restart
        clock.advance(seconds=3)
        done = restarted.drain_once()
        while done.delivered < 3 and done.wake_at:
            clock.now = done.wake_at
            done += restarted.drain_once()
    assert done.delivered == 3
    assert r.statuses.count(429) == 1
    assert len(r.received) == 4
    assert all(row.status == "done" for row in rows(any_db))


def test_flapping_5xx_backs_off_exponentially_then_delivers(any_db: Database) -> None:
    clock = FakeClock()
    seed(any_db, 1, ["g"])
    with Receiver("generic") as r:
        r.reply(Reply(500, b"oops"), Reply(503, b"busy"))
        d = deliverer(any_db, [hook("g", "generic", r.url)], clock, retry_base="30s")
        assert d.drain_once().retried == 1
        [row] = rows(any_db)
        assert (row.attempts, row.next_attempt, row.last_error) == (
            1,
            NOW + timedelta(seconds=30),
            "HTTP 500: oops",
        )
        clock.advance(seconds=29)
        assert d.drain_once().claimed == 0
        clock.advance(seconds=1)
        assert d.drain_once().retried == 1
        [row] = rows(any_db)
        assert row.attempts == 2
        assert row.next_attempt == clock.now + timedelta(seconds=60)
        clock.advance(seconds=60)
        assert d.drain_once().delivered == 1
    [row] = rows(any_db)
    assert (row.status, row.attempts, row.last_status) == ("done", 3, 204)
    ids = {got.headers["webhook-id"] for got in r.received}
    assert ids == {row.id}  # the same webhook-id on every retry


def test_5xx_until_max_attempts_dead_letters_with_a_short_reason(db: Database) -> None:
    clock = FakeClock()
    seed(db, 1, ["g"])
    with Receiver("generic") as r:
        r.reply(*[Reply(502, b"x" * 5000)] * 3)
        d = deliverer(db, [hook("g", "generic", r.url, max_attempts=3)], clock, retry_cap="1m")
        for _ in range(3):
            d.drain_once()
            clock.advance(minutes=2)
    [row] = rows(db)
    assert (row.status, row.attempts, row.last_status) == ("dead", 3, 502)
    assert row.last_error is not None
    assert row.last_error.startswith("gave up after 3 attempts: HTTP 502: xxx")
    assert len(row.last_error) <= 200


def test_other_4xx_is_dead_at_once(db: Database) -> None:
    clock = FakeClock()
    seed(db, 2, ["g"])
    with Receiver("generic") as r:
        r.reply(Reply(400, b"bad payload"))
        result = deliverer(db, [hook("g", "generic", r.url)], clock).drain_once()
    assert (result.dead, result.delivered) == (1, 1)  # the next message still went out
    dead = [row for row in rows(db) if row.status == "dead"]
    assert len(dead) == 1
    assert dead[0].last_error == "HTTP 400: bad payload"
    assert dead[0].attempts == 1


def test_timeout_retries_and_never_slows_other_webhooks(db: Database) -> None:
    """The fast webhook (first in config) is answered only once the slow request is in
    flight: a worker sending one webhook after the other could never satisfy that."""
    clock = FakeClock()
    slow_arrived, release_slow = threading.Event(), threading.Event()
    seed(db, 2, ["fast", "slow"])
    with (
        Receiver("generic", on_receive=lambda _: slow_arrived.set()) as slow,
        Receiver("generic") as fast,
    ):
        fast.reply(Reply(204, hold=slow_arrived))
        slow.reply(Reply(204, hold=release_slow), Reply(204, hold=release_slow))
        hooks = [hook("fast", "generic", fast.url), hook("slow", "generic", slow.url)]
        try:
            result = deliverer(db, hooks, clock, read_timeout="0.5s").drain_once()
        finally:
            release_slow.set()
    assert result.delivered == 2
    assert result.retried == 1
    assert {row.status for row in rows(db, "fast")} == {"done"}
    slow_rows = rows(db, "slow")
    assert sorted(row.last_error or "" for row in slow_rows) == ["", "timeout"]
    assert len(slow.received) == 1  # the slow webhook stopped at its first timeout


def test_deleted_discord_webhook_is_failing_until_a_test_succeeds(any_db: Database) -> None:
    clock = FakeClock()
    seed(any_db, 2, ["d"])
    with Receiver("discord") as r:
        r.reply(Reply(404, b'{"message": "Unknown Webhook", "code": 10015}'))
        d = deliverer(any_db, [hook("d", "discord", r.url)], clock)
        first = d.drain_once()
        assert first.failing == ("d",)
        assert first.delivered == 0
        assert "HTTP 404" in (state(any_db, "d")["failing"] or "")
        assert all(row.status == "pending" and row.attempts == 0 for row in rows(any_db))
        clock.advance(hours=1)
        again = d.drain_once()
        assert (again.claimed, again.failing) == (0, ("d",))
        assert len(r.received) == 1  # nothing sent while failing
        outcome = d.test_webhook("d")
        assert outcome.status == 204
        assert state(any_db, "d")["failing"] is None
        assert d.drain_once().delivered == 2
    assert r.problems == []


def test_a_new_url_clears_the_failing_state(db: Database) -> None:
    clock = FakeClock()
    seed(db, 1, ["s"])
    with Receiver("slack") as old, Receiver("slack", path="/services/T1/B2/newtoken") as new:
        old.reply(Reply(404, b"no_service"))
        assert deliverer(db, [hook("s", "slack", old.url)], clock).drain_once().failing == ("s",)
        assert deliverer(db, [hook("s", "slack", old.url)], clock).drain_once().claimed == 0
        moved = deliverer(db, [hook("s", "slack", new.url)], clock).drain_once()
    assert moved.delivered == 1
    assert len(new.received) == 1
    assert state(db, "s")["failing"] is None


# --- rate budgets and digests ---------------------------------------------------------------


def test_burst_of_50_to_discord_makes_digests_within_limits_and_no_429(any_db: Database) -> None:
    clock = FakeClock()
    seed(any_db, 50, ["d"], summary=LONG_SUMMARY)
    with Receiver("discord", rate=(5, 2.0), clock=clock) as r:
        result = deliverer(any_db, [hook("d", "discord", r.url)], clock).drain_once()
    assert (result.delivered, result.messages) == (50, 5)
    assert r.statuses == [204] * 5
    assert r.problems == []
    for got in r.received:
        assert len(got.payload["embeds"]) <= discord.MAX_EMBEDS
        assert discord.measure(got.payload) <= discord.MAX_EMBED_TOTAL
    contents = [got.payload["content"] for got in r.received]
    assert contents[0].startswith("50 new articles: alibaba (50)")
    assert contents[0].endswith("(1/5)")


def test_budget_exhausted_mid_digest_releases_and_resumes_on_the_fake_clock(db: Database) -> None:
    clock = FakeClock()
    seed(db, 70, ["d"])
    with Receiver("discord", rate=(5, 2.0), clock=clock) as r:
        d = deliverer(db, [hook("d", "discord", r.url)], clock)
        first = d.drain_once()
        assert (first.messages, first.delivered, first.released) == (5, 50, 20)
        assert first.wake_at == NOW + timedelta(seconds=2)
        assert d.drain_once().claimed == 0  # no budget yet: nothing is even claimed
        clock.advance(seconds=2)
        second = d.drain_once()
    assert (second.messages, second.delivered) == (2, 20)
    assert 429 not in r.statuses
    assert r.problems == []


def test_slack_sends_one_per_second_below_the_digest_threshold(db: Database) -> None:
    clock = FakeClock()
    seed(db, 3, ["s"])
    with Receiver("slack", rate=(1, 1.0), clock=clock) as r:
        d = deliverer(db, [hook("s", "slack", r.url)], clock)
        assert d.drain_once().delivered == 1
        blocked = d.drain_once()
        assert (blocked.claimed, blocked.waiting) == (0, ("s",))
        assert blocked.wake_at == NOW + timedelta(seconds=1)
        clock.advance(seconds=1)
        assert d.drain_once().delivered == 1
        clock.advance(seconds=1)
        assert d.drain_once().delivered == 1
    assert r.statuses == [200] * 3


def test_rate_limit_in_config_overrides_the_kind(db: Database) -> None:
    clock = FakeClock()
    seed(db, 5, ["g"])
    with Receiver("generic") as r:
        d = deliverer(db, [hook("g", "generic", r.url, rate_limit=2)], clock)
        assert d.drain_once().delivered == 2
        assert d.drain_once().claimed == 0
        clock.advance(seconds=1)
        assert d.drain_once().delivered == 2
    assert len(r.received) == 4


def test_disabled_and_unknown_webhooks_are_left_alone(db: Database) -> None:
    clock = FakeClock()
    seed(db, 1, ["off", "gone-from-config"])
    with Receiver("generic") as r:
        result = deliverer(db, [hook("off", "generic", r.url, enabled=False)], clock).drain_once()
    assert result == DrainResult()
    assert r.received == []


# --- secrets ----------------------------------------------------------------------------


def test_urls_and_secrets_never_reach_logs_errors_or_reprs(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    seed(db, 2, ["g", "d"])
    caplog.set_level(logging.DEBUG, logger="feedbot")
    with Receiver("generic") as g, Receiver("discord") as dc:
        g.reply(Reply(500, f"cannot post to {g.url} with {SECRET}".encode()))
        dc.reply(Reply(404, f"no webhook at {dc.url}".encode()))
        hooks = [hook("g", "generic", g.url, secret=SECRET), hook("d", "discord", dc.url)]
        d = deliverer(db, hooks, clock)
        d.drain_once()
        shown = [repr(d), *map(repr, hooks), caplog.text]
        shown += [row.last_error or "" for row in rows(db)]
        shown += [str(state(db, name)) for name in ("g", "d")]
    token = TOKEN_PATH.rsplit("/", 1)[1]
    secret_body = SECRET.removeprefix("whsec_")
    for text in shown:
        assert token not in text
        assert secret_body not in text
    assert "HTTP 500" in caplog.text
    assert "****" in (rows(db, "g")[0].last_error or "")


# --- the pure parts ---------------------------------------------------------------------

RATE_HEADERS = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1.5"}


@pytest.mark.parametrize(
    ("kind", "status", "headers", "body", "expected"),
    [
        ("discord", 204, {}, "", Delivered(204)),
        ("discord", 204, RATE_HEADERS, "", Delivered(204, "", 1.5)),
        ("slack", 200, {}, "ok", Delivered(200, "ok")),
        ("slack", 429, {"Retry-After": "30"}, "", RetryLater(30.0, "HTTP 429", 429, True)),
        (
            "discord",
            429,
            {},
            '{"retry_after": 2.5}',
            RetryLater(2.5, 'HTTP 429: {"retry_after": 2.5}', 429, True, '{"retry_after": 2.5}'),
        ),
        (
            "discord",
            429,
            {"x-ratelimit-reset-after": "3.25"},
            "",
            RetryLater(3.25, "HTTP 429", 429, True),
        ),
        (
            "generic",
            429,
            {"Retry-After": "Sun, 01 Mar 2026 13:01:00 GMT"},
            "",
            RetryLater(60.0, "HTTP 429", 429, True),
        ),
        ("generic", 429, {"Retry-After": "soon"}, "", RetryLater(None, "HTTP 429", 429, True)),
        ("generic", 503, {"Retry-After": "120"}, "", RetryLater(120.0, "HTTP 503", 503)),
        ("generic", 500, {}, "boom", RetryLater(None, "HTTP 500: boom", 500, False, "boom")),
        ("generic", 408, {}, "", RetryLater(None, "HTTP 408", 408)),
        (
            "slack",
            404,
            {},
            "no_service",
            Permanent("HTTP 404: no_service", True, 404, "no_service"),
        ),
        ("discord", 410, {}, "", Permanent("HTTP 410", True, 410)),
        ("generic", 404, {}, "", Permanent("HTTP 404", False, 404)),
        ("teams", 400, {}, "", Permanent("HTTP 400", False, 400)),
        ("generic", 301, {}, "", Permanent("HTTP 301: redirect not followed", False, 301)),
    ],
)
def test_classify(
    kind: str, status: int, headers: dict[str, str], body: str, expected: Outcome
) -> None:
    assert classify(kind, status, headers, body, NOW) == expected


def test_backoff_doubles_with_jitter_and_stops_at_the_cap() -> None:
    policy = RetryPolicy(10, timedelta(seconds=30), timedelta(hours=6))
    exact = [backoff(n, policy, lambda: 0.5).total_seconds() for n in range(1, 12)]
    assert exact[:5] == [30, 60, 120, 240, 480]
    assert exact[-1] == 6 * 3600
    assert backoff(1, policy, lambda: 0.0) == timedelta(seconds=24)
    assert backoff(1, policy, lambda: 1.0) == timedelta(seconds=36)
    assert backoff(50, policy, lambda: 1.0) == timedelta(hours=6)


def test_budgets_and_the_rate_limit_override() -> None:
    assert rate_from_limit(2.5) == Rate(5, 2.0)
    assert rate_from_limit(0.2) == Rate(1, 5.0)
    budgets = budgets_for("d", "https://discord.example/api/webhooks/1/x", discord.KIND.rates, 1)
    assert [(b.key.split(":")[0], b.rate) for b in budgets] == [
        ("channel", Rate(30, 60.0, "channel")),
        ("webhook", Rate(1, 1.0)),
    ]
    throttle = Throttle()
    assert [throttle.acquire(budgets, NOW + timedelta(seconds=s)) for s in (0, 0.5, 1)] == [
        0.0,
        0.5,
        0.0,
    ]


def test_failing_state_follows_the_configured_url_and_secret() -> None:
    old = hook("s", "slack", "https://hooks.slack.example/services/T1/B1/old")
    stored = failing_text("HTTP 404: no_service", old)
    assert failing_reason(stored, old) == "HTTP 404: no_service"
    assert failing_reason(stored, hook("s", "slack", old.url, secret="x" * 20)) is None
    assert failing_reason(stored, hook("s", "slack", old.url + "x")) is None
    assert failing_reason("set by hand", old) == "set by hand"
    assert failing_reason(None, old) is None


def test_a_missing_ca_bundle_keeps_the_delivery_pending_and_names_the_bundle(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests raises a bare OSError before connecting when the CA bundle the environment
    names does not exist: the delivery is retried later and the reason says which file."""
    missing = str(tmp_path / "no-such-bundle.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", missing)
    clock = FakeClock()
    seed(db, 1, ["secure"])
    with Receiver("generic") as receiver:
        url = receiver.url.replace("http:", "https:")
        result = deliverer(db, [hook("secure", "generic", url)], clock).drain_once()
    assert (result.delivered, result.retried) == (0, 1)
    [row] = rows(db, "secure")
    assert row.status == "pending"
    assert row.last_error is not None
    assert row.last_error.startswith("TLS setup failed: Could not find a suitable TLS CA")
    assert missing in row.last_error
    assert TOKEN_PATH not in row.last_error
    assert receiver.received == []
