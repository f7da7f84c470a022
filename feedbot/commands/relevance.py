"""Relevance commands: ``explain`` (why an entry matches) and ``articles list``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from feedbot.app import App
from feedbot.clock import isoformat
from feedbot.commands import out, out_json, report, table
from feedbot.config import Config
from feedbot.errors import FeedbotError, InputError
from feedbot.models import Origin, StoredArticle
from feedbot.relevance.explain import (
    JsonlItem,
    explain,
    input_from_file,
    item_from_json,
    render,
    to_json,
)
from feedbot.relevance.setup import build_matcher
from feedbot.relevance.topics import Matcher, MatchInput
from feedbot.store import articles as store_articles

USAGE = "give one of: TEXT, --title/--summary/--content, --file, --article, --jsonl"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "explain",
        help="show which topics a text, file or stored article matches, and why",
        description="Show the topics a document matches: term, field, position in the "
        "folded field text, a snippet, and the exclusions that fired.",
    )
    p.add_argument("text", nargs="?", help="text to explain (matched as a title)")
    p.add_argument("--title")
    p.add_argument("--summary")
    p.add_argument("--content")
    p.add_argument("--file", type=Path, help="a plain-text or HTML file")
    p.add_argument("--article", metavar="ID", help="a stored article")
    p.add_argument(
        "--jsonl",
        metavar="FILE",
        help="one JSON object per line (id, title, summary, content, lang); '-' for stdin",
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of a report")
    p.set_defaults(func=cmd_explain, no_app=True)

    articles = sub.add_parser("articles", help="stored articles").add_subparsers(
        dest="articles_command", required=True, metavar="ACTION"
    )
    p = articles.add_parser("list", help="the newest stored articles with their topics")
    p.add_argument("--json", action="store_true", help="one JSON object per article")
    p.add_argument("--topic", action="append", default=[], dest="topics", metavar="T")
    p.add_argument("--limit", type=_positive, default=50, metavar="N")
    p.set_defaults(func=cmd_articles_list)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


# ------------------------------------------------------------------------ explain
def _sources(args: argparse.Namespace) -> list[str]:
    fields = args.title is not None or args.summary is not None or args.content is not None
    given = {
        "TEXT": args.text is not None,
        "--title/--summary/--content": fields,
        "--file": args.file is not None,
        "--article": args.article is not None,
        "--jsonl": args.jsonl is not None,
    }
    return [name for name, present in given.items() if present]


def cmd_explain(config: Config, args: argparse.Namespace) -> int:
    """Runs without the composition root unless a stored article is asked for."""
    sources = _sources(args)
    if len(sources) != 1:
        sys.stderr.write(f"feedbot explain: {USAGE}\n")
        return 2
    try:
        if args.article is not None:
            app = App(config)
            try:
                return _explain_article(app, args)
            finally:
                app.close()
        matcher = build_matcher(config)
        if args.jsonl is not None:
            return _explain_jsonl(matcher, args.jsonl)
        doc = _document(args)
        expl = explain(doc, matcher.match(doc))
        if args.json:
            out_json(to_json(expl))
        else:
            out(render(expl))
        return 0
    except FeedbotError as exc:
        return report(exc)


def _document(args: argparse.Namespace) -> MatchInput:
    if args.text is not None:
        return MatchInput(title=args.text)
    if args.file is not None:
        path: Path = args.file
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read: {exc}", resource=str(path)) from exc
        return input_from_file(text, html_hint=path.suffix.lower() in {".html", ".htm"})
    return MatchInput(
        title=args.title or "", summary=args.summary or "", content=args.content or ""
    )


def _explain_article(app: App, args: argparse.Namespace) -> int:
    with app.db.read() as conn:
        article = store_articles.get_article(conn, args.article)
    if article is None:
        raise InputError("no stored article has this id", resource=args.article)
    doc = MatchInput.from_article(article)
    expl = explain(doc, app.matcher.match(doc), doc_id=article.id)
    if args.json:
        obj = to_json(expl)
        obj["stored_topics"] = list(article.topics)
        out_json(obj)
        return 0
    out(render(expl))
    if tuple(article.topics) != expl.topics:
        out(f"stored topics differ: {', '.join(article.topics) or '(none)'} (matched at import)")
    return 0


def _explain_jsonl(matcher: Matcher, name: str) -> int:
    """Streams: one output line per input line, in order; a bad line stops with exit 1."""
    if name == "-":
        return _explain_stream(matcher, sys.stdin, "<stdin>")
    path = Path(name)
    try:
        with path.open(encoding="utf-8-sig") as stream:
            return _explain_stream(matcher, stream, name)
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", resource=name) from exc


def _explain_stream(matcher: Matcher, stream: TextIO, name: str) -> int:
    for item in _items(stream, name):
        expl = explain(item.doc, matcher.match(item.doc), doc_id=item.id, lang=item.lang)
        out_json(to_json(expl))
    return 0


def _items(stream: TextIO, name: str) -> Iterator[JsonlItem]:
    try:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                yield item_from_json(json.loads(line))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                raise InputError(str(exc), resource=name, line=number) from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8: {exc}", resource=name) from exc


# ------------------------------------------------------------------ articles list
def cmd_articles_list(app: App, args: argparse.Namespace) -> int:
    unknown = [t for t in args.topics if t not in app.matcher.topics]
    if unknown:
        sys.stderr.write(
            f"feedbot: warning: topic {unknown[0]!r} is not configured "
            f"(topics: {', '.join(app.matcher.topics)})\n"
        )
    with app.db.read() as conn:
        rows = store_articles.latest_articles(conn, args.limit, topics=args.topics)
    if args.json:
        for article in rows:
            out_json(article_json(article))
        return 0
    out(
        table(
            [
                [
                    isoformat(a.updated),
                    ",".join(a.topics) or "-",
                    str(len(a.related)),
                    _clip(", ".join(a.matched_terms), 40),
                    _clip(a.title, 60),
                ]
                for a in rows
            ],
            ["updated", "topics", "reports", "terms", "title"],
        )
    )
    return 0


def article_json(a: StoredArticle) -> dict[str, object]:
    """The object ``articles list --json`` prints for one stored article."""
    return {
        "id": a.id,
        "title": a.title,
        "link": a.link,
        "language": a.language,
        "published": isoformat(a.published),
        "updated": isoformat(a.updated),
        "origin": _origin(a.origin) if a.origin else None,
        "topics": list(a.topics),
        "matched_terms": list(a.matched_terms),
        "related": [_origin(o) for o in a.related],
    }


def _origin(o: Origin) -> dict[str, object]:
    return {"title": o.title, "url": o.url, "link": o.link}


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
