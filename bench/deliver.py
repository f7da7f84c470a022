"""Delivery throughput: the outbox worker against a bare ``requests.Session.post`` loop.

Run by hand: ``.venv/bin/python bench/deliver.py [--deliveries 10000] [--receivers 10]``.
Seeds N pending deliveries (generic kind, no rate limits, digests off) spread over R
loopback receivers, times a bare sequential ``Session.post`` loop sending the same number
of same-sized bodies to the same receivers, then times ``Deliverer.drain_once`` until the
outbox is empty (claims with leases, fenced outcome writes), and prints a table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scratch import scratch_postgres  # noqa: E402

from feedbot.config import NotifyConfig, WebhookConfig  # noqa: E402
from feedbot.models import ArticleData, Origin  # noqa: E402
from feedbot.notify.deliver import Deliverer, make_session  # noqa: E402
from feedbot.notify.payloads import kind, notice_from_article  # noqa: E402
from feedbot.store import outbox  # noqa: E402
from feedbot.store.articles import get_article, upsert_article  # noqa: E402
from feedbot.store.db import Database  # noqa: E402

NOW = datetime.now(UTC).replace(microsecond=0)


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()


def start_receiver(counter: Counter) -> tuple[ThreadingHTTPServer, threading.Thread, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with counter.lock:
                counter.count += 1
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_address[1]}/hook/bench-token"


def serve(count: int, urls: Queue[Any], stop: EventType) -> None:
    """The receivers, in their own process so they do not share the client's GIL."""
    counters = [Counter() for _ in range(count)]
    servers = [start_receiver(c) for c in counters]
    for _, _, url in servers:
        urls.put(url)
    stop.wait()
    for server, thread, _ in servers:
        server.shutdown()
        server.server_close()
        thread.join()
    urls.put(sum(c.count for c in counters))


def seed(db: Database, articles: int, hooks: list[str]) -> None:
    with db.write() as conn:
        for i in range(articles):
            article = ArticleData(
                id=f"tag:bench,2026:a{i}",
                title=f"Alibaba benchmark article {i}",
                summary="Alibaba Cloud lowered prices for its models. " * 8,
                content="",
                link=f"https://news.example/articles/{i}",
                authors=(),
                language="en",
                categories=(),
                published=NOW - timedelta(seconds=i),
                updated=NOW - timedelta(seconds=i),
                origin=Origin("Example Tech News", "https://news.example/feed.xml"),
            )
            upsert_article(conn, article, NOW, topics=("alibaba",))
            outbox.enqueue(conn, article.id, hooks, "article.new", NOW)


def bare_loop(urls: list[str], total: int, body: bytes) -> float:
    session = requests.Session()
    started = time.perf_counter()
    for _, url in zip(range(total), itertools.cycle(urls), strict=False):
        response = session.post(
            url, data=body, headers={"content-type": "application/json"}, timeout=(5, 15)
        )
        response.raise_for_status()
    elapsed = time.perf_counter() - started
    session.close()
    return elapsed


def outbox_run(
    db: Database, hooks: list[WebhookConfig], batch: int, workers: int
) -> tuple[float, int]:
    notify = NotifyConfig(batch=batch)
    deliverer = Deliverer(db, hooks, notify, session=make_session(workers * 2), workers=workers)
    delivered = 0
    started = time.perf_counter()
    while True:
        result = deliverer.drain_once()
        delivered += result.delivered
        if not result.claimed:
            break
    elapsed = time.perf_counter() - started
    deliverer.session.close()
    return elapsed, delivered


@contextmanager
def database(url: str | None, tmp: str) -> Iterator[Database]:
    """A fresh store: a temporary SQLite file, or a scratch schema dropped afterwards."""
    if not url or url.startswith("sqlite"):
        db = Database(url or f"sqlite:///{tmp}/bench.sqlite3")
        yield db
        db.close()
        return
    with scratch_postgres(url) as db:
        yield db


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--receivers", type=int, default=10)
    parser.add_argument("--batch", type=int, default=500, help="[notify] batch (rows per webhook)")
    parser.add_argument("--workers", type=int, default=8, help="sending threads")
    parser.add_argument(
        "--database-url", help="default: a temporary SQLite file; PostgreSQL gets a scratch schema"
    )
    args = parser.parse_args()

    queue: Queue[Any] = multiprocessing.Queue()
    stop = multiprocessing.Event()
    receivers = multiprocessing.Process(target=serve, args=(args.receivers, queue, stop))
    receivers.start()
    urls = [queue.get(timeout=30) for _ in range(args.receivers)]
    hooks = [
        WebhookConfig(name=f"bench{i}", kind="generic", url=url, digest_threshold=1_000_000)
        for i, url in enumerate(urls)
    ]
    with tempfile.TemporaryDirectory() as tmp, database(args.database_url, tmp) as db:
        seed(db, args.deliveries // args.receivers, [h.name for h in hooks])
        with db.read() as conn:
            article = get_article(conn, "tag:bench,2026:a0")
        assert article is not None
        sample = kind("generic").render(
            notice_from_article(article, delivery_id="x", event="article.new")
        )
        body = json.dumps(sample).encode()
        total = args.deliveries // args.receivers * args.receivers

        bare = bare_loop(urls, total, body)
        worker, delivered = outbox_run(db, hooks, args.batch, args.workers)
    stop.set()
    received = queue.get(timeout=30)
    receivers.join(timeout=30)
    rows = [
        ("bare Session.post loop", total, bare, 1.0),
        (f"outbox worker ({args.workers} threads)", delivered, worker, worker / bare),
    ]
    print(
        f"{total} deliveries to {args.receivers} loopback receivers (another process), "
        f"{len(body)}-byte bodies"
    )
    print(f"{'mode':<30} {'messages':>9} {'seconds':>8} {'msg/s':>8} {'time ratio':>10}")
    for name, count, seconds, ratio in rows:
        print(f"{name:<30} {count:>9} {seconds:>8.2f} {count / seconds:>8.0f} {ratio:>10.2f}")
    print(f"receivers saw {received} requests (expected {2 * total})")
    return 0 if delivered == total else 1


if __name__ == "__main__":
    sys.exit(main())
