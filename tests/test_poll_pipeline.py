"""Polling end to end against real loopback upstreams and a real SQLite store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feedbot.app import App
from feedbot.clock import Clock
from feedbot.config import config_from_mapping
from feedbot.poll.cpu import BATCH
from feedbot.store import articles as store_articles
from feedbot.store import outbox
from feedbot.store import upstreams as store_upstreams
from tests.feedgen_util import Item, news, rss
from tests.loopback import LoopbackServer, Request, Response

NOW = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def make_app(tmp_path: Path, raw: dict[str, Any], clock: Clock, db_url: str | None = None) -> App:
    base = {
        "poll": {
            "deadline": "3s",
            "read_timeout": "2s",
            "connect_timeout": "2s",
            "min_interval": "5m",
        }
    }
    if db_url:
        base["database_url"] = db_url
    config = config_from_mapping({**base, **raw}, base_dir=tmp_path, env={})
    return App(config, clock=clock)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as s:
        yield s


def upstream(name: str, url: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "url": url, **kw}


def state(app: App, name: str) -> store_upstreams.StoredUpstream:
    with app.db.read() as conn:
        up = store_upstreams.get(conn, name)
    assert up is not None
    return up


def poll(app: App, **kw: Any) -> dict[str, Any]:
    app.sync_upstreams()
    result = app.poller.run_cycle(include_not_due=True, **kw)
    return {r.upstream: r for r in result.results}


def test_conditional_get_and_unchanged_body_parse_nothing(
    tmp_path: Path, server: LoopbackServer
) -> None:
    body = rss(news(3))
    mode = {"etag": True}

    def feed(req: Request) -> Response:
        if mode["etag"] and req.headers.get("if-none-match") == '"v1"':
            return Response(304)
        headers = {"Content-Type": "application/rss+xml", "ETag": '"v1"'} if mode["etag"] else {}
        return Response(200, body, headers)

    server.route("/feed.xml", feed)
    clock = FakeClock()
    app = make_app(tmp_path, {"upstream": [upstream("a", server.url("/feed.xml"))]}, clock)
    first = poll(app)["a"]
    assert (first.outcome, first.parser, first.new) == ("ok", "tree", 3)
    second = poll(app)["a"]
    assert (second.outcome, second.parser, second.new) == ("not_modified", None, 0)
    assert server.requests[-1].headers["if-none-match"] == '"v1"'
    mode["etag"] = False  # no validators any more: the body hash catches the same bytes
    poll(app)
    fourth = poll(app)["a"]
    assert (fourth.outcome, fourth.parser) == ("unchanged", None)
    assert state(app, "a").consecutive_failures == 0


def test_permanent_redirect_is_stored_once_seen_consistently(
    tmp_path: Path, server: LoopbackServer
) -> None:
    server.route("/old", lambda r: Response(301, b"", {"Location": server.url("/new")}))
    server.route("/tmp", lambda r: Response(302, b"", {"Location": server.url("/new")}))
    server.route("/new", lambda r: Response(200, rss(news(1))))
    clock = FakeClock()
    app = make_app(
        tmp_path,
        {"upstream": [upstream("moved", server.url("/old")), upstream("temp", server.url("/tmp"))]},
        clock,
    )
    for _ in range(2):
        poll(app)
    assert state(app, "moved").url == server.url("/old")
    assert state(app, "moved").redirect_count == 2
    poll(app)
    assert state(app, "moved").url == server.url("/new")
    assert state(app, "temp").url == server.url("/tmp")
    app.sync_upstreams()  # the config still names /old: a followed redirect is kept
    assert state(app, "moved").url == server.url("/new")


def test_gone_disables_and_failures_back_off(tmp_path: Path, server: LoopbackServer) -> None:
    server.route("/gone", lambda r: Response(410, b"gone"))
    server.route("/broken", lambda r: Response(500, b"oops"))
    server.route("/limited", lambda r: Response(429, b"", {"Retry-After": "120"}))
    http_date = "Sun, 01 Mar 2026 15:00:00 GMT"
    server.route("/busy", lambda r: Response(503, b"", {"Retry-After": http_date}))
    clock = FakeClock()
    app = make_app(
        tmp_path,
        {
            "poll": {"max_failures": 3},
            "upstream": [
                upstream("gone", server.url("/gone")),
                upstream("broken", server.url("/broken")),
                upstream("limited", server.url("/limited")),
                upstream("busy", server.url("/busy")),
            ],
        },
        clock,
    )
    poll(app)
    gone = state(app, "gone")
    assert not gone.enabled
    assert gone.disabled_reason is not None
    assert "410" in gone.disabled_reason
    assert state(app, "limited").next_check == NOW + timedelta(seconds=120)
    assert state(app, "busy").next_check == datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    waits = []
    for _ in range(3):
        up = state(app, "broken")
        if up.enabled:
            waits.append(up.next_check - clock.now)
        poll(app, names=["broken"])
    assert waits[1] > waits[0]  # exponential backoff (with jitter inside each step's range)
    broken = state(app, "broken")
    assert not broken.enabled
    assert broken.disabled_reason is not None
    assert broken.disabled_reason.startswith("3 consecutive failures; the last: ")
    assert broken.last_error_kind == "server_error"


def test_html_page_is_reported_as_not_a_feed(tmp_path: Path, server: LoopbackServer) -> None:
    page = b"<!DOCTYPE html><html><head><title>Home</title></head><body>hi</body></html>"
    server.route("/page", lambda r: Response(200, page, {"Content-Type": "text/html"}))
    app = make_app(tmp_path, {"upstream": [upstream("page", server.url("/page"))]}, FakeClock())
    result = poll(app)["page"]
    assert result.outcome == "not_a_feed"
    assert result.error is not None
    assert "HTML page" in result.error
    assert state(app, "page").last_error == result.error


def test_failing_feed_does_not_delay_the_others(tmp_path: Path) -> None:
    arrivals: list[tuple[str, float]] = []

    def hang(req: Request) -> Response:
        arrivals.append(("hung", time.monotonic()))

        def drip() -> Iterator[bytes]:
            for _ in range(50):
                time.sleep(0.2)
                yield b" "

        return Response(200, drip(), {"Content-Type": "application/rss+xml"})

    def healthy(req: Request) -> Response:
        arrivals.append(("ok", time.monotonic()))
        return Response(200, rss(news(1)))

    with LoopbackServer("127.0.0.1") as slow, LoopbackServer("127.0.0.2") as fast:
        slow.route("/feed", hang)
        fast.route("/feed", healthy)
        ups = [upstream("slow", slow.url("/feed"))] + [
            upstream(f"ok{i}", fast.url(f"/feed?{i}")) for i in range(8)
        ]
        app = make_app(
            tmp_path,
            {"poll": {"workers": 2, "per_host": 1, "deadline": "2s"}, "upstream": ups},
            FakeClock(),
        )
        started = time.monotonic()
        results = poll(app)
    assert results["slow"].outcome == "timeout"
    assert all(results[f"ok{i}"].outcome == "ok" for i in range(8))
    ok_times = [t for kind, t in arrivals if kind == "ok"]
    # every healthy feed was fetched while the hung one was still holding its worker
    assert max(ok_times) - started < 2.0
    assert state(app, "slow").next_check > NOW


def test_two_pollers_never_fetch_one_feed_twice(tmp_path: Path, server: LoopbackServer) -> None:
    server.route("/feed", lambda r: Response(200, rss(news(2))))
    ups = [upstream(f"f{i}", server.url(f"/feed?n={i}")) for i in range(30)]
    clock = FakeClock()
    raw = {"poll": {"workers": 4, "per_host": 4}, "upstream": ups}
    a = make_app(tmp_path, raw, clock)
    b = make_app(tmp_path, raw, clock)
    a.sync_upstreams()
    clock.advance(minutes=10)  # every first poll is due
    results: dict[str, list[str]] = {}

    def run(name: str, app: App) -> None:
        results[name] = [r.upstream for r in app.poller.run_cycle().results]

    threads = [threading.Thread(target=run, args=(n, x)) for n, x in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fetched = sorted(r.path for r in server.requests)
    assert len(fetched) == 30
    assert len(set(fetched)) == 30
    assert sorted(results["a"] + results["b"]) == sorted(u["name"] for u in ups)
    a.close()
    b.close()


def test_relevance_dedup_backfill_and_outbox(tmp_path: Path, server: LoopbackServer) -> None:
    story = Item(
        "Alibaba Cloud cuts prices of its Qwen models for developers",
        "https://one.example/2026/03/alibaba-qwen-prices?utm_source=rss",
        summary="Alibaba Cloud lowered the price of Qwen API calls by up to 50 per cent for developers in Asia.",
    )
    unrelated = Item(
        "Local bakery wins bread prize", "https://one.example/bread", summary="Sourdough again."
    )
    feeds = {"one": [unrelated], "two": []}
    server.route("/one", lambda r: Response(200, rss(feeds["one"], title="One")))
    server.route("/two", lambda r: Response(200, rss(feeds["two"], title="Two")))
    clock = FakeClock()
    app = make_app(
        tmp_path,
        {
            "upstream": [
                upstream("one", server.url("/one")),
                upstream("two", server.url("/two"), backfill="latest:1"),
            ],
            "webhook": [
                {
                    "name": "team",
                    "kind": "generic",
                    "url": "https://hooks.example/x",
                    "topics": ["alibaba"],
                }
            ],
        },
        clock,
    )
    poll(app)  # first polls: backfill
    feeds["one"] = [story, unrelated]
    same_story = Item(
        "Alibaba Cloud cuts prices of its Qwen models for developers - Two",
        "https://amp.one.example/2026/03/alibaba-qwen-prices/amp",
        summary=story.summary,
    )
    feeds["two"] = [same_story]
    clock.advance(minutes=30)
    results = poll(app, names=["one"]) | poll(app, names=["two"])  # one after the other
    assert results["one"].new == 1
    assert results["one"].irrelevant == 0  # the bakery entry was seen before
    assert results["two"].duplicates == 1
    with app.db.read() as conn:
        arts = store_articles.latest_articles(conn, 10)
        pending = outbox.list_deliveries(conn, status="pending")
    assert [a.title for a in arts] == [story.title]
    assert arts[0].topics == ("alibaba", "china-tech")
    assert [r.link for r in arts[0].related] == [same_story.link]
    assert [(d.article_id, d.webhook) for d in pending] == [(arts[0].id, "team")]


def test_guid_churn_announces_nothing(tmp_path: Path, server: LoopbackServer) -> None:
    items = news(6)
    feed = {"items": items}
    server.route("/f", lambda r: Response(200, rss(feed["items"])))
    clock = FakeClock()
    app = make_app(
        tmp_path,
        {
            "upstream": [upstream("f", server.url("/f"), backfill="latest:6")],
            "webhook": [{"name": "team", "kind": "generic", "url": "https://hooks.example/x"}],
        },
        clock,
    )
    assert poll(app)["f"].announced == 6
    # the CMS regenerates every guid and moves to https
    feed["items"] = [
        Item(
            i.title,
            i.link.replace("https://", "http://"),
            guid=f"urn:uuid:{n}",
            summary=i.summary,
            published=i.published,
        )
        for n, i in enumerate(items)
    ]
    clock.advance(hours=1)
    result = poll(app)["f"]
    assert (result.new, result.announced, result.rekeyed) == (0, 0, 6)
    assert state(app, "f").warning is not None
    with app.db.read() as conn:
        assert store_articles.count_articles(conn) == 6


def test_backfill_policy_none_announces_nothing(tmp_path: Path, server: LoopbackServer) -> None:
    server.route("/f", lambda r: Response(200, rss(news(4))))
    app = make_app(
        tmp_path,
        {
            "upstream": [upstream("f", server.url("/f"))],
            "webhook": [{"name": "team", "kind": "generic", "url": "https://hooks.example/x"}],
        },
        FakeClock(),
    )
    result = poll(app)["f"]
    assert (result.new, result.backfill, result.announced) == (4, 4, 0)


def test_same_story_polled_concurrently_is_stored_once(tmp_path: Path, db_url: str) -> None:
    """Two workers poll two feeds carrying one story at the same moment: one article."""
    barrier = threading.Barrier(2, timeout=10)
    stories = [
        Item(
            f"Alibaba Cloud opens region number {n} in Europe",
            f"https://a.example/story-{n}",
            summary=f"Alibaba Cloud said region {n} will serve retailers and logistics firms across Europe.",
        )
        for n in range(3)
    ]
    current = {"n": 0}

    def feed(req: Request) -> Response:
        barrier.wait()  # both fetches return together, so both transactions race
        story = stories[current["n"]]
        link = story.link if "one" in req.path else story.link + "?utm_source=two"
        return Response(
            200, rss([Item(story.title, link, guid=req.path + story.link, summary=story.summary)])
        )

    with LoopbackServer("127.0.0.1") as one, LoopbackServer("127.0.0.2") as two:
        one.route("/one", feed)
        two.route("/two", feed)
        app = make_app(
            tmp_path,
            {
                "poll": {"workers": 2},
                "upstream": [upstream("one", one.url("/one")), upstream("two", two.url("/two"))],
            },
            FakeClock(),
            db_url=db_url,
        )
        for n in range(3):
            current["n"] = n
            results = poll(app)
            assert results["one"].new + results["two"].new == 1
            assert results["one"].duplicates + results["two"].duplicates == 1
        with app.db.read() as conn:
            assert store_articles.count_articles(conn) == 3
        app.close()


def test_rewritten_story_from_another_site_is_a_duplicate(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """No shared URL or title: found through a SimHash band, confirmed by shingle overlap."""
    from tests.test_dedup import REWRITE_A, REWRITE_B

    feeds: dict[str, list[Item]] = {"a": [], "b": []}
    server.route("/a", lambda r: Response(200, rss(feeds["a"], title="A")))
    server.route("/b", lambda r: Response(200, rss(feeds["b"], title="B")))
    app = make_app(
        tmp_path,
        {"upstream": [upstream("a", server.url("/a")), upstream("b", server.url("/b"))]},
        FakeClock(),
    )
    poll(app)
    feeds["a"] = [Item(REWRITE_A[0] + " (Alibaba)", "https://one.example/x", summary=REWRITE_A[1])]
    feeds["b"] = [Item(REWRITE_B[0] + " (Alibaba)", "https://two.example/y", summary=REWRITE_B[1])]
    first = poll(app, names=["a"])["a"]
    second = poll(app, names=["b"])["b"]
    assert (first.new, second.new, second.duplicates) == (1, 0, 1)


def test_one_poll_with_the_same_story_twice_stores_it_once(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """Stories of one poll are deduplicated against each other as well as the store."""
    from tests.test_dedup import REWRITE_A, REWRITE_B

    feed: dict[str, list[Item]] = {"items": []}
    server.route("/f", lambda r: Response(200, rss(feed["items"], title="F")))
    app = make_app(tmp_path, {"upstream": [upstream("f", server.url("/f"))]}, FakeClock())
    poll(app)
    url = "https://one.example/2026/03/alibaba-qwen-prices"
    feed["items"] = [
        Item(
            "Alibaba Cloud cuts Qwen prices", url + "?utm_source=rss", summary="Alibaba cut prices."
        ),
        Item("Alibaba Cloud cuts Qwen prices (updated)", url, summary="Alibaba cut prices again."),
        Item(REWRITE_A[0] + " (Alibaba)", "https://one.example/x", summary=REWRITE_A[1]),
        Item(REWRITE_B[0] + " (Alibaba)", "https://two.example/y", summary=REWRITE_B[1]),
        Item("Tencent opens a data centre in Paris", "https://one.example/t", summary="Tencent."),
    ]
    result = poll(app)["f"]
    assert (result.new, result.duplicates) == (3, 2)
    with app.db.read() as conn:
        arts = store_articles.latest_articles(conn, 10)
    assert len(arts) == 3
    reports = sorted(r.link for a in arts for r in a.related)
    assert reports == sorted(["https://two.example/y", url])


def test_connections_bound_fetches_in_flight_not_workers(tmp_path: Path) -> None:
    """Waiting on the network holds a connection slot, not a worker: with one worker and
    four connections, four slow responses are awaited at once, never more."""
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most seen

    def slow(req: Request) -> Response:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        time.sleep(0.3)
        with lock:
            in_flight[0] -= 1
        return Response(200, rss(news(1)))

    with LoopbackServer() as server:
        server.route("/feed", slow)
        ups = [upstream(f"f{i}", server.url(f"/feed?{i}")) for i in range(8)]
        app = make_app(
            tmp_path,
            {"poll": {"workers": 1, "connections": 4, "per_host": 8}, "upstream": ups},
            FakeClock(),
        )
        started = time.monotonic()
        results = poll(app)
        elapsed = time.monotonic() - started
    assert all(r.outcome == "ok" for r in results.values())
    assert len(results) == 8
    assert in_flight[1] == 4
    assert elapsed < 8 * 0.3  # not one at a time


@pytest.mark.parametrize(("processes", "admitted"), [(0, 3), (2, 3 + 2 * BATCH)])
def test_worker_processes_batches_come_on_top_of_workers(
    tmp_path: Path, processes: int, admitted: int
) -> None:
    """``poll.workers`` polls are processed at once besides a batch held by each worker
    process, so the next full batches can wait while those are written."""
    app = make_app(tmp_path, {"poll": {"workers": 3, "processes": processes}}, FakeClock())
    try:
        slots = app.poller.pipeline.slots
        taken = 0
        while taken <= admitted and slots.acquire(blocking=False):
            taken += 1
        assert taken == admitted
    finally:
        app.close()


def test_cycles_share_one_thread_pool_until_the_poller_closes(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """A daemon polls a few feeds every tick: the threads that fetch them are made once,
    not once per cycle, and closing the poller lets them go."""
    fetched_on: list[set[int]] = []
    server.route("/feed", lambda r: Response(200, rss(news(1))))
    ups = [upstream(f"f{i}", server.url(f"/feed?{i}")) for i in range(6)]
    app = make_app(tmp_path, {"poll": {"processes": 0}, "upstream": ups}, FakeClock())
    for _ in range(4):
        before = {t.ident for t in threading.enumerate() if t.name.startswith("poll")}
        assert len(poll(app)) == 6
        fetched_on.append({t.ident for t in threading.enumerate() if t.name.startswith("poll")})
        assert before <= fetched_on[-1]
    assert fetched_on[0] == fetched_on[-1]  # the same threads, cycle after cycle
    assert 0 < len(fetched_on[0]) <= 6
    app.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        t.ident in fetched_on[0] for t in threading.enumerate()
    ):
        time.sleep(0.01)
    assert not any(t.ident in fetched_on[0] for t in threading.enumerate())


def test_malloc_arenas_are_capped_where_glibc_runs() -> None:
    import platform

    from feedbot.app import limit_malloc_arenas

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt(M_ARENA_MAX) is a glibc setting")
    assert limit_malloc_arenas() is True
