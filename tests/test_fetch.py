"""The fetch stage against real loopback HTTP servers, plus its pure helpers on bytes."""

from __future__ import annotations

import gzip
import hashlib
import resource
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from feedbot import USER_AGENT
from feedbot.errors import FetchError
from feedbot.poll.fetch import (
    Fetcher,
    FetchLimits,
    FetchOutcome,
    FetchRequest,
    describe_non_feed,
    environment_ca_bundle,
    environment_used,
)
from feedbot.poll.http_limits import BodyDecoder, cache_max_age, parse_retry_after
from tests.loopback import LoopbackServer, Request, Response

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=10)
MAX_BYTES = 64 * 1024

ATOM = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<feed xmlns="http://www.w3.org/2005/Atom"><title>Loopback news</title>'
    b"<id>urn:test:loopback</id><updated>2024-05-01T00:00:00Z</updated></feed>"
)
HTML = b"<!DOCTYPE html>\n<html><head><title>Our blog</title></head><body>Hi</body></html>"
CHALLENGE = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    b"<body>Checking your browser.</body></html>"
)
XML = {"Content-Type": "application/atom+xml"}


def feed_with_validators(req: Request) -> Response:
    headers = {**XML, "ETag": '"v1"', "Last-Modified": "Wed, 01 May 2024 10:00:00 GMT"}
    if req.headers.get("if-none-match") == '"v1"':
        return Response(304, b"", {"ETag": '"v1"'})
    return Response(200, ATOM, {**headers, "Cache-Control": "public, max-age=900"})


def redirect(status: int, to: str) -> Response:
    return Response(status, b"", {"Location": to})


def drip(req: Request) -> Response:
    def chunks() -> Iterator[bytes]:
        for _ in range(30):  # ends by itself even if nobody hangs up
            yield b"<"
            time.sleep(0.3)

    return Response(200, chunks(), XML)


def stall(req: Request) -> Response:
    def chunks() -> Iterator[bytes]:
        yield b"<"
        time.sleep(0.6)
        yield b"<"
        time.sleep(1.0)
        yield b"<"

    return Response(200, chunks(), XML)


def slow_headers(req: Request) -> Response:
    time.sleep(1.2)
    return Response(200, ATOM, XML)


def gzip_bomb() -> bytes:
    """A valid gzip stream of 1 GiB of zeros (about 1 MB), built without 1 GiB in memory.

    After a full flush the compressor emits the same bytes for the same input, so one
    compressed MiB is repeated; the trailer carries the CRC and size of the whole GiB.
    """
    mib = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = comp.compress(mib) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(mib) + comp.flush(zlib.Z_FULL_FLUSH)
    end = comp.flush()[:-8]
    crc = 0
    for _ in range(1024):
        crc = zlib.crc32(mib, crc)
    return first + block * 1023 + end + struct.pack("<II", crc, (1 << 30) & 0xFFFFFFFF)


def deflate_raw(data: bytes) -> bytes:
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    return comp.compress(data) + comp.flush()


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    bomb = gzip_bomb()
    with LoopbackServer() as srv:
        routes = {
            "/feed.xml": feed_with_validators,
            "/plain.xml": lambda r: Response(200, ATOM, XML),
            "/p1": lambda r: redirect(301, "/p2"),
            "/p2": lambda r: redirect(308, srv.url("/plain.xml")),
            "/t1": lambda r: redirect(302, "/plain.xml"),
            "/m1": lambda r: redirect(301, "/t1"),
            "/t307": lambda r: redirect(307, "/p1"),
            "/loop-a": lambda r: redirect(301, "/loop-b"),
            "/loop-b": lambda r: redirect(302, "/loop-a"),
            "/ftp-redirect": lambda r: redirect(301, "ftp://example.org/feed"),
            "/gone": lambda r: Response(410, b"gone"),
            "/r429-seconds": lambda r: Response(429, b"slow down", {"Retry-After": "120"}),
            "/r429-date": lambda r: Response(
                429, b"", {"Retry-After": format_datetime(LATER, usegmt=True)}
            ),
            "/r503-seconds": lambda r: Response(503, b"busy", {"Retry-After": "120"}),
            "/r503-date": lambda r: Response(
                503, b"", {"Retry-After": format_datetime(LATER, usegmt=True)}
            ),
            "/r503-bare": lambda r: Response(503, b"busy"),
            "/e500": lambda r: Response(500, b"oops"),
            "/e404": lambda r: Response(404, b"no such feed"),
            "/drip": drip,
            "/stall": stall,
            "/slow-headers": slow_headers,
            "/big": lambda r: Response(200, b"x" * (MAX_BYTES + 1), XML),
            "/big-stream": lambda r: Response(200, iter([b"<" * 8192] * 9), XML),
            "/bomb": lambda r: Response(200, bomb, {**XML, "Content-Encoding": "gzip"}),
            "/gzip": lambda r: Response(200, gzip.compress(ATOM), {"Content-Encoding": "gzip"}),
            "/deflate": lambda r: Response(
                200, zlib.compress(ATOM), {"Content-Encoding": "deflate"}
            ),
            "/raw-deflate": lambda r: Response(
                200, deflate_raw(ATOM), {"Content-Encoding": "deflate"}
            ),
            "/brotli": lambda r: Response(200, b"\x0b\x02\x80", {"Content-Encoding": "br"}),
            "/html": lambda r: Response(200, HTML, {"Content-Type": "text/html; charset=utf-8"}),
            "/xhtml-as-xml": lambda r: Response(200, HTML, {"Content-Type": "application/xml"}),
            "/feed-as-html": lambda r: Response(200, ATOM, {"Content-Type": "text/html"}),
            "/cf-header": lambda r: Response(
                403, b"<html></html>", {"Content-Type": "text/html", "cf-mitigated": "challenge"}
            ),
            "/cf-title": lambda r: Response(503, CHALLENGE, {"Content-Type": "text/html"}),
        }
        for path, handler in routes.items():
            srv.route(path, handler)
        yield srv


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    limits = FetchLimits(connect_timeout=2, read_timeout=5, deadline=5, max_bytes=MAX_BYTES)
    with Fetcher(limits, pool_size=4, trust_env=False) as f:
        yield f


def test_ok_stores_validators_hash_and_cache_hint(server: LoopbackServer, fetcher: Fetcher) -> None:
    res = fetcher.fetch(FetchRequest(server.url("/feed.xml")), NOW)
    assert res.outcome is FetchOutcome.OK
    assert res.succeeded
    assert (res.status, res.body, res.etag) == (200, ATOM, '"v1"')
    assert res.last_modified == "Wed, 01 May 2024 10:00:00 GMT"
    assert res.body_hash == hashlib.sha256(ATOM).hexdigest()
    assert res.cache_max_age == 900.0
    assert (res.final_url, res.permanent_url) == (res.request_url, None)
    assert res.headers["content-type"] == "application/atom+xml"
    with pytest.raises(TypeError):
        res.headers["x"] = "y"  # type: ignore[index]
    sent = server.requests[-1].headers
    assert sent["user-agent"] == USER_AGENT
    assert sent["accept-encoding"] == "gzip, deflate"
    assert sent["accept"].startswith("application/atom+xml")


def test_the_sessions_headers_and_cookies_go_with_every_request(server: LoopbackServer) -> None:
    """The request is prepared without ``Session.request`` (see ``Fetcher._get``): the
    session's own headers, a feed's extra headers over them, and the cookies an upstream
    set all still reach it."""
    server.route("/set-cookie", lambda r: Response(200, ATOM, {**XML, "Set-Cookie": "s=1; Path=/"}))
    with Fetcher(FetchLimits(deadline=5), trust_env=False) as f:
        f.fetch(FetchRequest(server.url("/set-cookie")), NOW)
        extra = (("Accept", "application/rss+xml"), ("X-Trace", "t2"))
        res = f.fetch(FetchRequest(server.url("/plain.xml"), headers=extra), NOW)
    assert res.outcome is FetchOutcome.OK
    sent = server.requests[-1].headers
    assert (sent["cookie"], sent["x-trace"], sent["accept"]) == ("s=1", "t2", "application/rss+xml")
    assert (sent["user-agent"], sent["accept-encoding"]) == (USER_AGENT, "gzip, deflate")


def test_conditional_get_gives_not_modified(server: LoopbackServer, fetcher: Fetcher) -> None:
    first = fetcher.fetch(FetchRequest(server.url("/feed.xml")), NOW)
    req = FetchRequest(
        first.request_url,
        etag=first.etag,
        last_modified=first.last_modified,
        headers=(("X-Trace", "t1"),),
    )
    res = fetcher.fetch(req, NOW)
    assert (res.outcome, res.status, res.body) == (FetchOutcome.NOT_MODIFIED, 304, None)
    assert (res.etag, res.last_modified) == ('"v1"', "Wed, 01 May 2024 10:00:00 GMT")
    sent = server.requests[-1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Wed, 01 May 2024 10:00:00 GMT"
    assert sent["x-trace"] == "t1"


def test_kept_alive_connection_serves_every_poll(server: LoopbackServer, fetcher: Fetcher) -> None:
    """A body read to its end and a 304 (which has none) hand their connection back to
    the pool; an error page read only in part does not (its connection is closed)."""
    first = fetcher.fetch(FetchRequest(server.url("/feed.xml")), NOW)
    again = FetchRequest(first.request_url, etag=first.etag)
    outcomes = [fetcher.fetch(again, NOW).outcome for _ in range(3)]
    assert outcomes == [FetchOutcome.NOT_MODIFIED] * 3
    peers = {r.peer for r in server.requests[-4:]}
    assert len(peers) == 1  # one TCP connection for all four polls
    big = b"<html><body>" + b"<p>oops</p>" * 20_000 + b"</body></html>"  # > the sniffed head
    server.route("/big-error", lambda _: Response(500, big, {"Content-Type": "text/html"}))
    assert fetcher.fetch(FetchRequest(server.url("/big-error")), NOW).status == 500
    assert server.requests[-1].peer in peers  # the pooled connection, then closed
    fetcher.fetch(again, NOW)
    assert server.requests[-1].peer not in peers


def test_same_body_hash_gives_unchanged(server: LoopbackServer, fetcher: Fetcher) -> None:
    first = fetcher.fetch(FetchRequest(server.url("/plain.xml")), NOW)
    res = fetcher.fetch(FetchRequest(first.request_url, last_body_hash=first.body_hash), NOW)
    assert res.outcome is FetchOutcome.UNCHANGED
    assert (res.body, res.body_hash) == (None, first.body_hash)


@pytest.mark.parametrize(
    ("path", "permanent"),
    [
        ("/p1", "/plain.xml"),  # 301 -> 308 -> feed: permanent
        ("/t1", None),  # 302
        ("/m1", None),  # 301 -> 302
        ("/t307", None),  # 307 -> 301 -> 308
    ],
)
def test_redirect_chains(
    server: LoopbackServer, fetcher: Fetcher, path: str, permanent: str | None
) -> None:
    res = fetcher.fetch(FetchRequest(server.url(path)), NOW)
    assert (res.outcome, res.body) == (FetchOutcome.OK, ATOM)
    assert res.final_url == server.url("/plain.xml")
    assert res.permanent_url == (server.url(permanent) if permanent else None)


@pytest.mark.parametrize(
    ("path", "max_redirects", "outcome", "reason"),
    [
        ("/loop-a", 5, FetchOutcome.REDIRECT_LOOP, "redirect loop back to"),
        ("/p1", 1, FetchOutcome.REDIRECT_LOOP, "more than 1 redirects"),
        ("/ftp-redirect", 5, FetchOutcome.BAD_URL, "redirected to not an http(s) URL"),
    ],
)
def test_redirect_failures(
    server: LoopbackServer, path: str, max_redirects: int, outcome: FetchOutcome, reason: str
) -> None:
    with Fetcher(FetchLimits(deadline=5, max_redirects=max_redirects), trust_env=False) as f:
        res = f.fetch(FetchRequest(server.url(path)), NOW)
    assert res.outcome is outcome
    assert reason in (res.error or "")
    assert (res.body, res.permanent_url) == (None, None)


@pytest.mark.parametrize(
    ("path", "outcome", "status", "retry_after"),
    [
        ("/gone", FetchOutcome.GONE, 410, None),
        ("/r429-seconds", FetchOutcome.RETRY_LATER, 429, NOW + timedelta(seconds=120)),
        ("/r429-date", FetchOutcome.RETRY_LATER, 429, LATER),
        ("/r503-seconds", FetchOutcome.RETRY_LATER, 503, NOW + timedelta(seconds=120)),
        ("/r503-date", FetchOutcome.RETRY_LATER, 503, LATER),
        ("/r503-bare", FetchOutcome.RETRY_LATER, 503, None),
        ("/e500", FetchOutcome.SERVER_ERROR, 500, None),
        ("/e404", FetchOutcome.CLIENT_ERROR, 404, None),
    ],
)
def test_status_outcomes(
    server: LoopbackServer,
    fetcher: Fetcher,
    path: str,
    outcome: FetchOutcome,
    status: int,
    retry_after: datetime | None,
) -> None:
    res = fetcher.fetch(FetchRequest(server.url(path)), NOW)
    assert (res.outcome, res.status, res.retry_after) == (outcome, status, retry_after)
    assert (res.body, res.succeeded) == (None, False)
    assert (res.error or "").startswith(f"HTTP {status}")


def test_slow_drip_is_cut_at_the_deadline(server: LoopbackServer) -> None:
    limits = FetchLimits(connect_timeout=1, read_timeout=10, deadline=1.5)
    with Fetcher(limits, trust_env=False) as f:
        res = f.fetch(FetchRequest(server.url("/drip")), NOW)
    assert res.outcome is FetchOutcome.TIMEOUT
    assert res.error == "read timed out after 1.5 s deadline"
    assert res.elapsed < 1.5 + 1.0


def test_socket_wait_is_bounded_by_the_remaining_time(server: LoopbackServer) -> None:
    # The second byte comes at 0.6 s, then 1.0 s of silence: a socket timeout left at the
    # 1.0 s set when the request was sent would hold the call until 1.6 s.
    limits = FetchLimits(connect_timeout=1, read_timeout=10, deadline=1.0)
    with Fetcher(limits, trust_env=False) as f:
        res = f.fetch(FetchRequest(server.url("/stall")), NOW)
    assert res.outcome is FetchOutcome.TIMEOUT
    assert res.error == "read timed out after 1.0 s deadline"
    assert res.elapsed < 1.0 + 0.3


def test_slow_headers_time_out(server: LoopbackServer) -> None:
    limits = FetchLimits(connect_timeout=1, read_timeout=10, deadline=0.5)
    with Fetcher(limits, trust_env=False) as f:
        res = f.fetch(FetchRequest(server.url("/slow-headers")), NOW)
    assert res.outcome is FetchOutcome.TIMEOUT
    assert res.status is None
    assert res.elapsed < 0.5 + 1.0


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/big", f"body exceeds {MAX_BYTES} bytes (Content-Length {MAX_BYTES + 1})"),
        ("/big-stream", f"body exceeds {MAX_BYTES} bytes after decompression"),
    ],
)
def test_oversize_body(server: LoopbackServer, fetcher: Fetcher, path: str, reason: str) -> None:
    res = fetcher.fetch(FetchRequest(server.url(path)), NOW)
    assert (res.outcome, res.status, res.error, res.body) == (
        FetchOutcome.TOO_LARGE,
        200,
        reason,
        None,
    )


def test_gzip_bomb_is_refused_in_bounded_memory(server: LoopbackServer) -> None:
    limits = FetchLimits(deadline=10)  # default max_bytes: 10 MiB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with Fetcher(limits, trust_env=False) as f:
        res = f.fetch(FetchRequest(server.url("/bomb")), NOW)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert res.outcome is FetchOutcome.TOO_LARGE
    assert res.error == f"body exceeds {10 * 1024 * 1024} bytes after decompression"
    assert grown_mib < 128


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/raw-deflate"])
def test_compressed_bodies_are_decoded(server: LoopbackServer, fetcher: Fetcher, path: str) -> None:
    res = fetcher.fetch(FetchRequest(server.url(path)), NOW)
    assert (res.outcome, res.body) == (FetchOutcome.OK, ATOM)


def test_unrequested_encoding_is_a_server_error(server: LoopbackServer, fetcher: Fetcher) -> None:
    res = fetcher.fetch(FetchRequest(server.url("/brotli")), NOW)
    assert res.outcome is FetchOutcome.SERVER_ERROR
    assert res.error == "unsupported Content-Encoding 'br'"


@pytest.mark.parametrize(
    ("path", "outcome", "reason"),
    [
        ("/html", FetchOutcome.NOT_A_FEED, "expected a feed, got an HTML page"),
        ("/xhtml-as-xml", FetchOutcome.NOT_A_FEED, "expected a feed, got an HTML page"),
        ("/feed-as-html", FetchOutcome.OK, None),
        (
            "/cf-header",
            FetchOutcome.NOT_A_FEED,
            "expected a feed, got a bot challenge page (Cloudflare) (HTTP 403 Forbidden)",
        ),
        (
            "/cf-title",
            FetchOutcome.NOT_A_FEED,
            "expected a feed, got a bot challenge page (Cloudflare) (HTTP 503 Service Unavailable)",
        ),
    ],
)
def test_pages_that_are_not_feeds(
    server: LoopbackServer,
    fetcher: Fetcher,
    path: str,
    outcome: FetchOutcome,
    reason: str | None,
) -> None:
    res = fetcher.fetch(FetchRequest(server.url(path)), NOW)
    assert (res.outcome, res.error) == (outcome, reason)
    assert (res.body is None) == (outcome is not FetchOutcome.OK)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.org/feed.xml", "not an http(s) URL: 'ftp://example.org/feed.xml'"),
        ("feed.xml", "not an http(s) URL: 'feed.xml'"),
        ("http:///feed.xml", "URL has no host: 'http:///feed.xml'"),
    ],
)
def test_bad_urls(fetcher: Fetcher, url: str, reason: str) -> None:
    res = fetcher.fetch(FetchRequest(url), NOW)
    assert (res.outcome, res.error, res.status) == (FetchOutcome.BAD_URL, reason, None)


def test_connection_refused(fetcher: Fetcher) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    res = fetcher.fetch(FetchRequest(f"http://127.0.0.1:{port}/feed.xml"), NOW)
    assert res.outcome is FetchOutcome.CONNECTION_ERROR
    assert res.error == "could not connect: connection refused"


# --- pure helpers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", NOW),
        ("120", NOW + timedelta(seconds=120)),
        (" 30 ", NOW + timedelta(seconds=30)),
        ("99999999999999", NOW + timedelta(days=7)),  # capped at a week
        ("Wed, 01 May 2024 12:10:00 GMT", LATER),
        ("Wednesday, 01-May-24 12:10:00 GMT", LATER),  # obsolete RFC 850 form
        ("Wed, 01 May 2024 11:00:00 GMT", NOW),  # in the past
        ("soon", None),
        ("-5", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: datetime | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"cache-control": "max-age=300"}, 300.0),
        ({"cache-control": "public, max-age=300", "age": "100"}, 200.0),
        ({"cache-control": "s-maxage=50, max-age=60"}, 60.0),
        ({"cache-control": "no-cache, max-age=300"}, None),
        ({"expires": "Wed, 01 May 2024 12:10:00 GMT"}, 600.0),
        (
            {"expires": "Wed, 01 May 2024 12:10:00 GMT", "date": "Wed, 01 May 2024 12:05:00 GMT"},
            300.0,
        ),
        ({"expires": "0"}, 0.0),
        ({"cache-control": "max-age=60", "expires": "Wed, 01 May 2024 13:00:00 GMT"}, 60.0),
    ],
)
def test_cache_max_age(headers: dict[str, str], expected: float | None) -> None:
    assert cache_max_age(headers, NOW) == expected


@pytest.mark.parametrize(
    ("headers", "head", "success", "expected"),
    [
        ({"content-type": "text/html"}, HTML, True, "an HTML page"),
        ({"content-type": "text/html"}, HTML, False, None),
        ({"content-type": "application/xml"}, b"\xef\xbb\xbf  " + HTML, True, "an HTML page"),
        ({}, b"<!-- hi --><html lang='fr'>", True, "an HTML page"),
        ({"content-type": "text/html"}, ATOM, True, None),
        ({"content-type": "text/html"}, b'<?xml version="1.0"?><rdf:RDF>', True, None),
        ({"content-type": "text/html"}, b'<!DOCTYPE rss SYSTEM "x"><rss>', True, None),
        ({"content-type": "text/html"}, b'{"version": "https://jsonfeed.org"}', True, None),
        ({"content-type": "text/html"}, "<rss/>".encode("utf-16"), True, None),
        ({"content-type": "application/xml"}, b"", True, None),
        ({"content-type": "text/html"}, CHALLENGE, False, "a bot challenge page (Cloudflare)"),
        ({"cf-mitigated": "challenge"}, b"", False, "a bot challenge page (Cloudflare)"),
        (
            {"content-type": "text/html"},
            b"<html><title>DDoS-Guard</title>",
            True,
            "a bot challenge page (DDoS-Guard)",
        ),
        (
            {"content-type": "text/html"},
            b"<html><title>Making sure you&#39;re not a bot!</title>",
            True,
            "a bot challenge page (Anubis)",
        ),
        ({"content-type": "application/atom+xml"}, b"<feed>cf-chl- in a post</feed>", True, None),
    ],
)
def test_describe_non_feed(
    headers: dict[str, str], head: bytes, success: bool, expected: str | None
) -> None:
    assert describe_non_feed(headers, head, success=success) == expected


def test_decoder_handles_concatenated_gzip_members() -> None:
    decoder = BodyDecoder("gzip", 1000, "http://x.test/")
    data = gzip.compress(b"one ") + gzip.compress(b"two")
    out = b"".join(decoder.feed(data[i : i + 7]) for i in range(0, len(data), 7))
    decoder.finish()
    assert out == b"one two"


@pytest.mark.parametrize(
    ("encoding", "data", "limit", "kind", "message"),
    [
        ("gzip", gzip.compress(ATOM)[:-12], 1000, "server_error", "compressed body is truncated"),
        ("gzip", b"\x1f\x8bnot really gzip", 1000, "server_error", "invalid compressed body"),
        ("deflate", b"\xff\xff\xff\xff", 1000, "server_error", "invalid compressed body"),
        ("identity", b"x" * 11, 10, "too_large", "body exceeds 10 bytes after decompression"),
        ("gzip", gzip.compress(ATOM), 10, "too_large", "body exceeds 10 bytes after decompression"),
        ("zstd", b"", 1000, "server_error", "unsupported Content-Encoding 'zstd'"),
    ],
)
def test_decoder_failures(encoding: str, data: bytes, limit: int, kind: str, message: str) -> None:
    def decode() -> None:
        decoder = BodyDecoder(encoding, limit, "http://x.test/")
        decoder.feed(data)
        decoder.finish()

    with pytest.raises(FetchError) as info:
        decode()
    assert (info.value.kind, info.value.resource) == (kind, "http://x.test/")
    assert info.value.message.startswith(message)


def _no_environment(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))


def test_environment_is_looked_up_only_where_it_holds_something(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_environment(monkeypatch, tmp_path)
    assert environment_used() is False
    with Fetcher() as f:
        assert f._session.trust_env is False
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert environment_used() is True
    monkeypatch.delenv("HTTPS_PROXY")
    (tmp_path / ".netrc").write_text("machine feeds.example login bot password x\n")
    assert environment_used() is True


def test_a_ca_bundle_from_the_environment_is_set_once_on_the_session(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A CA bundle alone does not make requests read the environment on every request;
    the bundle is still the one that verifies TLS."""
    _no_environment(monkeypatch, tmp_path)
    missing = str(tmp_path / "no-such-bundle.pem")
    monkeypatch.setenv("CURL_CA_BUNDLE", missing)
    assert environment_used() is False
    assert environment_ca_bundle() == missing
    with LoopbackServer() as server, Fetcher(FetchLimits(deadline=5)) as f:
        assert (f._session.trust_env, f._session.verify) == (False, missing)
        res = f.fetch(FetchRequest(server.url("/feed").replace("http:", "https:")), NOW)
    assert res.outcome is FetchOutcome.CONNECTION_ERROR, res
    assert res.error is not None
    assert res.error.startswith("TLS setup failed: Could not find a suitable TLS CA certificate")
    assert missing in res.error


def test_a_proxy_from_the_environment_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_environment(monkeypatch, tmp_path)
    url = "http://feeds.example.invalid/feed.xml"
    with LoopbackServer() as proxy:
        proxy.route(url, lambda r: Response(200, ATOM, {"Content-Type": "application/atom+xml"}))
        monkeypatch.setenv("http_proxy", proxy.url(""))
        with Fetcher(FetchLimits(deadline=5)) as f:
            res = f.fetch(FetchRequest(url), NOW)
    assert res.outcome is FetchOutcome.OK
    assert res.body == ATOM
    assert [r.path for r in proxy.requests] == [url]
