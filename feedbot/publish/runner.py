"""Publish every configured feed from the store: render, then write only what changed."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from feedbot.config import Config, PublishConfig
from feedbot.publish.atom import render_atom
from feedbot.publish.files import write_if_changed
from feedbot.publish.jsonfeed import render_json
from feedbot.publish.rss import render_rss
from feedbot.publish.spec import FeedSpec
from feedbot.store import articles as store_articles
from feedbot.store.db import Database

log = logging.getLogger(__name__)

_RENDER = {"atom": render_atom, "rss": render_rss, "json": render_json}


@dataclass(frozen=True, slots=True)
class PublishResult:
    name: str
    paths: tuple[Path, ...]
    changed: tuple[Path, ...]
    entries: int
    seconds: float


def feed_spec(config: Config, pub: PublishConfig) -> FeedSpec:
    base = config.server.public_url
    return FeedSpec(
        name=pub.name,
        title=pub.title,
        subtitle=pub.subtitle,
        id=f"tag:{config.authority},2026:feed/{pub.name}",
        self_url=f"{base}/{pub.name}.atom",
        site_url=pub.site_url or f"{base}/",
        author_name=pub.author,
        author_uri=None,
        language=pub.language,  # None: the renderers pick the articles' most common one
        max_entries=pub.max_entries,
        formats=tuple(pub.formats),
        hub_url=config.websub.hub,
        stylesheet_href="/feed.xsl",
    )


def publish_feed(db: Database, config: Config, pub: PublishConfig) -> PublishResult:
    """Render *pub* in each of its formats; files whose bytes did not change are left alone."""
    started = time.perf_counter()
    with db.read() as conn:
        articles = store_articles.latest_articles(conn, pub.max_entries, topics=pub.topics)
    spec = feed_spec(config, pub)
    config.feeds_dir.mkdir(parents=True, exist_ok=True)
    paths, changed = [], []
    for fmt in pub.formats:
        path = config.feeds_dir / f"{pub.name}.{fmt}"
        paths.append(path)
        if write_if_changed(path, _RENDER[fmt](spec, articles)):
            changed.append(path)
    seconds = time.perf_counter() - started
    if changed:
        log.info(
            "published %s: %d entries, %d file(s) changed", pub.name, len(articles), len(changed)
        )
    return PublishResult(pub.name, tuple(paths), tuple(changed), len(articles), seconds)


def publish_all(db: Database, config: Config) -> list[PublishResult]:
    return [publish_feed(db, config, pub) for pub in config.publish]
