"""Prometheus metrics: what the daemon records, what the store reports at scrape time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from feedbot import metrics
from feedbot.metrics import Metrics, StoreSnapshot, store_metrics, store_registry
from feedbot.pipeline import PollResult
from feedbot.store.db import Database
from tests.test_web_status import NOW, FakeClock, make_config, populate, running

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> tuple[set[str], Samples]:
    """Family names and every sample (name, sorted labels) -> value, via the text parser."""
    families = list(text_string_to_metric_families(text))
    out: Samples = {}
    for family in families:
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return {f.name for f in families}, out


def scrape(registry: CollectorRegistry) -> tuple[set[str], Samples]:
    return samples(generate_latest(registry).decode("utf-8"))


def test_recorded_polls_deliveries_cycles_and_publishes() -> None:
    m = Metrics()
    m.record_poll(PollResult("a", "ok", new=3, updated=1, duplicates=2, fetch_seconds=0.2))
    m.record_poll(PollResult("b", "ok", new=1, irrelevant=4, fetch_seconds=0.7))
    m.record_poll(PollResult("c", "retry_later", error="503", fetch_seconds=12.0))
    m.record_poll(PollResult("d", "lease_lost"))  # no fetch time: not observed
    m.record_delivery("delivered", "slack")
    m.record_delivery("delivered", "slack")
    m.record_delivery("retry", "generic")
    m.record_publish("alibaba", 0.03)
    m.record_cycle(4, 4.0, finished=NOW)
    names, got = scrape(m.registry)
    assert {
        "feedbot_polls", "feedbot_fetch_duration_seconds", "feedbot_entries",
        "feedbot_deliveries", "feedbot_publish_duration_seconds", "feedbot_poll_cycles",
        "feedbot_poll_cycle_duration_seconds", "feedbot_last_poll_cycle_timestamp_seconds",
        "feedbot_info",
    } <= names  # fmt: skip
    assert got[("feedbot_polls_total", (("outcome", "ok"),))] == 2
    assert got[("feedbot_polls_total", (("outcome", "retry_later"),))] == 1
    assert got[("feedbot_polls_total", (("outcome", "lease_lost"),))] == 1
    assert got[("feedbot_fetch_duration_seconds_count", ())] == 3
    assert got[("feedbot_fetch_duration_seconds_sum", ())] == pytest.approx(12.9)
    assert got[("feedbot_fetch_duration_seconds_bucket", (("le", "0.25"),))] == 1
    assert got[("feedbot_fetch_duration_seconds_bucket", (("le", "1.0"),))] == 2
    entries = {k[1][0][1]: v for k, v in got.items() if k[0] == "feedbot_entries_total"}
    assert entries == {"new": 4, "updated": 1, "duplicate": 2, "irrelevant": 4}
    hook = (("outcome", "delivered"), ("webhook", "slack"))
    assert got[("feedbot_deliveries_total", hook)] == 2
    assert got[("feedbot_deliveries_total", (("outcome", "retry"), ("webhook", "generic")))] == 1
    assert got[("feedbot_publish_duration_seconds_count", (("feed", "alibaba"),))] == 1
    assert got[("feedbot_poll_cycles_total", ())] == 1
    assert got[("feedbot_poll_cycle_polls_total", ())] == 4
    assert got[("feedbot_poll_cycle_duration_seconds_sum", ())] == 4.0
    assert got[("feedbot_last_poll_cycle_timestamp_seconds", ())] == NOW.timestamp()


def test_module_functions_record_into_feedbot_registry() -> None:
    """What the daemon calls; REGISTRY is feedbot's, never prometheus_client's global one."""
    from prometheus_client import REGISTRY as GLOBAL

    key = ("feedbot_deliveries_total", (("outcome", "dead"), ("webhook", "module-test")))
    before = scrape(metrics.REGISTRY)[1].get(key, 0)
    metrics.record_delivery("dead", "module-test")
    metrics.record_poll(PollResult("a", "ok"))
    metrics.record_cycle(1, 0.5)
    metrics.record_publish("alibaba", 0.01)
    _, got = scrape(metrics.REGISTRY)
    assert got[key] == before + 1
    assert got[("feedbot_last_poll_cycle_timestamp_seconds", ())] > NOW.timestamp()
    assert "feedbot_polls_total" not in generate_latest(GLOBAL).decode()


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.record_delivery("dead", "slack")
    _, got = scrape(b.registry)
    assert not [k for k in got if k[0] == "feedbot_deliveries_total"]


def test_store_gauges_are_read_at_scrape_time(tmp_path: Path, db_url: str) -> None:
    config = make_config(tmp_path, db_url)
    db = Database(db_url)
    try:
        populate(db, config)
        clock = FakeClock()
        registry = store_registry(db, clock, webhooks=["slack", "generic", "quiet"])
        names, got = scrape(registry)
        clock.advance(minutes=10)
        _, later = scrape(registry)
    finally:
        db.close()
    assert {
        "feedbot_store_up", "feedbot_articles", "feedbot_upstreams",
        "feedbot_upstream_last_success_timestamp_seconds",
        "feedbot_upstream_consecutive_failures", "feedbot_outbox_pending",
        "feedbot_outbox_dead", "feedbot_outbox_oldest_pending_age_seconds",
    } <= names  # fmt: skip
    assert got[("feedbot_store_up", ())] == 1
    assert got[("feedbot_articles", ())] == 3
    assert got[("feedbot_upstreams", (("state", "enabled"),))] == 3
    assert got[("feedbot_upstreams", (("state", "disabled"),))] == 1
    last = "feedbot_upstream_last_success_timestamp_seconds"
    assert got[(last, (("upstream", "good"),))] == (NOW - timedelta(minutes=10)).timestamp()
    assert got[(last, (("upstream", "broken"),))] == (NOW - timedelta(days=1)).timestamp()
    assert (last, (("upstream", "fresh"),)) not in got  # never succeeded: no sample
    assert got[("feedbot_upstream_consecutive_failures", (("upstream", "broken"),))] == 3
    pending = {k[1][0][1]: v for k, v in got.items() if k[0] == "feedbot_outbox_pending"}
    dead = {k[1][0][1]: v for k, v in got.items() if k[0] == "feedbot_outbox_dead"}
    assert pending == {"slack": 1, "generic": 1, "quiet": 0}
    assert dead == {"slack": 1, "generic": 0, "quiet": 0}
    age = "feedbot_outbox_oldest_pending_age_seconds"
    assert got[(age, (("webhook", "slack"),))] == 20 * 60
    assert got[(age, (("webhook", "generic"),))] == 40 * 60
    assert got[(age, (("webhook", "quiet"),))] == 0
    assert later[(age, (("webhook", "generic"),))] == 50 * 60  # computed at each scrape


def test_an_unreadable_store_yields_store_up_zero() -> None:
    db = Database("postgresql+psycopg://feedbot@127.0.0.1:9/nothing", apply_migrations=False)
    try:
        _, got = scrape(store_registry(db, FakeClock(), webhooks=["slack"]))
    finally:
        db.close()
    assert got == {("feedbot_store_up", ()): 0}


def test_store_metrics_is_pure() -> None:
    snap = StoreSnapshot(articles=0, feeds=(), outbox=())
    families = {f.name: f for f in store_metrics(snap, NOW, ["a"])}
    assert families["feedbot_outbox_pending"].samples[0].labels == {"webhook": "a"}
    assert [f.name for f in store_metrics(None, NOW)] == ["feedbot_store_up"]


def test_metrics_endpoint_serves_prometheus_text(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'feedbot.sqlite3'}"
    config = make_config(tmp_path, url)
    db = Database(url)
    try:
        populate(db, config)
        with running(db, config) as site:
            site.metrics.record_poll(PollResult("good", "ok", new=2, fetch_seconds=0.1))
            resp = site.get("/metrics")
    finally:
        db.close()
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    _, got = samples(resp.text)
    assert got[("feedbot_polls_total", (("outcome", "ok"),))] == 1
    assert got[("feedbot_articles", ())] == 3
    assert got[("feedbot_outbox_pending", (("webhook", "slack"),))] == 1
