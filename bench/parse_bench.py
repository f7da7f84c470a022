"""Parse-only speed: feedparser vs the tree and fast paths on a generated 50-entry, ~160 KiB RSS feed.

Run: ``.venv/bin/python bench/parse_bench.py [--rounds N]``. Prints one row per contender
with the median and best time per feed; "parse_feed" rows include text cleaning and HTML
sanitising, the raw rows do not.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import fastfeedparser
import feedparser

import feedbot.poll.parse
from feedbot.poll.parse import parse_feed, parse_feed_reference

URL = "http://bench.example.invalid/feed.xml"
PARAGRAPH = (
    "<p>The quarterly report from the <a href='/markets/cloud'>cloud division</a> shows "
    "steady growth in <em>enterprise</em> contracts, while the logistics arm keeps "
    "investing in regional warehouses &amp; automated sorting lines.</p>"
)


def make_feed(entries: int = 50) -> bytes:
    """A realistic RSS 2.0 document: HTML content in CDATA, relative links, dates, guids."""
    start = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    items = []
    for n in range(entries):
        body = "".join(PARAGRAPH for _ in range(12))
        body += f"<img src='/img/{n}.jpg' alt='chart {n}'><script>track({n})</script>"
        items.append(
            f"""<item>
  <title>Item {n}: results &amp; outlook for the cloud business</title>
  <link>https://news.example.invalid/articles/{n}</link>
  <guid isPermaLink="false">bench-{n}</guid>
  <pubDate>{format_datetime(start + timedelta(hours=n))}</pubDate>
  <category>cloud</category><category>earnings</category>
  <dc:creator>Desk {n % 5}</dc:creator>
  <description>Summary of item {n}: revenue grew while margins held steady.</description>
  <content:encoded><![CDATA[{body}]]></content:encoded>
</item>"""
        )
    doc = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Bench feed</title><link>https://news.example.invalid/</link>
<language>en</language><ttl>30</ttl>
{"".join(items)}
</channel></rss>"""
    return doc.encode("utf-8")


def measure(run: Callable[[], object], rounds: int) -> tuple[float, float]:
    run()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, min(times) * 1000


def _without_tree_path(body: bytes, headers: dict[str, str]) -> object:
    """``parse_feed`` as it was before the tree path: fastfeedparser checked on the tree."""
    tree_path = feedbot.poll.parse.parse_tree
    feedbot.poll.parse.parse_tree = lambda root: None
    try:
        return parse_feed(body, headers, URL)
    finally:
        feedbot.poll.parse.parse_tree = tree_path


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--rounds", type=int, default=30)
    rounds = args.parse_args().rounds
    body = make_feed()
    headers = {"Content-Type": "application/rss+xml; charset=utf-8"}
    assert parse_feed(body, headers, URL).parser == "tree"
    contenders: list[tuple[str, Callable[[], object]]] = [
        ("feedparser.parse (raw)", lambda: feedparser.parse(io.BytesIO(body))),
        ("fastfeedparser.parse (raw)", lambda: fastfeedparser.parse(body)),
        ("parse_feed_reference", lambda: parse_feed_reference(body, headers, URL)),
        ("parse_feed (fast path)", lambda: _without_tree_path(body, headers)),
        ("parse_feed (tree path)", lambda: parse_feed(body, headers, URL)),
    ]
    print(f"document: {len(body) / 1024:.0f} KiB, 50 entries, {rounds} rounds")
    print(f"{'contender':<28} {'median ms':>10} {'best ms':>9}")
    for name, run in contenders:
        median, best = measure(run, rounds)
        print(f"{name:<28} {median:>10.2f} {best:>9.2f}")


if __name__ == "__main__":
    main()
