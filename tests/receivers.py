"""Real webhook receivers on 127.0.0.1, one per kind, for delivery tests.

A ``Receiver`` checks every request against its platform's documented shape and limits
(problems are collected, not raised, so a test can assert on all of them), records it, and
answers from a script of ``Reply`` objects (default: the platform's success answer). It
can enforce a rate (answering 429 beyond it, as Discord does), hold requests open until
released, or answer slowly. Its rate window uses an injected clock when given one, so it
shares the fake time of the worker under test.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from feedbot.notify.kinds import discord, slack, teams
from tests.loopback import Request

TOKEN_PATH = "/hooks/T0001/B0002/s3cr3tTokenValue9f8e7d"  # a secret-looking route


@dataclass(frozen=True)
class Reply:
    """One scripted answer; ``hold`` blocks the answer until set, ``delay`` slows it."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hold: threading.Event | None = None


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it, with its parsed JSON and its verdict."""

    headers: dict[str, str]
    body: bytes
    payload: Any
    status: int
    problems: tuple[str, ...]


SUCCESS = {
    "slack": Reply(200, b"ok"),
    "discord": Reply(204),
    "mattermost": Reply(200, b"ok"),
    "teams": Reply(202),
    "generic": Reply(204),
}


def _check_discord(p: dict[str, Any], problems: list[str]) -> None:
    embeds = p.get("embeds", [])
    if not embeds and not p.get("content"):
        problems.append("discord: neither content nor embeds")
    if len(embeds) > discord.MAX_EMBEDS:
        problems.append(f"discord: {len(embeds)} embeds")
    if discord.measure(p) > discord.MAX_EMBED_TOTAL:
        problems.append(f"discord: {discord.measure(p)} embed characters")
    if len(p.get("content", "")) > discord.MAX_CONTENT:
        problems.append("discord: content too long")
    if p.get("allowed_mentions") != {"parse": []}:
        problems.append("discord: mentions not disabled")
    for e in embeds:
        if len(e.get("title", "")) > discord.MAX_TITLE:
            problems.append("discord: embed title too long")
        if len(e.get("description", "")) > discord.MAX_DESCRIPTION:
            problems.append("discord: embed description too long")
        for f in e.get("fields", []):
            if len(f["name"]) > discord.MAX_FIELD_NAME or len(f["value"]) > discord.MAX_FIELD_VALUE:
                problems.append("discord: field too long")


def _check_slack(p: dict[str, Any], body: bytes, problems: list[str]) -> None:
    if not isinstance(p.get("text"), str) or not p["text"]:
        problems.append("slack: no fallback text")
    blocks = p.get("blocks", [])
    if len(blocks) > slack.MAX_BLOCKS:
        problems.append(f"slack: {len(blocks)} blocks")
    for b in blocks:
        text = b.get("text", {}).get("text", "")
        limit = slack.MAX_HEADER if b["type"] == "header" else slack.MAX_SECTION
        if len(text) > limit:
            problems.append(f"slack: {b['type']} text of {len(text)} characters")
    if len(body.decode()) > slack.MAX_TOTAL:
        problems.append("slack: body too long")


def _check_mattermost(p: dict[str, Any], problems: list[str]) -> None:
    if not p.get("text") or not isinstance(p.get("attachments"), list):
        problems.append("mattermost: text and attachments expected")
    for a in p.get("attachments", []):
        if not a.get("fallback") or not a.get("title"):
            problems.append("mattermost: attachment without fallback or title")


def _check_teams(p: dict[str, Any], body: bytes, problems: list[str]) -> None:
    if p.get("type") != "message":
        problems.append("teams: type is not message")
    attachments = p.get("attachments") or [{}]
    if attachments[0].get("contentType") != teams.CARD_TYPE:
        problems.append("teams: not an adaptive card")
    if len(body) > teams.MAX_BYTES:
        problems.append(f"teams: {len(body)} bytes")


def _check_generic(
    p: dict[str, Any], req: Request, secret: str | None, problems: list[str]
) -> None:
    if set(p) != {"type", "version", "timestamp", "data"} or p["version"] != 1:
        problems.append("generic: not a version 1 envelope")
    for name in ("webhook-id", "webhook-timestamp"):
        if not req.headers.get(name):
            problems.append(f"generic: no {name} header")
    if secret is not None:
        try:
            Webhook(secret).verify(req.body, req.headers)
        except WebhookVerificationError as exc:
            problems.append(f"generic: signature does not verify: {exc}")
    data = p.get("data", {})
    for article in data.get("articles", [data]):
        if len(article.get("title", "")) > 1024 or len(article.get("summary", "")) > 4096:
            problems.append("generic: article text over its limits")


def check(kind: str, req: Request, secret: str | None = None) -> tuple[Any, list[str]]:
    """Parse *req* and list every way it breaks the *kind*'s shape or limits."""
    problems: list[str] = []
    if req.method != "POST":
        problems.append(f"method {req.method}")
    if not req.headers.get("content-type", "").startswith("application/json"):
        problems.append("content-type is not JSON")
    try:
        payload = json.loads(req.body)
    except ValueError:
        return None, [*problems, "body is not JSON"]
    if not isinstance(payload, dict):
        return payload, [*problems, "body is not a JSON object"]
    if kind == "discord":
        _check_discord(payload, problems)
    elif kind == "slack":
        _check_slack(payload, req.body, problems)
    elif kind == "mattermost":
        _check_mattermost(payload, problems)
    elif kind == "teams":
        _check_teams(payload, req.body, problems)
    elif kind == "generic":
        _check_generic(payload, req, secret, problems)
    return payload, problems


class Receiver:
    """``with Receiver("discord") as r: ... r.url ... r.received``."""

    def __init__(
        self,
        kind: str,
        *,
        secret: str | None = None,
        rate: tuple[int, float] | None = None,
        clock: Callable[[], datetime] | None = None,
        path: str = TOKEN_PATH,
        host: str = "127.0.0.1",
        on_receive: Callable[[Received], None] | None = None,
    ) -> None:
        self.kind = kind
        self.secret = secret
        self.rate = rate
        self.clock = clock
        self.path = path
        self.on_receive = on_receive
        self.received: list[Received] = []
        self.script: deque[Reply] = deque()
        self.default = SUCCESS.get(kind, Reply(200))
        self._window: deque[float] = deque()
        self._lock = threading.Lock()
        self.server = _Server((host, 0), _handler(self))
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self.server.serve_forever(poll_interval=0.02)  # stops promptly at teardown

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def reply(self, *replies: Reply) -> None:
        """Answer the next requests with *replies*, in order, then with the default."""
        with self._lock:
            self.script.extend(replies)

    def _now(self) -> float:
        return self.clock().timestamp() if self.clock else time.monotonic()

    def _over_rate(self) -> float | None:
        """Seconds until the window frees up when this request is over the rate."""
        if self.rate is None:
            return None
        limit, per = self.rate
        now = self._now()
        while self._window and self._window[0] <= now - per:
            self._window.popleft()
        if len(self._window) >= limit:
            return self._window[0] + per - now
        self._window.append(now)
        return None

    def handle(self, req: Request) -> Reply:
        payload, problems = check(self.kind, req, self.secret)
        with self._lock:
            over = self._over_rate()
            reply = self.script.popleft() if self.script and over is None else self.default
        if over is not None:
            wait = round(over, 3)
            body = json.dumps({"message": "You are being rate limited.", "retry_after": wait})
            reply = Reply(
                429,
                body.encode(),
                {"Retry-After": str(int(wait) + 1), "X-RateLimit-Reset-After": str(wait)},
            )
        got = Received(req.headers, req.body, payload, reply.status, tuple(problems))
        with self._lock:
            self.received.append(got)
        if self.on_receive is not None:
            self.on_receive(got)
        if reply.hold is not None:
            reply.hold.wait(timeout=10)
        if reply.delay:
            time.sleep(reply.delay)
        return reply

    # --- helpers for assertions --------------------------------------------------------

    @property
    def problems(self) -> list[str]:
        return [p for r in self.received for p in r.problems]

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.received]

    def accepted(self) -> Iterator[Received]:
        return (r for r in self.received if 200 <= r.status < 300)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            holds = [r.hold for r in self.script if r.hold is not None]
        for hold in holds:
            hold.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a worker that timed out or was killed hangs up early: expected


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = receiver.handle(Request(self.command, self.path, headers, body))
            try:
                self.send_response(reply.status)
                self.send_header("Content-Length", str(len(reply.body)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(reply.body)
            except OSError:
                self.close_connection = True

        do_GET = do_PUT = do_POST  # noqa: N815

    return Handler


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll *condition* (for subprocess tests, where no fake clock reaches the worker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
