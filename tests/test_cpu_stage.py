"""The parse + analyse stage gives the same result in a worker process as in-process."""

from __future__ import annotations

from feedbot.poll.cpu import CpuStage
from feedbot.relevance.topics import Matcher, load_default_topics
from tests.feedgen_util import Item, news, rss


def test_pool_and_in_process_agree() -> None:
    specs = tuple(load_default_topics().values())
    matcher = Matcher(specs)
    items = [*news(40), Item("Weather report", "https://site.example/w", summary="Rain. " * 4000)]
    body = rss(items)
    assert len(body) > 32 * 1024
    headers = {"content-type": "application/rss+xml"}
    local = CpuStage(matcher, specs, processes=0).run(body, headers, "https://site.example/f", ())
    pool = CpuStage(matcher, specs, processes=1, offload_bytes=1024)
    try:
        remote = pool.run(body, headers, "https://site.example/f", ())
        refused = pool.run(b"<html><body>no feed</body></html>" * 100, {}, "https://x/", ())
    finally:
        pool.close()
    assert remote == local
    assert len(remote.plans) == 41
    assert sum(bool(p.topics) for p in remote.plans) == 40
    assert refused.feed is None
    assert refused.error == "not a feed: an HTML page"
