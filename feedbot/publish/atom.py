"""Render an Atom 1.0 feed (RFC 4287) of stored articles with feedgen.

The output depends on the spec and the articles only: the same input gives the same
bytes, so an unchanged store never rewrites the published file.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence

from feedgen.feed import FeedGenerator
from lxml import etree

from feedbot import PROJECT_URL, __version__
from feedbot.errors import PublishError
from feedbot.models import StoredArticle
from feedbot.publish.spec import (
    FORMATS,
    MEDIA_TYPES,
    FeedSpec,
    feed_language,
    feed_updated,
    is_language_tag,
    stamp,
    xml_safe,
)

logger = logging.getLogger(__name__)

ATOM_NS = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_A = f"{{{ATOM_NS}}}"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def render_atom(spec: FeedSpec, articles: Sequence[StoredArticle]) -> bytes:
    """The Atom document for *articles* (newest first, already cut to ``max_entries``)."""
    language = feed_language(spec, articles)
    try:
        fg = _feed_generator(spec, articles, language)
        root = etree.fromstring(fg.atom_str(pretty=False), _PARSER)
        _finish_entries(root, articles, language)
        if spec.stylesheet_href:
            data = html.escape(spec.stylesheet_href, quote=True)
            root.addprevious(
                etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{data}"')
            )
        body: bytes = etree.tostring(
            root.getroottree(), encoding="UTF-8", xml_declaration=True, pretty_print=True
        )
    except (ValueError, etree.LxmlError) as exc:
        raise PublishError(f"cannot render Atom: {exc}", resource=spec.name) from exc
    logger.debug("rendered atom feed=%s entries=%d bytes=%d", spec.name, len(articles), len(body))
    return body


def _feed_generator(
    spec: FeedSpec, articles: Sequence[StoredArticle], language: str | None
) -> FeedGenerator:
    fg = FeedGenerator()
    fg.id(spec.id)
    fg.title(xml_safe(spec.title))
    if spec.subtitle:
        fg.subtitle(xml_safe(spec.subtitle))
    fg.updated(feed_updated(articles))
    fg.generator("feedbot", version=__version__, uri=PROJECT_URL)
    fg.author(_person(spec.author_name, spec.author_uri))
    if language:
        fg.language(language)
    fg.link(href=spec.self_url, rel="self", type=MEDIA_TYPES["atom"])
    if spec.site_url:
        fg.link(href=spec.site_url, rel="alternate", type="text/html")
    for fmt in FORMATS:
        if fmt != "atom" and fmt in spec.formats:
            fg.link(href=spec.url_for(fmt), rel="alternate", type=MEDIA_TYPES[fmt])
    if spec.hub_url:
        fg.link(href=spec.hub_url, rel="hub")
    for article in articles:
        _add_entry(fg, spec, article)
    return fg


def _person(name: str, uri: str | None) -> dict[str, str]:
    person = {"name": xml_safe(name)}
    if uri:
        person["uri"] = uri
    return person


def _add_entry(fg: FeedGenerator, spec: FeedSpec, article: StoredArticle) -> None:
    fe = fg.add_entry(order="append")
    fe.id(article.id)
    fe.title(xml_safe(article.title) or article.id)
    fe.updated(stamp(article.updated))
    fe.published(stamp(article.published))
    names = [n for n in (xml_safe(a).strip() for a in article.authors) if n]
    if names:
        fe.author([{"name": n} for n in names])
    else:
        fe.author(_person(spec.author_name, spec.author_uri))
    if article.link:
        # feedgen 1.0 drops rel/type of entry links; _finish_entries writes them all.
        fe.link(href=article.link, rel="alternate")
    summary = xml_safe(article.summary)
    if summary:
        fe.summary(summary)
    content = xml_safe(article.content)
    if not content and not article.link:
        # RFC 4287 4.1.1: an entry without an alternate link must have content.
        content = html.escape(summary or article.title)
    if content:
        fe.content(content, type="html")
    for term in dict.fromkeys(c for c in (xml_safe(c).strip() for c in article.categories) if c):
        fe.category(term=term)


def _finish_entries(
    root: etree._Element, articles: Sequence[StoredArticle], language: str | None
) -> None:
    """Add what feedgen cannot express: links, a complete atom:source, per-entry xml:lang."""
    for element, article in zip(root.iterfind(f"{_A}entry"), articles, strict=True):
        if article.language and article.language != language and is_language_tag(article.language):
            element.set(XML_LANG, article.language)
        for link in element.findall(f"{_A}link"):
            element.remove(link)
        if article.link:
            etree.SubElement(
                element, f"{_A}link", rel="alternate", type="text/html", href=article.link
            )
        for href, title in _related(article):
            etree.SubElement(element, f"{_A}link", rel="related", href=href, title=title)
        if article.origin is not None:
            source = etree.SubElement(element, f"{_A}source")
            etree.SubElement(source, f"{_A}id").text = article.origin.url
            etree.SubElement(source, f"{_A}title").text = xml_safe(article.origin.title)
            etree.SubElement(source, f"{_A}link", rel="self", href=article.origin.url)
            etree.SubElement(source, f"{_A}updated").text = stamp(article.updated).isoformat()


def _related(article: StoredArticle) -> list[tuple[str, str]]:
    """(href, title) of the other reports of the story, without repeats or the entry itself."""
    seen = {article.link}
    links = []
    for other in article.related:
        href = other.link or other.url
        if href and href not in seen:
            seen.add(href)
            links.append((href, xml_safe(other.title)))
    return links
