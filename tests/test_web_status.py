"""The daemon's web app on a real waitress server: status page, health, readiness, auth."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from feedbot.config import Config, config_from_mapping
from feedbot.metrics import Metrics
from feedbot.models import ArticleData, Origin
from feedbot.notify.secrets import mask_url
from feedbot.store import articles as store_articles
from feedbot.store import outbox
from feedbot.store import upstreams as store_upstreams
from feedbot.store.db import Database
from feedbot.web.app import authorized, is_loopback, make_web_app, readiness
from feedbot.web.server import Server, serve
from feedbot.web.status import display_url, duration, safe_href

NOW = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
SLACK_URL = "https://hooks.slack.com/services/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"
SLACK_TAIL = "s3cr3tW3bh00kT0k3nXYZ123"
GENERIC_URL = "http://127.0.0.1:9/hooks/generic-Zq8Lm2Xv7Rt4"
SIGNING_SECRET = "whsec_Qm9vZ2xlIGlzIG5vdCBhIHNlY3JldA"
UPSTREAM_TOKEN = "hunter2hunter2"
BROKEN_URL = f"http://127.0.0.1:9/broken.xml?format=rss&token={UPSTREAM_TOKEN}"
BROKEN_ERROR = f"GET {BROKEN_URL} answered 503 Service Unavailable"
SERVER_TOKEN = "tok-3f9a7c1e5b2d4068a1c3e5f7"
HOSTILE = '<script>alert("pwned")</script> Ant Group & <b>co</b>'
ATOM = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
    b"<title>Alibaba news</title><id>tag:feedbot.localhost,2026:feed/alibaba</id>"
    b"<updated>2026-03-01T12:00:00Z</updated></feed>\n"
)


class FakeClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def make_config(
    tmp_path: Path, db_url: str, *, host: str = "127.0.0.1", token: str | None = None
) -> Config:
    server: dict[str, Any] = {"host": host, "port": 0}
    if token:
        server["token"] = token
    raw = {
        "database_url": db_url,
        "feeds_dir": str(tmp_path / "feeds"),
        "state_dir": str(tmp_path / "state"),
        "server": server,
        "upstream": [
            {"name": "good", "url": "http://127.0.0.1:9/good.xml"},
            {"name": "broken", "url": BROKEN_URL, "interval": "20m"},
            {"name": "paused", "url": "http://127.0.0.1:9/paused.xml", "enabled": False},
            {"name": "fresh", "url": "http://127.0.0.1:9/fresh.xml"},
        ],
        "webhook": [
            {"name": "slack", "kind": "slack", "url": SLACK_URL},
            {"name": "generic", "kind": "generic", "url": GENERIC_URL, "secret": SIGNING_SECRET},
            {"name": "quiet", "kind": "discord", "url": "https://discord.com/api/webhooks/1/x"},
        ],
        "publish": [
            {"name": "alibaba", "title": "Alibaba news", "formats": ["atom", "json"]},
        ],
    }
    return config_from_mapping(raw, base_dir=tmp_path, env={})


def _article(key: str, title: str, link: str | None, age: timedelta, **kw: Any) -> ArticleData:
    when = NOW - age
    return ArticleData(
        id=f"tag:feedbot.localhost,2026:article/{key}", title=title, summary="", content="",
        link=link, authors=(), language="en", categories=(), published=when, updated=when, **kw,
    )  # fmt: skip


def populate(db: Database, config: Config) -> dict[str, str]:
    """Upstreams in every state, three articles (one hostile), a dead and pending outbox."""
    with db.write() as conn:
        store_upstreams.sync_from_config(
            conn, config.upstream, NOW - timedelta(hours=2), rand=random.Random(1)
        )
        claimed = store_upstreams.claim_due(
            conn, NOW, owner="seed", lease=timedelta(minutes=5), limit=10,
            names=["good", "broken"], include_not_due=True,
        )  # fmt: skip
        ids = {u.name: u.id for u in claimed}
        store_upstreams.save_state(
            conn, ids["good"], "seed",
            {"last_success": NOW - timedelta(minutes=10), "last_attempt": NOW - timedelta(minutes=10),
             "current_interval_s": 900, "next_check": NOW + timedelta(minutes=5),
             "title": "Good news"},
        )  # fmt: skip
        store_upstreams.save_state(
            conn, ids["broken"], "seed",
            {"last_success": NOW - timedelta(days=1), "last_attempt": NOW - timedelta(minutes=3),
             "consecutive_failures": 3, "last_error": BROKEN_ERROR,
             "last_error_kind": "retry_later", "next_check": NOW + timedelta(minutes=17)},
        )  # fmt: skip
        cloud = _article(
            "cloud", "Alibaba Cloud cuts model prices", "https://news.example.org/a1",
            timedelta(minutes=30),
            origin=Origin("Good news", "http://127.0.0.1:9/good.xml", "https://news.example.org/a1"),
        )  # fmt: skip
        hostile = _article("hostile", HOSTILE, "javascript:alert(1)", timedelta(minutes=20))
        old = _article("old", "Taobao older story", "https://news.example.org/a0", timedelta(days=2))
        store_articles.upsert_article(conn, cloud, NOW, topics=["alibaba", "cloud"])
        store_articles.upsert_article(conn, hostile, NOW, topics=["ant-group"])
        store_articles.upsert_article(conn, old, NOW, topics=["alibaba"])
        store_articles.add_report(
            conn, cloud.id, link="https://wire.example.net/story/77",
            source_title="Other Wire", source_url="https://wire.example.net/rss", now=NOW,
        )  # fmt: skip
        outbox.enqueue(conn, cloud.id, ["slack", "generic"], "new", NOW - timedelta(minutes=40))
        outbox.enqueue(conn, hostile.id, ["slack"], "new", NOW - timedelta(minutes=20))
        (first,) = outbox.claim(
            conn, NOW, owner="seed", lease=timedelta(minutes=1), limit=1, webhooks=["slack"]
        )
        outbox.mark_dead(conn, first, NOW - timedelta(minutes=15), "404 Not Found", 404)
        outbox.set_webhook_state(
            conn, "slack", failing="since 12:45: the webhook answers 404",
            last_error=f"POST {SLACK_URL} answered 404 Not Found",
        )  # fmt: skip
    feeds = config.feeds_dir
    feeds.mkdir(parents=True, exist_ok=True)
    (feeds / "alibaba.atom").write_bytes(ATOM)
    return {"cloud": cloud.id, "hostile": hostile.id}


@dataclass
class Site:
    server: Server
    db: Database
    config: Config
    clock: FakeClock
    beat: list[datetime | None]
    metrics: Metrics

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.server.url + path, timeout=10, **kw)


@contextlib_contextmanager := None  # placeholder replaced below
