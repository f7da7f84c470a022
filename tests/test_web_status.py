"""The daemon's web app on a real waitress server: status page, health, readiness, auth."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
from feedbot.web.status import duration, safe_href
from feedbot.web.status_view import display_url

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
        old = _article(
            "old", "Taobao older story", "https://news.example.org/a0", timedelta(days=2)
        )
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
        outbox.enqueue(conn, old.id, ["generic"], "new", NOW - timedelta(hours=3))
        (done,) = outbox.claim(
            conn, NOW, owner="seed", lease=timedelta(minutes=1), limit=1, webhooks=["generic"]
        )
        assert done.article_id == old.id
        outbox.mark_done(conn, done, NOW - timedelta(hours=2), 200)  # neither pending nor dead
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


@contextmanager
def running(
    db: Database, config: Config, *, clock: FakeClock | None = None, **kw: Any
) -> Iterator[Site]:
    """The web app for *config* on a waitress server bound to 127.0.0.1 (port 0)."""
    clock = clock or FakeClock()
    beat: list[datetime | None] = [clock() - timedelta(seconds=30)]
    metrics = Metrics()
    app = make_web_app(
        db, config, heartbeat=lambda: beat[0], registry=metrics.registry, clock=clock, **kw
    )
    server = serve(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield Site(server, db, config, clock, beat, metrics)
    finally:
        server.close()
        thread.join(timeout=10)


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Iterator[Site]:
    config = make_config(tmp_path, db_url)
    db = Database(db_url)
    populate(db, config)
    try:
        with running(db, config) as s:
            yield s
    finally:
        db.close()


def _row(page: str, marker: str) -> str:
    """The table row whose opening tag carries *marker*."""
    match = re.search(rf"<tr[^>]*{re.escape(marker)}[^>]*>.*?</tr>", page, re.S)
    assert match, marker
    return match.group(0)


# ---------------------------------------------------------------- the status page


def test_status_page_lists_upstreams_with_state_errors_and_schedule(site: Site) -> None:
    resp = site.get("/")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.headers["Cache-Control"] == "no-store"
    page = resp.text
    broken = _row(page, 'data-upstream="broken"')
    assert 'class="badge failing"' in broken
    assert "answered 503 Service Unavailable" in broken
    assert "(3 in a row)" in broken
    assert ">20m<" in broken  # the configured interval
    assert 'datetime="2026-03-01T13:17:00Z"' in broken
    assert "in 17m" in broken
    assert "1d ago" in broken  # last success
    good = _row(page, 'data-upstream="good"')
    assert 'class="badge ok"' in good
    assert ">15m<" in good
    assert "10m ago" in good
    paused = _row(page, 'data-upstream="paused"')
    assert 'class="badge disabled"' in paused
    assert "disabled in the config" in paused
    fresh = _row(page, 'data-upstream="fresh"')
    assert 'class="badge new"' in fresh
    assert "never" in fresh
    order = [page.index(f'data-upstream="{n}"') for n in ("broken", "paused", "fresh", "good")]
    assert order == sorted(order)  # problems first
    assert "4 upstreams (1 failing, 1 disabled)" in page


def test_status_page_lists_recent_articles_newest_first_with_topics_and_reports(
    site: Site,
) -> None:
    page = site.get("/").text
    section = page[page.index('id="articles"') : page.index('id="webhooks"')]
    titles = ["Ant Group", "Alibaba Cloud cuts model prices", "Taobao older story"]
    positions = [section.index(t) for t in titles]
    assert positions == sorted(positions)
    assert '<a href="https://news.example.org/a1" rel="noopener noreferrer">' in section
    assert '<span class="topic">alibaba</span> <span class="topic">cloud</span>' in section
    assert '<a href="https://wire.example.net/story/77" rel="noopener noreferrer">Other Wire' in (
        section
    )
    assert "Good news</a>" in section  # the source, linked to its entry
    assert "Newest 3 of 3" in section


def test_status_page_escapes_hostile_titles_and_links(site: Site) -> None:
    page = site.get("/").text
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; Ant Group &amp; &lt;b&gt;co" in (
        page
    )
    assert "javascript:" not in page  # not a link, and not shown
    assert "script-src" not in site.get("/").headers["Content-Security-Policy"]


def test_status_page_shows_webhooks_with_masked_urls_only(site: Site) -> None:
    resp = site.get("/")
    page = resp.text
    section = page[page.index('id="webhooks"') : page.index('id="feeds"')]
    slack = _row(section, 'class="state-failing"')
    assert ">slack<" in slack
    assert ">slack</td>" in slack
    assert mask_url(SLACK_URL) in slack
    assert "since 12:45: the webhook answers 404" in slack
    assert re.search(r"<td>1 \(oldest <time[^>]*>20m ago</time>\)</td><td>1</td>", slack)
    assert f"POST {mask_url(SLACK_URL)} answered 404 Not Found" in slack
    assert mask_url(GENERIC_URL) in section
    assert re.search(r"<td>1 \(oldest <time[^>]*>40m ago</time>\)</td><td>0</td>", section)
    for secret in (SLACK_URL, SLACK_TAIL, GENERIC_URL, "generic-Zq8Lm2Xv7Rt4", SIGNING_SECRET,
                   UPSTREAM_TOKEN, BROKEN_URL):  # fmt: skip
        assert secret not in page, secret
    metrics = site.get("/metrics").text
    assert SLACK_TAIL not in metrics
    assert UPSTREAM_TOKEN not in metrics


def test_status_page_lists_published_feeds(site: Site) -> None:
    page = site.get("/").text
    assert '<a href="alibaba.atom">alibaba.atom</a>' in page
    assert "alibaba.json (not published yet)" in page
    assert '<link rel="alternate" type="application/atom+xml" href="alibaba.atom"' in page
    feed = site.get("/alibaba.atom")
    assert feed.status_code == 200
    assert feed.content == ATOM
    assert site.get("/missing.atom").status_code == 404


def test_status_page_on_an_empty_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    config = config_from_mapping({"database_url": url}, base_dir=tmp_path, env={})
    db = Database(url)
    try:
        with running(db, config) as s:
            page = s.get("/").text
    finally:
        db.close()
    assert "No upstream is configured." in page
    assert "No article stored yet." in page
    assert "No webhook is configured." in page


# ---------------------------------------------------------------- health and readiness


def test_healthz_and_readyz_follow_the_heartbeat(site: Site) -> None:
    health = site.get("/healthz")
    assert (health.status_code, health.text) == (200, "ok\n")
    assert site.get("/readyz").status_code == 200
    site.clock.advance(minutes=3)  # the last tick is now 3m30s old; the limit is 3 x 60s
    stale = site.get("/readyz")
    assert stale.status_code == 503
    assert stale.text == "not ready: the scheduler last ticked 3m ago (limit 180s)\n"
    site.beat[0] = site.clock()
    assert site.get("/readyz").status_code == 200
    site.beat[0] = None
    never = site.get("/readyz")
    assert (never.status_code, never.text) == (503, "not ready: the scheduler has not ticked yet\n")
    assert site.get("/healthz").status_code == 200  # alive all along


def test_readyz_and_status_page_when_the_store_is_unreachable(tmp_path: Path) -> None:
    url = "postgresql+psycopg://feedbot@127.0.0.1:9/nothing?connect_timeout=2"
    config = make_config(tmp_path, url)
    db = Database(url, apply_migrations=False)
    try:
        with running(db, config) as s:
            ready = s.get("/readyz")
            status = s.get("/")
            health = s.get("/healthz")
            metrics = s.get("/metrics")
    finally:
        db.close()
    assert ready.status_code == 503
    assert ready.text == "not ready: store unreachable: OperationalError\n"
    assert (status.status_code, status.text) == (503, "store unreachable\n")
    assert health.status_code == 200
    assert metrics.status_code == 200
    assert "feedbot_store_up 0.0" in metrics.text


def test_only_get_and_head(site: Site) -> None:
    assert requests.post(site.server.url + "/", timeout=10).status_code == 405
    head = requests.head(site.server.url + "/", timeout=10)
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["Content-Length"]) > 1000


# ---------------------------------------------------------------- authentication


@pytest.fixture
def public_site(tmp_path: Path) -> Iterator[Site]:
    """Configured for 0.0.0.0 with a token (auth on), though bound to 127.0.0.1 here."""
    url = f"sqlite:///{tmp_path / 'state' / 'feedbot.sqlite3'}"
    config = make_config(tmp_path, url, host="0.0.0.0", token=SERVER_TOKEN)
    db = Database(url)
    populate(db, config)
    try:
        with running(db, config) as s:
            yield s
    finally:
        db.close()


@pytest.mark.parametrize("path", ["/", "/metrics", "/readyz"])
def test_beyond_loopback_protected_paths_need_the_token(public_site: Site, path: str) -> None:
    bare = public_site.get(path)
    assert bare.status_code == 401
    assert 'Basic realm="feedbot"' in bare.headers["WWW-Authenticate"]
    assert SLACK_TAIL not in bare.text
    assert "upstream" not in bare.text
    wrong = public_site.get(path, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert public_site.get(path, auth=("admin", "nope")).status_code == 401
    bearer = public_site.get(path, headers={"Authorization": f"Bearer {SERVER_TOKEN}"})
    assert bearer.status_code == 200
    basic = public_site.get(path, auth=("anyone", SERVER_TOKEN))
    assert basic.status_code == 200


def test_beyond_loopback_feeds_and_healthz_stay_public(public_site: Site) -> None:
    assert public_site.get("/healthz").status_code == 200
    assert public_site.get("/alibaba.atom").status_code == 200
    page = public_site.get("/", auth=("x", SERVER_TOKEN)).text
    assert SERVER_TOKEN not in page


def test_loopback_needs_no_token(site: Site) -> None:
    assert site.get("/").status_code == 200
    assert site.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {SERVER_TOKEN}", True),
        (f"bearer   {SERVER_TOKEN} ", True),
        ("Basic dXNlcjp0b2stM2Y5YTdjMWU1YjJkNDA2OGExYzNlNWY3", True),  # user:<token>
        ("Basic OnRvay0zZjlhN2MxZTViMmQ0MDY4YTFjM2U1Zjc=", True),  # empty user
        ("Basic dG9rLTNmOWE3YzFlNWIyZDQwNjhhMWMzZTVmNzp4", False),  # token as the user
        ("Basic !!!", False),
        (f"Token {SERVER_TOKEN}", False),
        ("Bearer", False),
        ("", False),
    ],
)
def test_authorization_header_forms(header: str, ok: bool) -> None:
    assert authorized(header, SERVER_TOKEN) is ok


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.7", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.4", False), ("feedbot.example", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# ---------------------------------------------------------------- pure helpers


def test_readiness_reasons() -> None:
    tick = timedelta(seconds=60)
    assert readiness(None, NOW, NOW + timedelta(seconds=180), tick) is None
    assert readiness(None, NOW, NOW + timedelta(seconds=181), tick) is not None
    assert readiness("OperationalError", NOW, NOW, tick) == "store unreachable: OperationalError"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://feeds.example.com/rss?format=xml", "https://feeds.example.com/rss?format=xml"),
        ("https://feeds.example.com/rss?api_key=abc&x=1", "https://feeds.example.com/rss?api_key=****&x=1"),
        ("https://u:pw@feeds.example.com:8443/a", "https://****@feeds.example.com:8443/a"),
        ("http://[::1]:9/f?token=t", "http://[::1]:9/f?token=****"),
    ],
)  # fmt: skip
def test_display_url_masks_credentials(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_safe_href_and_duration() -> None:
    assert safe_href("https://a.example/x") == "https://a.example/x"
    for bad in ("javascript:alert(1)", "data:text/html,x", "//a.example/x", "", None):
        assert safe_href(bad) is None
    assert [duration(s) for s in (5, 900, 3600, 3900, 86400, 93600)] == [
        "5s", "15m", "1h", "1h 5m", "1d", "1d 2h",
    ]  # fmt: skip
