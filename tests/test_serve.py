"""Serving published feeds over HTTP from a real waitress server on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.client
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from wsgiref.types import StartResponse, WSGIEnvironment
from wsgiref.util import setup_testing_defaults

import pytest
import requests
from lxml import etree

from feedbot.publish.atom import render_atom
from feedbot.publish.files import write_if_changed
from feedbot.publish.jsonfeed import render_json
from feedbot.publish.rss import render_rss
from feedbot.web.feeds_app import accepts_gzip, discovery_links, make_feeds_app
from feedbot.web.server import Server, serve
from tests.test_publish import make_articles, make_spec

SECRET = b"<feed>outside the feeds directory</feed>"
HUB = "http://127.0.0.1:9/hub"


@dataclass(frozen=True)
class Served:
    server: Server
    session: requests.Session
    feeds_dir: Path

    def url(self, path: str) -> str:
        return self.server.url + path

    def raw(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """Send *path* exactly as written (no client-side normalisation)."""
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=10)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for key, value in (headers or {}).items():
                conn.putheader(key, value)
            conn.endheaders()
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def _health(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The app paths the feeds app does not handle go to (as the daemon's /healthz)."""
    if environ["PATH_INFO"] == "/healthz":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"ok\n"]
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "6")])
    return [b"extra\n"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("serve")
    feeds = base / "feeds"
    spec, articles = make_spec(hub_url=HUB), make_articles()
    write_if_changed(feeds / "alibaba.atom", render_atom(spec, articles))
    write_if_changed(feeds / "alibaba.rss", render_rss(spec, articles))
    write_if_changed(feeds / "alibaba.json", render_json(spec, articles))
    other = make_spec(
        name="cloud", title="Cloud digest", self_url="http://127.0.0.1:8080/cloud.atom"
    )
    write_if_changed(feeds / "cloud.atom", render_atom(other, articles[:1]))
    (base / "secret.atom").write_bytes(SECRET)
    (feeds / "leak.atom").symlink_to(base / "secret.atom")
    (feeds / "notes.txt").write_text("not a feed")

    server = serve(make_feeds_app(feeds, extra=_health), port=0)
    thread = threading.Thread(target=server.run, name="test-serve", daemon=True)
    thread.start()
    session = requests.Session()
    try:
        yield Served(server, session, feeds)
    finally:
        session.close()
        server.close()
        thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/alibaba.atom", "application/atom+xml; charset=utf-8"),
        ("/alibaba.rss", "application/rss+xml; charset=utf-8"),
        ("/alibaba.json", "application/feed+json; charset=utf-8"),
        ("/feed.xsl", "text/xsl; charset=utf-8"),
        ("/", "text/html; charset=utf-8"),
    ],
)
def test_get(served: Served, path: str, content_type: str) -> None:
    response = served.session.get(served.url(path), headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["ETag"].startswith('"')
    assert "Last-Modified" in response.headers
    assert "Content-Encoding" not in response.headers
    if path.startswith("/alibaba"):
        assert response.content == (served.feeds_dir / path[1:]).read_bytes()


@pytest.mark.parametrize("suffix", [".atom", ".rss", ".json"])
def test_websub_link_headers(served: Served, suffix: str) -> None:
    response = served.session.get(served.url("/alibaba" + suffix))
    assert response.links["hub"]["url"] == HUB
    assert response.links["self"]["url"] == f"http://127.0.0.1:8080/alibaba{suffix}"
    assert response.headers["Link"].count('rel="self"') == 1


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_conditional_get(served: Served, encoding: str) -> None:
    url = served.url("/alibaba.atom")
    first = served.session.get(url, headers={"Accept-Encoding": encoding})
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", W/{etag}'},
        {"If-Modified-Since": modified},
    ):
        again = served.session.get(url, headers={"Accept-Encoding": encoding, **headers})
        assert again.status_code == 304, headers
        assert again.content == b""
        assert again.headers["ETag"] == etag
    stale = served.session.get(url, headers={"Accept-Encoding": encoding, "If-None-Match": '"x"'})
    assert stale.status_code == 200
    old = served.session.get(
        url,
        headers={"Accept-Encoding": encoding, "If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"},
    )
    assert old.status_code == 200


def test_gzip(served: Served) -> None:
    data = (served.feeds_dir / "alibaba.atom").read_bytes()
    plain = served.session.get(served.url("/alibaba.atom"), headers={"Accept-Encoding": "identity"})
    status, body = served.raw("GET", "/alibaba.atom", {"Accept-Encoding": "gzip, deflate"})
    assert status == 200
    assert gzip.decompress(body) == data
    zipped = served.session.get(served.url("/alibaba.atom"), headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Vary"] == "Accept-Encoding"
    assert zipped.content == data  # requests decodes it
    assert zipped.headers["ETag"] != plain.headers["ETag"]
    refused = served.session.get(
        served.url("/alibaba.atom"), headers={"Accept-Encoding": "gzip;q=0, br"}
    )
    assert "Content-Encoding" not in refused.headers


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("", False),
        ("identity", False),
        ("gzip;q=0", False),
        ("*;q=0", False),
        ("gzip;q=0, *", False),
        ("br;q=1, *;q=0.1", True),
    ],
)
def test_accepts_gzip(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_head(served: Served) -> None:
    size = (served.feeds_dir / "alibaba.atom").stat().st_size
    response = served.session.head(
        served.url("/alibaba.atom"), headers={"Accept-Encoding": "identity"}
    )
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(size)
    assert response.content == b""
    missing = served.session.head(served.url("/missing.atom"))
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/missing.atom", 404),
        ("GET", "/notes.txt", 404),
        ("GET", "/alibaba.xml", 404),
        ("GET", "/Alibaba.atom", 404),
        ("GET", "/leak.atom", 404),  # a symlink to a file outside the directory
        ("POST", "/alibaba.atom", 405),
        ("DELETE", "/", 405),
        ("GET", "/healthz", 200),  # passed on to the extra app
    ],
)
def test_status(served: Served, method: str, path: str, status: int) -> None:
    response = served.session.request(method, served.url(path))
    assert response.status_code == status
    if status == 405:
        assert response.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.atom",
        "/%2e%2e/secret.atom",
        "/%2E%2E%2Fsecret.atom",
        "/..%2fsecret.atom",
        "/./../secret.atom",
        "/feeds/../../secret.atom",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/..\\secret.atom",
        "/alibaba.atom/../../secret.atom",
    ],
)
def test_no_path_traversal(served: Served, path: str) -> None:
    status, body = served.raw("GET", path)
    assert status == 404
    assert SECRET not in body
    assert b"root:" not in body


def test_index_lists_the_feeds(served: Served) -> None:
    page = served.session.get(served.url("/")).text
    assert "Alibaba watch" in page
    assert "Cloud digest" in page
    for name in ("alibaba.atom", "alibaba.rss", "alibaba.json", "cloud.atom"):
        assert f'href="{name}"' in page
    assert "leak" not in page
    assert "notes" not in page
    assert '<link rel="alternate" type="application/atom+xml" href="alibaba.atom">' in page


def test_stylesheet_renders_the_feed(served: Served) -> None:
    feed = served.session.get(served.url("/alibaba.atom")).content
    assert b'<?xml-stylesheet type="text/xsl" href="/feed.xsl"?>' in feed
    sheet = served.session.get(served.url("/feed.xsl"))
    assert sheet.headers["Content-Type"].startswith("text/xsl")
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    transform = etree.XSLT(etree.fromstring(sheet.content, parser))
    page = str(transform(etree.fromstring(feed, parser)))
    assert page.startswith("<!DOCTYPE html>")
    for article in make_articles():
        assert article.title.strip() in page
    assert 'href="https://tech.example.fr/a/9"' in page  # another report of the same story
    assert 'lang="fr"' in page


def test_server_close_is_idempotent_and_unstarted_servers_close() -> None:
    server = serve(make_feeds_app(Path("/nonexistent")), port=0)
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"
    server.close()
    server.close()
    server.run()  # returns at once: the server is closed


def test_a_rewritten_feed_is_served_fresh(served: Served) -> None:
    path = served.feeds_dir / "fresh.atom"
    spec = make_spec(name="fresh", self_url="http://127.0.0.1:8080/fresh.atom")
    write_if_changed(path, render_atom(spec, make_articles()[:1]))
    first = served.session.get(served.url("/fresh.atom"))
    write_if_changed(path, render_atom(spec, make_articles()[:2]))
    second = served.session.get(
        served.url("/fresh.atom"), headers={"If-None-Match": first.headers["ETag"]}
    )
    assert second.status_code == 200
    assert second.content == path.read_bytes()
    assert second.headers["ETag"] != first.headers["ETag"]


@pytest.mark.parametrize(
    "path_info",
    [
        "/../secret.atom",
        "/leak.atom",
        "/./alibaba.atom",
        "/alibaba.atom/",
        "/a/../alibaba.atom",
        "",
    ],
)
def test_feeds_app_alone_refuses(served: Served, path_info: str) -> None:
    """Without an extra app, anything but an exact feed name is a 404 from the feeds app."""
    app = make_feeds_app(served.feeds_dir)
    environ: dict[str, object] = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = path_info
    statuses: list[str] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> object:
        statuses.append(status)
        return None

    body = b"".join(app(environ, start_response))  # type: ignore[arg-type]
    expected = "200 OK" if path_info == "" else "404 Not Found"  # "" is the index
    assert statuses == [expected]
    assert SECRET not in body


@pytest.mark.parametrize(
    ("body", "suffix", "expected"),
    [
        (
            b'<feed xmlns="http://www.w3.org/2005/Atom"><link rel="self" href="http://h/a.atom"/>'
            b'<link rel="hub" href="http://h/hub"/><link rel="alternate" href="http://h/"/></feed>',
            ".atom",
            ('<http://h/hub>; rel="hub"', '<http://h/a.atom>; rel="self"'),
        ),
        (
            b'<feed xmlns="http://www.w3.org/2005/Atom">'
            b'<link rel="self" href="http://h/a&#10;Set-Cookie: x"/>'
            b'<link rel="hub" href="javascript:alert(1)"/></feed>',
            ".atom",
            (),
        ),
        (
            b'{"feed_url": "http://h/a.json", "hubs": [{"url": "http://h/hub"}]}',
            ".json",
            (
                '<http://h/hub>; rel="hub"',
                '<http://h/a.json>; rel="self"',
            ),
        ),
        (b"not a feed", ".json", ()),
        (b"<rss", ".rss", ()),
    ],
)
def test_discovery_links(body: bytes, suffix: str, expected: tuple[str, ...]) -> None:
    assert discovery_links(body, suffix) == expected
