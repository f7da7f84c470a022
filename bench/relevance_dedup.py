"""Micro-benchmark of the pure deduplication keys (no store).

Run: ``.venv/bin/python bench/relevance_dedup.py [N]``. Texts are generated here from a
small word list, so the numbers do not depend on any corpus.
"""

from __future__ import annotations

import random
import sys
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from feedbot.relevance.dedup import Candidate, canonical_url, decide, story_keys

_WORD_TEXT = (
    "alibaba tencent cloud revenue quarter shares market regulator growth investors "
    "analysts forecast results china hong kong technology ecommerce platform chips data "
    "profit billion yuan rose fell after before strong weak demand services customers "
    "le la les groupe résultats chinois marché croissance hausse baisse trimestre"
)
WORDS = _WORD_TEXT.split()
HANZI = "阿里巴巴腾讯云计算收入季度股价市场监管增长投资者分析师预期业绩中国香港科技电商平台芯片数据利润亿元"


def _items(n: int, seed: int = 7) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        # Typical feed sizes: 8-12 word titles with 20-45 word summaries; Chinese items
        # with 12-20 character titles and 40-90 character summaries.
        if i % 4 == 3:
            title = "".join(rng.choices(HANZI, k=rng.randint(12, 20)))
            summary = "".join(rng.choices(HANZI, k=rng.randint(40, 90))) + "。"
        else:
            title = " ".join(rng.choices(WORDS, k=rng.randint(8, 12))).capitalize()
            title += " - Example Wire"
            summary = " ".join(rng.choices(WORDS, k=rng.randint(20, 45))) + "."
        link = f"https://www.example.com/news/{i}/story?utm_source=rss&id={i}&fbclid=x"
        items.append((title, summary, link))
    return items


def _rate(label: str, n: int, run: Callable[[], object]) -> None:
    start = time.perf_counter()
    run()
    elapsed = time.perf_counter() - start
    print(f"{label:<44} {n / elapsed:>10,.0f}/s  ({elapsed * 1e6 / n:.1f} µs each)")


def main(n: int = 20_000) -> None:
    reference = min(timeit.repeat("sum(range(100))", number=100_000, repeat=3)) * 10
    print(f"interpreter speed: sum(range(100)) takes {reference:.2f} µs on this machine")
    items = _items(n)
    story_keys("warm up", "the tables and the converter", None)
    _rate(
        "story_keys(title, summary, None)", n, lambda: [story_keys(t, s, None) for t, s, _ in items]
    )
    _rate("story_keys(title, summary, link)", n, lambda: [story_keys(t, s, u) for t, s, u in items])
    _rate("canonical_url(link)", n, lambda: [canonical_url(u) for _, _, u in items])

    t0 = datetime(2024, 5, 17, tzinfo=UTC)
    pool = [
        Candidate(f"id-{i}", story_keys(t, s, u), t0 - timedelta(hours=i % 96))
        for i, (t, s, u) in enumerate(items[:200])
    ]
    probes = [story_keys(t, s, None) for t, s, _ in _items(500, seed=8)]
    _rate("decide(new, 200 candidates)", len(probes), lambda: [decide(k, t0, pool) for k in probes])


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
