"""Store contract for upstream claims and the delivery outbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

from feedbot.config import UpstreamConfig
from feedbot.models import ArticleData
from feedbot.store import articles, outbox, upstreams
from feedbot.store.db import Database

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def feeds(n: int) -> list[UpstreamConfig]:
    return [UpstreamConfig(name=f"f{i}", url=f"https://h{i % 3}.example/feed{i}") for i in range(n)]


def test_sync_precedence(db: Database) -> None:
    with db.write() as conn:
        first = upstreams.sync_from_config(conn, feeds(3), T0, rand=random.Random(1))
        upstreams.add(conn, UpstreamConfig(name="byhand", url="https://x.example/f"), T0)
    assert first.added == ("f0", "f1", "f2")
    changed = [
        feeds(3)[0],
        UpstreamConfig(name="f1", url="https://new.example/f1", topics=("alibaba",)),
    ]
    with db.write() as conn:
        second = upstreams.sync_from_config(conn, changed, T0)
        rows = {u.name: u for u in upstreams.list_all(conn)}
    assert second.updated == ("f1",)
    assert second.disabled == ("f2",)
    assert rows["f1"].url == "https://new.example/f1"
    assert rows["f1"].topics == ("alibaba",)
    assert not rows["f2"].enabled
    assert rows["f2"].disabled_reason == "removed from the config"
    assert rows["byhand"].enabled  # store-managed upstreams are left alone


def test_first_polls_are_spread(db: Database) -> None:
    with db.write() as conn:
        upstreams.sync_from_config(
            conn, feeds(200), T0, spread=timedelta(minutes=10), rand=random.Random(7)
        )
        checks = [u.next_check for u in upstreams.list_all(conn)]
    assert min(checks) >= T0
    assert max(checks) <= T0 + timedelta(minutes=10)
    assert len({c.replace(second=0, microsecond=0) for c in checks}) >= 8  # not all in one minute


def test_claims_are_exclusive_and_expire(db: Database) -> None:
    with db.write() as conn:
        upstreams.sync_from_config(conn, feeds(4), T0, spread=timedelta(0))
    now = T0 + timedelta(seconds=1)
    with db.write() as conn:
        a = upstreams.claim_due(conn, now, owner="a", lease=LEASE, limit=3)
    with db.write() as conn:
        b = upstreams.claim_due(conn, now, owner="b", lease=LEASE, limit=10)
    assert len(a) == 3
    assert len(b) == 1
    assert {u.name for u in a}.isdisjoint({u.name for u in b})
    with db.write() as conn:
        assert upstreams.claim_due(conn, now, owner="c", lease=LEASE, limit=10) == []
    # "a" crashed: after its lease, its feeds are due again by themselves
    later = now + LEASE + timedelta(seconds=1)
    with db.write() as conn:
        c = upstreams.claim_due(conn, later, owner="c", lease=LEASE, limit=10)
    assert {u.name for u in c} == {u.name for u in a} | {u.name for u in b}
    # the crashed owner's late write is fenced off
    with db.write() as conn:
        assert not upstreams.save_state(conn, a[0].id, "a", {"polls": 99})
        assert upstreams.save_state(conn, a[0].id, "c", {"polls": 1})


def test_save_state_writes_each_set_of_values_and_releases_the_lease(db: Database) -> None:
    """Polls write back different sets of columns (an OK poll, a failure, a 304) through
    one prepared statement per set: each writes exactly its values, typed, and frees the
    feed; the other columns keep theirs."""
    with db.write() as conn:
        upstreams.sync_from_config(conn, feeds(1), T0, spread=timedelta(0))
    now = T0 + timedelta(seconds=1)
    later = now + timedelta(minutes=5)
    writes: list[dict[str, object]] = [
        {"etag": '"v1"', "last_success": now, "next_check": later, "polls": 1},
        {"last_error": "HTTP 503", "consecutive_failures": 1, "next_check": later, "polls": 2},
        {"next_check": later + timedelta(minutes=5), "polls": 3},
    ]
    for values in writes + writes:  # each set twice: the statement is reused
        with db.write() as conn:
            [claimed] = upstreams.claim_due(
                conn, now, owner="p", lease=LEASE, limit=1, include_not_due=True
            )
            assert upstreams.save_state(conn, claimed.id, "p", dict(values))
        with db.read() as conn:
            stored = upstreams.get(conn, "f0")
        assert stored is not None
        assert {k: getattr(stored, k) for k in values} == values
        assert (stored.lease_owner, stored.lease_until) == (None, None)
        assert (stored.etag, stored.last_success) == ('"v1"', now)  # only the first set sets them


def test_two_claimers_in_parallel_never_share_a_feed(db: Database) -> None:
    with db.write() as conn:
        upstreams.sync_from_config(conn, feeds(60), T0, spread=timedelta(0))
    got: dict[str, list[str]] = {"a": [], "b": []}

    def worker(owner: str) -> None:
        while True:
            with db.write() as conn:
                batch = upstreams.claim_due(
                    conn, T0 + timedelta(seconds=1), owner=owner, lease=LEASE, limit=4
                )
            if not batch:
                return
            got[owner] += [u.name for u in batch]

    threads = [threading.Thread(target=worker, args=(o,)) for o in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got["a"] + got["b"]) == sorted(f"f{i}" for i in range(60))


def _article(db: Database) -> str:
    a = ArticleData("tag:t,2026:1", "t", "", "", None, (), None, (), T0, T0)
    with db.write() as conn:
        articles.upsert_article(conn, a, T0)
    return a.id


def test_outbox_enqueue_is_idempotent_and_fenced(db: Database) -> None:
    aid = _article(db)
    with db.write() as conn:
        assert outbox.enqueue(conn, aid, ["slack", "discord"], "article.new", T0) == 2
        assert outbox.enqueue(conn, aid, ["slack", "discord"], "article.new", T0) == 0
    with db.write() as conn:
        first = outbox.claim(conn, T0, owner="w1", lease=LEASE, limit=10)
    assert {d.webhook for d in first} == {"slack", "discord"}
    with db.write() as conn:
        assert outbox.claim(conn, T0, owner="w2", lease=LEASE, limit=10) == []
    later = T0 + LEASE + timedelta(seconds=1)
    with db.write() as conn:
        again = outbox.claim(conn, later, owner="w2", lease=LEASE, limit=10)
    assert len(again) == 2
    with db.write() as conn:
        assert not outbox.mark_done(conn, first[0], later, 200)  # stale fence
        d = next(x for x in again if x.webhook == first[0].webhook)
        assert outbox.mark_done(conn, d, later, 200)
        other = next(x for x in again if x.webhook != first[0].webhook)
        assert outbox.mark_dead(conn, other, later, "HTTP 400: bad payload", 400)
    with db.read() as conn:
        depth = {s.webhook: s for s in outbox.depth(conn)}
        dead = outbox.list_deliveries(conn, status="dead")
        done = outbox.list_deliveries(conn, status="done")
    assert [x.webhook for x in done] == [d.webhook]
    assert d.webhook not in depth  # neither pending nor dead
    assert (depth[other.webhook].pending, depth[other.webhook].dead) == (0, 1)
    assert [x.last_error for x in dead] == ["HTTP 400: bad payload"]
    with db.write() as conn:
        assert outbox.retry(conn, [], later, all_dead=True) == 1
        back = outbox.claim(conn, later, owner="w3", lease=LEASE, limit=10)
    assert [(x.webhook, x.attempts) for x in back] == [(other.webhook, 0)]


def test_rate_limit_wait_does_not_use_an_attempt(db: Database) -> None:
    aid = _article(db)
    with db.write() as conn:
        outbox.enqueue(conn, aid, ["discord"], "article.new", T0)
        (d,) = outbox.claim(conn, T0, owner="w", lease=LEASE, limit=1)
        assert outbox.mark_retry(conn, d, T0 + timedelta(seconds=2), "429", 429, count=False)
        assert outbox.claim(conn, T0 + timedelta(seconds=1), owner="w", lease=LEASE, limit=1) == []
        (d2,) = outbox.claim(conn, T0 + timedelta(seconds=2), owner="w", lease=LEASE, limit=1)
    assert d2.attempts == 0
    assert d2.last_error == "429"
