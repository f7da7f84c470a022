"""Publisher benchmark (run by hand): publish cost vs store size, and Markdown import throughput.

    .venv/bin/python bench/publish.py [--small 1000] [--large 100000] [--markdown 10000]

Prints a table. Publishing reads only the newest rows through an index, so the cost of a
50-entry feed should not grow with the store (target: large/small <= 1.5). Nor should the
change check the daemon runs before it, every ``daemon.publish_tick`` (5 s by default).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from feedbot.config import config_from_mapping
from feedbot.models import ArticleData
from feedbot.publish.runner import publish_feed
from feedbot.store import articles as store_articles
from feedbot.store import schema
from feedbot.store.db import Database

T0 = datetime(2020, 1, 1, tzinfo=UTC)


def fill(db: Database, n: int) -> None:
    """Bulk-insert *n* articles (executemany on the real schema; the upsert path is not timed)."""
    content = "<p>" + "Some body text about Alibaba Cloud. " * 30 + "</p>"
    batch = 5000
    for start in range(0, n, batch):
        rows, topics = [], []
        for i in range(start, min(n, start + batch)):
            a = ArticleData(
                id=f"tag:bench.example,2026:a/{i}",
                title=f"Alibaba article number {i}",
                summary="A short summary of the article. " * 3,
                content=content,
                link=f"https://example.org/a/{i}",
                authors=("Bench",),
                language="en",
                categories=("bench",),
                published=T0 + timedelta(minutes=i),
                updated=T0 + timedelta(minutes=i),
            )
            rows.append({
                "id": a.id, "title": a.title, "summary": a.summary, "content": a.content,
                "link": a.link, "authors": list(a.authors), "language": a.language,
                "categories": list(a.categories), "published": a.published, "updated": a.updated,
                "content_hash": store_articles.content_hash(a), "topics": ["alibaba"],
                "matched_terms": ["alibaba"], "created_at": T0, "changed_at": T0,
            })  # fmt: skip
            topics.append({"topic": "alibaba", "article_id": a.id, "updated": a.updated})
        with db.write() as conn:
            conn.execute(insert(schema.articles), rows)
            conn.execute(insert(schema.article_topics), topics)


def publish_cost(n: int, repeats: int, topics: tuple[str, ...]) -> tuple[float, float]:
    """Median seconds to publish the feed, and to run the daemon's change check."""
    with tempfile.TemporaryDirectory() as tmp:
        config = config_from_mapping(
            {"publish": [{"name": "bench", "title": "Bench", "topics": list(topics)}]},
            base_dir=Path(tmp),
        )
        db = Database(config.database_url)
        fill(db, n)
        pub = config.publish[0]
        publish_feed(db, config, pub)  # warm up
        times = []
        for _ in range(repeats):
            (config.feeds_dir / "bench.atom").unlink()
            started = time.perf_counter()
            publish_feed(db, config, pub)
            times.append(time.perf_counter() - started)
        checks = []
        for _ in range(repeats * 10):
            started = time.perf_counter()
            with db.read() as conn:
                store_articles.change_marker(conn)
            checks.append(time.perf_counter() - started)
        db.close()
        return statistics.median(times), statistics.median(checks)


def import_rate(n: int) -> float:
    from feedbot.app import App

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "notes"
        folder.mkdir()
        for i in range(n):
            (folder / f"note-{i:05d}.md").write_text(
                f"---\ntitle: Note {i} about Alibaba Cloud\ndate: 2024-01-01T00:00:00Z\n"
                f"lang: en\ntags: [alibaba]\n---\nFirst paragraph {i} about Taobao.\n\n"
                "Second paragraph with *emphasis* and a [link](https://example.org/).\n",
                encoding="utf-8",
            )
        config = config_from_mapping({}, base_dir=Path(tmp))
        app = App(config)
        started = time.perf_counter()
        result = app.import_paths([folder])
        elapsed = time.perf_counter() - started
        app.close()
        assert result.added == n, result
        return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--markdown", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    rows = []
    checks: dict[int, float] = {}  # the change check, from the stores of the first pass
    for topics in ((), ("alibaba",)):
        small, checks_small = publish_cost(args.small, args.repeats, topics)
        large, checks_large = publish_cost(args.large, args.repeats, topics)
        checks.setdefault(args.small, checks_small)
        checks.setdefault(args.large, checks_large)
        label = "all articles" if not topics else "topic alibaba"
        rows.append(
            (
                f"publish 50 ({label})",
                f"{small * 1000:.1f} ms @ {args.small}",
                f"{large * 1000:.1f} ms @ {args.large}",
                f"{large / small:.2f}",
            )
        )
    rows.append(
        (
            "change check (daemon tick)",
            f"{checks[args.small] * 1000:.3f} ms @ {args.small}",
            f"{checks[args.large] * 1000:.3f} ms @ {args.large}",
            f"{checks[args.large] / checks[args.small]:.2f}",
        )
    )
    rate = import_rate(args.markdown)
    print(f"{'measure':<32} {'small store':>18} {'large store':>20} {'ratio':>6}")
    for r in rows:
        print(f"{r[0]:<32} {r[1]:>18} {r[2]:>20} {r[3]:>6}")
    print(
        f"{'import Markdown':<32} {f'{rate:,.0f} articles/s':>18} {f'({args.markdown} files)':>20}"
    )


if __name__ == "__main__":
    main()
