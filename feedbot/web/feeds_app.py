"""A WSGI app serving a directory of published feeds: validators, gzip, an index page.

Only names of the form ``/<name>.atom|.rss|.json`` (``[a-z0-9-]+``), ``/feed.xsl`` and
``/`` are served; each resolved file must stay inside its directory, so neither dot
segments (plain or percent-encoded) nor symlinks can reach other files.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from lxml import etree

from feedbot.clock import as_utc

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STYLESHEET = "feed.xsl"
CONTENT_TYPES = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
    ".xsl": "text/xsl; charset=utf-8",
}
GZIP_MIN_BYTES = 200
_FEED_NAME = re.compile(r"([a-z0-9-]+)(\.atom|\.rss|\.json)")
_ATOM_TITLE = "{http://www.w3.org/2005/Atom}title"
_ATOM_LINK = "{http://www.w3.org/2005/Atom}link"
_HEADER_SAFE_URL = re.compile(r"https?://[\x21-\x3b\x3d\x3f-\x7e]+")  # printable ASCII, no <>
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@dataclass(frozen=True, slots=True)
class _Variant:
    body: bytes
    etag: str
    encoding: str | None


@dataclass(frozen=True, slots=True)
class _Resource:
    identity: _Variant
    gzipped: _Variant | None
    content_type: str
    last_modified: int  # seconds since the epoch
    cache_control: str
    links: tuple[str, ...] = ()  # HTTP Link header values (WebSub discovery)


def _resource(
    body: bytes, content_type: str, mtime: float, cache_control: str, links: tuple[str, ...] = ()
) -> _Resource:
    digest = hashlib.sha256(body).hexdigest()[:32]
    gzipped = None
    if len(body) >= GZIP_MIN_BYTES:
        gzipped = _Variant(gzip.compress(body, mtime=0), f'"{digest}-gzip"', "gzip")
    return _Resource(
        _Variant(body, f'"{digest}"', None), gzipped, content_type, int(mtime), cache_control, links
    )


def discovery_links(body: bytes, suffix: str) -> tuple[str, ...]:
    """``Link`` header values for the hub and self URLs a feed document declares.

    WebSub (section 4) asks publishers to send them in HTTP headers as well as in the
    document; reading them from the document keeps both in agreement.
    """
    found: list[tuple[str, str]] = []
    try:
        if suffix == ".json":
            feed = json.loads(body)
            if isinstance(feed.get("feed_url"), str):
                found.append(("self", feed["feed_url"]))
            for hub in feed.get("hubs") or []:
                if isinstance(hub, dict) and isinstance(hub.get("url"), str):
                    found.append(("hub", hub["url"]))
        elif suffix in (".atom", ".rss"):
            root = etree.fromstring(body, _PARSER)
            parent = root if suffix == ".atom" else root.find("channel")
            for link in parent.iterfind(_ATOM_LINK) if parent is not None else []:
                rel, href = link.get("rel"), link.get("href")
                if rel in ("self", "hub") and href:
                    found.append((rel, href))
    except (ValueError, AttributeError, etree.LxmlError):
        logger.warning("cannot read the links of a %s document", suffix)
        return ()
    found = [(rel, href) for rel, href in found if _HEADER_SAFE_URL.fullmatch(href)]
    hubs = [f'<{href}>; rel="hub"' for rel, href in found if rel == "hub"]
    selves = [f'<{href}>; rel="self"' for rel, href in found if rel == "self"]
    return (*hubs, *selves[:1])  # exactly one rel=self


class _FileCache:
    """Resources by path, reused while the file's inode, mtime and size are unchanged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Path, tuple[tuple[int, int, int], _Resource]] = {}

    def load(self, path: Path, content_type: str, cache_control: str) -> _Resource:
        stat = path.stat()
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._entries.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        body = path.read_bytes()
        links = discovery_links(body, path.suffix)
        resource = _resource(body, content_type, stat.st_mtime, cache_control, links)
        with self._lock:
            self._entries[path] = (key, resource)
        return resource


def _inside(root: Path, name: str) -> Path | None:
    """``root/name`` resolved, when it is a regular file that stays inside *root*."""
    try:
        resolved = (root / name).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root) or not resolved.is_file():
        return None
    return resolved


def make_feeds_app(
    feeds_dir: Path,
    *,
    static_dir: Path | None = None,
    extra: WSGIApplication | None = None,
    max_age: int = 60,
) -> WSGIApplication:
    """A WSGI app serving the feeds in *feeds_dir*, ``/feed.xsl`` from *static_dir*
    (the packaged stylesheet by default) and an index at ``/``.

    GET and HEAD only (405 otherwise); other paths go to *extra* when given, else 404.
    """
    root = feeds_dir.resolve()
    static_root = (static_dir or STATIC_DIR).resolve()
    cache = _FileCache()
    feed_cache = f"public, max-age={max_age}"

    def load_file(directory: Path, name: str, cache_control: str) -> _Resource | None:
        path = _inside(directory, name)
        if path is None:
            return None
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type is None:
            return None
        try:
            return cache.load(path, content_type, cache_control)
        except FileNotFoundError:
            return None

    def route(path: str) -> Callable[[], _Resource | None] | None:
        if path == "/":
            return lambda: _index(root)
        if path == f"/{STYLESHEET}":
            return lambda: load_file(static_root, STYLESHEET, "public, max-age=3600")
        match = _FEED_NAME.fullmatch(path[1:]) if path.startswith("/") else None
        if match is not None:
            return lambda: load_file(root, match.group(0), feed_cache)
        return None

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        loader = route(environ.get("PATH_INFO") or "/")
        if loader is None:
            if extra is not None:
                return extra(environ, start_response)
            return _plain(start_response, method, "404 Not Found")
        if method not in ("GET", "HEAD"):
            return _plain(
                start_response, method, "405 Method Not Allowed", [("Allow", "GET, HEAD")]
            )
        try:
            resource = loader()
        except OSError:
            logger.warning("cannot read path=%s", environ.get("PATH_INFO"), exc_info=True)
            return _plain(start_response, method, "500 Internal Server Error")
        if resource is None:
            return _plain(start_response, method, "404 Not Found")
        return _respond(resource, environ, start_response)

    return app


def _respond(
    resource: _Resource, environ: WSGIEnvironment, start_response: StartResponse
) -> list[bytes]:
    variant = resource.identity
    if resource.gzipped is not None and accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", "")):
        variant = resource.gzipped
    headers = [
        ("ETag", variant.etag),
        ("Last-Modified", formatdate(resource.last_modified, usegmt=True)),
        ("Cache-Control", resource.cache_control),
        ("Vary", "Accept-Encoding"),
    ]
    if _not_modified(environ, variant.etag, resource.last_modified):
        start_response("304 Not Modified", headers)
        return []
    headers += [
        ("Content-Type", resource.content_type),
        ("Content-Length", str(len(variant.body))),
        ("X-Content-Type-Options", "nosniff"),
    ]
    if variant.encoding:
        headers.append(("Content-Encoding", variant.encoding))
    headers += [("Link", link) for link in resource.links]
    start_response("200 OK", headers)
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [variant.body]


def _not_modified(environ: WSGIEnvironment, etag: str, last_modified: int) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        tags = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
        return any(tag in ("*", etag) for tag in tags)
    if_modified_since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if not if_modified_since:
        return False
    try:
        since = as_utc(parsedate_to_datetime(if_modified_since))
    except (TypeError, ValueError, IndexError):
        return False
    return last_modified <= since.timestamp()


def accepts_gzip(header: str) -> bool:
    """True when an Accept-Encoding value allows gzip (``gzip``/``x-gzip``/``*``, q > 0)."""
    gzip_q: float | None = None
    star_q: float | None = None
    for part in header.split(","):
        coding, _, params = part.partition(";")
        coding = coding.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding in ("gzip", "x-gzip"):
            gzip_q = q if gzip_q is None else max(gzip_q, q)
        elif coding == "*":
            star_q = q
    if gzip_q is not None:
        return gzip_q > 0
    return star_q is not None and star_q > 0


def _plain(
    start_response: StartResponse,
    method: str,
    status: str,
    extra_headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = (status.split(" ", 1)[1].lower() + "\n").encode("ascii")
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("X-Content-Type-Options", "nosniff"),
        *(extra_headers or []),
    ]
    start_response(status, headers)
    return [] if method == "HEAD" else [body]


def _index(root: Path) -> _Resource:
    """An HTML page listing each feed in *root* with links to its formats."""
    formats: dict[str, list[str]] = {}
    if not root.is_dir():
        return _resource(_index_page({}, root), "text/html; charset=utf-8", 0, "no-cache")
    mtime = root.stat().st_mtime  # a removed feed changes the directory's mtime
    for path in sorted(root.iterdir()):
        match = _FEED_NAME.fullmatch(path.name)
        resolved = _inside(root, path.name) if match else None
        if match is None or resolved is None:
            continue
        formats.setdefault(match.group(1), []).append(match.group(2))
        mtime = max(mtime, resolved.stat().st_mtime)
    return _resource(_index_page(formats, root), "text/html; charset=utf-8", mtime, "no-cache")


def _index_page(formats: dict[str, list[str]], root: Path) -> bytes:
    items = []
    for name, suffixes in formats.items():
        title = _feed_title(root / f"{name}.atom") if ".atom" in suffixes else None
        links = " · ".join(
            f'<a href="{html.escape(name + suffix)}">{suffix[1:]}</a>' for suffix in suffixes
        )
        label = html.escape(title or name)
        items.append(f"<li><strong>{label}</strong> <code>{name}</code> — {links}</li>")
    discovery = "".join(
        f'<link rel="alternate" type="{CONTENT_TYPES[s].split(";")[0]}" href="{n}{s}">'
        for n, suffixes in formats.items()
        for s in suffixes
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>feedbot feeds</title>{discovery}</head><body>"
        f"<h1>Feeds</h1><ul>{''.join(items) or '<li>No feed published yet.</li>'}</ul>"
        "</body></html>\n"
    )
    return page.encode("utf-8")


def _feed_title(path: Path) -> str | None:
    """The first atom:title of the file (the feed's own), read without loading it all."""
    try:
        with path.open("rb") as handle:
            for _, element in etree.iterparse(
                handle, events=("end",), tag=_ATOM_TITLE, resolve_entities=False, no_network=True
            ):
                return str(element.text or "").strip() or None
    except (OSError, etree.LxmlError):
        logger.warning("cannot read the title of %s", path)
    return None
