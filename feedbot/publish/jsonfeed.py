"""Render a JSON Feed 1.1 document of stored articles (sorted keys, stable bytes)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from feedbot import PROJECT_URL
from feedbot.clock import isoformat
from feedbot.models import Origin, StoredArticle
from feedbot.publish.spec import FeedSpec, feed_language, is_language_tag

logger = logging.getLogger(__name__)

VERSION = "https://jsonfeed.org/version/1.1"
# JSON Feed extensions are keys starting with "_"; ours carries source and related reports.
EXTENSION_KEY = "_feedbot"

JsonObject = dict[str, object]


def render_json(spec: FeedSpec, articles: Sequence[StoredArticle]) -> bytes:
    """The JSON Feed for *articles* (newest first, already cut to ``max_entries``)."""
    feed: JsonObject = {
        "version": VERSION,
        "title": spec.title,
        "feed_url": spec.url_for("json"),
        "authors": [_author(spec.author_name, spec.author_uri)],
        "items": [_item(article) for article in articles],
    }
    if spec.site_url:
        feed["home_page_url"] = spec.site_url
    if spec.subtitle:
        feed["description"] = spec.subtitle
    language = feed_language(spec, articles)
    if language:
        feed["language"] = language
    if spec.hub_url:
        feed["hubs"] = [{"type": "WebSub", "url": spec.hub_url}]
    text = json.dumps(feed, ensure_ascii=False, sort_keys=True, indent=2)
    body = (text + "\n").encode("utf-8")
    logger.debug("rendered json feed=%s items=%d bytes=%d", spec.name, len(articles), len(body))
    return body


def _author(name: str, uri: str | None) -> JsonObject:
    author: JsonObject = {"name": name}
    if uri:
        author["url"] = uri
    return author


def _item(article: StoredArticle) -> JsonObject:
    item: JsonObject = {
        "id": article.id,
        "title": article.title,
        "date_published": isoformat(article.published),
        "date_modified": isoformat(article.updated),
    }
    if article.link:
        item["url"] = article.link
    if article.content:
        item["content_html"] = article.content
    else:
        item["content_text"] = article.summary or article.title
    if article.summary:
        item["summary"] = article.summary
    if article.authors:
        item["authors"] = [{"name": name} for name in article.authors]
    if article.categories:
        item["tags"] = list(dict.fromkeys(article.categories))
    if article.language and is_language_tag(article.language):
        item["language"] = article.language
    extension: JsonObject = {}
    if article.origin is not None:
        extension["source"] = _origin(article.origin)
    if article.related:
        extension["related"] = [_origin(other) for other in article.related]
    if extension:
        extension["about"] = PROJECT_URL
        item[EXTENSION_KEY] = extension
    return item


def _origin(origin: Origin) -> JsonObject:
    value: JsonObject = {"title": origin.title, "feed_url": origin.url}
    if origin.link:
        value["url"] = origin.link
    return value
