"""WebSub hub pings against a loopback hub; retention with tombstones."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

from feedbot.app import App
from feedbot.config import config_from_mapping
from feedbot.publish.runner import feed_spec
from feedbot.publish.websub import HubPinger
from feedbot.store import housekeeping
from tests.feedgen_util import news, rss
from tests.loopback import LoopbackServer, Response

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_hub_ping_and_retry() -> None:
    answers = [503, 204]
    with LoopbackServer() as hub:
        hub.route("/hub", lambda r: Response(answers.pop(0)))
        pinger = HubPinger(hub.url("/hub"), max_attempts=3, rand=random.Random(1))
        pinger.queue(["https://feeds.example/alibaba.atom"], T0)
        assert pinger.flush(T0) == 0
        assert pinger.flush(T0 + timedelta(seconds=5)) == 0  # not due yet: nothing sent
        assert len(hub.requests) == 1
        assert pinger.flush(T0 + timedelta(minutes=1)) == 1
        assert pinger.pending == {}
    for req in hub.requests:
        assert req.headers["content-type"] == "application/x-www-form-urlencoded"
        assert parse_qs(req.body.decode()) == {
            "hub.mode": ["publish"],
            "hub.url": ["https://feeds.example/alibaba.atom"],
        }


def test_published_feed_advertises_the_hub(tmp_path: Path) -> None:
    config = config_from_mapping(
        {"websub": {"hub": "https://hub.example/"}, "publish": [{"name": "n", "title": "N"}]},
        base_dir=tmp_path,
    )
    spec = feed_spec(config, config.publish[0])
    assert spec.hub_url == "https://hub.example/"
    app = App(config)
    app.publish()
    atom = (tmp_path / "feeds" / "n.atom").read_text(encoding="utf-8")
    assert '<link href="https://hub.example/" rel="hub"/>' in atom
    assert 'rel="self"' in atom
    app.close()


def test_pruned_entries_leave_tombstones_and_never_return(tmp_path: Path) -> None:
    now = {"t": T0}
    with LoopbackServer() as server:
        server.route("/f", lambda r: Response(200, rss(news(3))))
        config = config_from_mapping(
            {
                "upstream": [{"name": "f", "url": server.url("/f"), "backfill": "latest:3"}],
                "webhook": [{"name": "w", "kind": "generic", "url": "https://hooks.example/x"}],
            },
            base_dir=tmp_path,
        )
        app = App(config, clock=lambda: now["t"])
        app.sync_upstreams()
        first = app.poller.run_cycle(include_not_due=True).results[0]
        assert first.announced == 3
        now["t"] = T0 + timedelta(days=100)
        result = housekeeping.run(
            app.db, now["t"], keep_entries=timedelta(days=90), keep_done=timedelta(days=30)
        )
        assert result.entries_pruned == 3
        again = app.poller.run_cycle(include_not_due=True).results[0]
        assert (again.new, again.announced, again.irrelevant) == (0, 0, 0)
        app.close()
