"""The daemon benchmark's loopback world: small upstream feeds, a control port, a receiver.

Run by ``bench/daemon.py`` as a child process (so it never shares a CPU clock or a GIL
with the measured daemon)::

    python bench/daemon_server.py --feeds 1000 --hosts 253

It binds one listener per address 127.0.0.2 .. 127.0.0.(hosts+1) on one shared port
(``poll_server.bind_all``), prints one JSON line ``{"port": P, "hosts": [...]}`` once every
listener is up, and serves until its standard input closes or ``--max-seconds`` pass.

- ``GET /feeds/{i}.xml``: a small RSS 2.0 feed of ``--entries`` unrelated items, published
  ``--step-minutes`` apart (10 minutes: an adaptive interval of half the median gap, 5
  minutes, the production ``poll.min_interval``), plus any item added through the control
  endpoint. ETag and Last-Modified change with every addition; conditional requests that
  match get 304.
- ``POST /control/add?feed=i``: adds a new item naming Alibaba, with text drawn at random
  so no two additions look like one story; answers ``{"title": ...}``.
- ``POST /hook``: the webhook receiver (a generic JSON payload); answers 204.
- ``GET /stats``: responses by status, distinct feeds served at least once, webhook
  messages received, and for each added item when it was added, first served (the arrival
  of the request whose 200 carried it) and received by the hook, on this process's
  monotonic clock, so the three times compare exactly.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from xml.sax.saxutils import escape

from poll_server import bind_all, not_modified

_FEED_PATH = re.compile(r"^/feeds/(\d+)\.xml$")
_FEED_QUERY = re.compile(r"(?:^|&)feed=(\d+)(?:&|$)")
_SYLLABLES = ("ka", "ro", "ten", "vi", "sor", "mal", "de", "qu", "bri", "ton", "ex", "pla", "gen")
_BASE_WORDS = ("cloud", "region", "data", "centre", "retailers", "banks", "revenue", "chips",
               "model", "pricing", "logistics", "payments", "merchants", "overseas",
               "expansion", "regulators", "platform", "developers")  # fmt: skip


@dataclass
class _Feed:
    """One upstream's extra items (newest first) and its version, bumped on every change."""

    version: int = 0
    added: list[tuple[str, str, datetime]] = field(default_factory=list)  # title, text, date


@dataclass
class _Timing:
    added: float
    served: float | None = None
    hooked: float | None = None


class World:
    """Everything the handlers share, behind one lock."""

    def __init__(self, feeds: int, entries: int, step: timedelta, seed: int) -> None:
        self.feeds = feeds
        self.entries = entries
        self.step = step
        self.started = datetime.now(UTC).replace(microsecond=0)
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.state = [_Feed() for _ in range(feeds)]
        self.counts: dict[str, int] = {}
        self.served_feeds: set[int] = set()
        self.hooks = 0
        self.timings: dict[str, _Timing] = {}

    # ------------------------------------------------------------------ feeds
    def etag(self, index: int) -> str:
        return f'"daemon-bench-{index}-v{self.state[index].version}"'

    def last_modified(self, index: int) -> datetime:
        return self.started + timedelta(seconds=self.state[index].version)

    def document(self, index: int) -> tuple[bytes, list[str]]:
        """Feed *index* as RSS 2.0, and the titles of the added items it carries."""
        items = []
        titles = []
        added = self.state[index].added
        for k, (title, text, date) in enumerate(added):
            link = f"https://news.example.invalid/added/{index}/{len(added) - k}"
            items.append(_item(title, text, link, date))
            titles.append(title)
        for n in range(self.entries):
            date = self.started - self.step * n
            title = f"Weather and traffic bulletin {index}-{n}"
            link = f"https://news.example.invalid/base/{index}/{n}"
            items.append(_item(title, f"Bulletin {n} of feed {index}.", link, date))
        doc = (
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
            f"<title>Daemon bench {index}</title><link>https://news.example.invalid/</link>"
            f"<description>Generated feed {index}</description>\n{''.join(items)}"
            "</channel></rss>\n"
        )
        return doc.encode("utf-8"), titles

    def add(self, index: int) -> str:
        """Add a fresh Alibaba item to feed *index*; its title is returned."""
        with self.lock:
            words = [self._word() for _ in range(7)]
            title = f"Alibaba Cloud {' '.join(words)}"
            text = " ".join(self._word() for _ in range(30)) + "."
            feed = self.state[index]
            feed.added.insert(0, (title, f"Alibaba said {text}", datetime.now(UTC)))
            feed.version += 1
            self.timings[title] = _Timing(added=time.monotonic())
        return title

    def _word(self) -> str:
        if self.rng.random() < 0.3:
            return self.rng.choice(_BASE_WORDS)
        return "".join(self.rng.choices(_SYLLABLES, k=self.rng.randint(2, 4)))

    # ------------------------------------------------------------ bookkeeping
    def count(self, status: int, index: int | None = None) -> None:
        with self.lock:
            self.counts[str(status)] = self.counts.get(str(status), 0) + 1
            if index is not None:
                self.served_feeds.add(index)

    def served(self, titles: list[str], at: float) -> None:
        with self.lock:
            for title in titles:
                timing = self.timings.get(title)
                if timing is not None and timing.served is None:
                    timing.served = at

    def hooked(self, title: str, at: float) -> None:
        with self.lock:
            self.hooks += 1
            timing = self.timings.get(title)
            if timing is not None and timing.hooked is None:
                timing.hooked = at

    def snapshot(self) -> dict[str, object]:
        with self.lock:
            return {
                "counts": dict(self.counts),
                "feeds_served": len(self.served_feeds),
                "hooks": self.hooks,
                "items": {
                    t: {"added": v.added, "served": v.served, "hooked": v.hooked}
                    for t, v in self.timings.items()
                },
                "cpu_seconds": time.process_time(),
            }


def _item(title: str, text: str, link: str, date: datetime) -> str:
    return (
        f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
        f'<guid isPermaLink="true">{escape(link)}</guid>'
        f"<pubDate>{format_datetime(date)}</pubDate>"
        f"<description>{escape(text)}</description></item>\n"
    )


def make_handler(world: World) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 600  # an idle kept-alive connection is dropped after this

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            arrived = time.monotonic()
            path = self.path.partition("?")[0]
            if path == "/stats":
                self._send(200, json.dumps(world.snapshot()).encode(), "application/json")
                return
            m = _FEED_PATH.match(path)
            if m is None or int(m.group(1)) >= world.feeds:
                world.count(404)
                self._send(404, b"not found", "text/plain")
                return
            index = int(m.group(1))
            with world.lock:
                tag, modified = world.etag(index), world.last_modified(index)
                body, titles = world.document(index)
            headers = {"ETag": tag, "Last-Modified": format_datetime(modified, usegmt=True)}
            if not_modified(self.headers, tag, modified):
                world.count(304, index)
                self._send(304, b"", None, headers)
                return
            world.count(200, index)
            world.served(titles, arrived)
            self._send(200, body, "application/rss+xml; charset=utf-8", headers)

        def do_POST(self) -> None:
            arrived = time.monotonic()
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            if path == "/hook":
                try:
                    title = str(json.loads(payload)["data"]["title"])
                except (ValueError, KeyError, TypeError):
                    title = ""
                world.hooked(title, arrived)
                self._send(204, b"", None)
                return
            m = _FEED_QUERY.search(query)
            if path == "/control/add" and m is not None and int(m.group(1)) < world.feeds:
                title = world.add(int(m.group(1)))
                self._send(200, json.dumps({"title": title}).encode(), "application/json")
                return
            self._send(404, b"not found", "text/plain")

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str | None,
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            if status not in (204, 304):
                self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if status not in (204, 304):
                self.wfile.write(body)

    return Handler


def _stdin_closed(stop: threading.Event) -> None:
    sys.stdin.buffer.read()  # returns at EOF: the parent is gone or done with us
    stop.set()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=253)
    parser.add_argument("--entries", type=int, default=5)
    parser.add_argument("--step-minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--max-seconds", type=float, default=3 * 3600.0)
    args = parser.parse_args(argv)
    world = World(args.feeds, args.entries, timedelta(minutes=args.step_minutes), args.seed)
    servers = bind_all(args.hosts, make_handler(world))
    for s in servers:
        # a long poll interval: the selector still wakes on every connection, and fewer
        # idle wake-ups of 253 listeners keep this process out of the daemon's way
        threading.Thread(target=s.serve_forever, args=(30.0,), daemon=True).start()
    stop = threading.Event()
    threading.Thread(target=_stdin_closed, args=(stop,), daemon=True).start()
    ready = {"port": servers[0].server_address[1], "hosts": [s.server_address[0] for s in servers]}
    print(json.dumps(ready), flush=True)
    stop.wait(args.max_seconds)  # then exit: the listener threads are daemons


if __name__ == "__main__":
    main()
