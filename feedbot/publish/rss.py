"""Render an RSS 2.0 feed of stored articles with feedgen (for readers without Atom)."""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence

from feedgen.feed import FeedGenerator
from lxml import etree

from feedbot import __version__
from feedbot.errors import PublishError
from feedbot.models import StoredArticle
from feedbot.publish.spec import (
    MEDIA_TYPES,
    FeedSpec,
    feed_language,
    feed_updated,
    stamp,
    xml_safe,
)

logger = logging.getLogger(__name__)

ATOM_LINK = "{http://www.w3.org/2005/Atom}link"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def render_rss(spec: FeedSpec, articles: Sequence[StoredArticle]) -> bytes:
    """The RSS 2.0 document for *articles* (newest first, already cut to ``max_entries``).

    ``description`` carries the summary (escaped, as RSS descriptions are HTML),
    ``content:encoded`` the HTML content, ``dc:creator`` the authors and ``guid`` the
    article id (``isPermaLink="true"`` only when the id is the article's link).
    """
    try:
        fg = FeedGenerator()
        fg.load_extension("dc", atom=False, rss=True)
        fg.title(xml_safe(spec.title))
        fg.description(xml_safe(spec.subtitle or spec.title))
        fg.link(href=spec.url_for("rss"), rel="self", type=MEDIA_TYPES["rss"])
        fg.link(href=spec.site_url or spec.self_url, rel="alternate")
        fg.generator(f"feedbot {__version__}")
        fg.lastBuildDate(feed_updated(articles))
        language = feed_language(spec, articles)
        if language:
            fg.language(language)
        for article in articles:
            _add_item(fg, article)
        body: bytes = fg.rss_str(pretty=False, encoding="UTF-8", xml_declaration=True)
        root = etree.fromstring(body, _PARSER)
        if spec.hub_url:
            # feedgen only writes the self link; WebSub wants the hub beside it.
            self_link = root.find(f"channel/{ATOM_LINK}")
            self_link.addnext(etree.Element(ATOM_LINK, rel="hub", href=spec.hub_url))
        body = etree.tostring(
            root.getroottree(), encoding="UTF-8", xml_declaration=True, pretty_print=True
        )
    except (ValueError, etree.LxmlError) as exc:
        raise PublishError(f"cannot render RSS: {exc}", resource=spec.name) from exc
    logger.debug("rendered rss feed=%s items=%d bytes=%d", spec.name, len(articles), len(body))
    return body


def _add_item(fg: FeedGenerator, article: StoredArticle) -> None:
    fe = fg.add_entry(order="append")
    fe.title(xml_safe(article.title) or article.id)
    fe.guid(article.id, permalink=article.link is not None and article.id == article.link)
    if article.link:
        fe.link(href=article.link)
    fe.published(stamp(article.published))
    summary = xml_safe(article.summary)
    content = xml_safe(article.content)
    fe.description(html.escape(summary, quote=False) if summary else content or article.title)
    if summary and content:
        fe.content(content)
    names = [n for n in (xml_safe(a).strip() for a in article.authors) if n]
    if names:
        fe.dc.dc_creator(names)
    for term in dict.fromkeys(c for c in (xml_safe(c).strip() for c in article.categories) if c):
        fe.category(term=term)
    if article.origin is not None:
        fe.source(url=article.origin.url, title=xml_safe(article.origin.title))
