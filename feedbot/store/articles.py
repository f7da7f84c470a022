"""Article queries: upsert with a content hash, newest-first reads through indexes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Row

from feedbot.clock import isoformat
from feedbot.models import ArticleData, Origin, StoredArticle
from feedbot.store.direct import insert_rows
from feedbot.store.schema import article_reports, article_topics, articles

Change = Literal["added", "updated", "unchanged"]
HASH_VERSION = "v1"


def content_hash(article: ArticleData) -> str:
    """A versioned hash of everything a reader sees except ``updated``.

    Bump ``HASH_VERSION`` when the hashed fields change, so every stored article is
    re-hashed once instead of looking changed for an unrelated reason.
    """
    payload = {
        "title": article.title,
        "summary": article.summary,
        "content": article.content,
        "link": article.link,
        "authors": list(article.authors),
        "language": article.language,
        "categories": list(article.categories),
        "published": isoformat(article.published),
        "origin": [article.origin.title, article.origin.url] if article.origin else None,
    }
    blob = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return f"{HASH_VERSION}:{hashlib.sha256(blob).hexdigest()}"


def upsert_article(
    conn: Connection,
    article: ArticleData,
    now: datetime,
    *,
    topics: Sequence[str] = (),
    terms: Sequence[str] = (),
    upstream_id: int | None = None,
) -> Change:
    """Insert *article*, or update it in place when its content hash changed.

    A changed article keeps its id and gets a new ``updated``: the given one when it is
    newer than the stored one, else *now* (so an edit always moves it up the feed).
    """
    row = conn.execute(
        select(articles.c.id, articles.c.content_hash, articles.c.updated, articles.c.topics).where(
            articles.c.id == article.id
        )
    ).first()
    return _upsert(conn, article, now, row, topics, terms, upstream_id)


def upsert_articles(
    conn: Connection,
    items: Sequence[tuple[ArticleData, Sequence[str], Sequence[str]]],
    now: datetime,
    *,
    upstream_id: int | None = None,
) -> list[Change]:
    """``upsert_article`` for many ``(article, topics, terms)``; the change of each, in order.

    Existing rows are read in bulk and new articles inserted in bulk (one executemany for
    articles, one for their topics), so a batch costs a few statements, not a few per item.
    """
    existing: dict[str, Any] = {}
    ids = [a.id for a, _, _ in items]
    for i in range(0, len(ids), 500):
        existing.update((r.id, r) for r in conn.execute(_EXISTING, {"ids": ids[i : i + 500]}))
    rows: list[dict[str, Any]] = []
    topic_rows: list[dict[str, Any]] = []

    def flush() -> None:
        insert_rows(conn, articles, rows)
        insert_rows(conn, article_topics, topic_rows)
        rows.clear()
        topic_rows.clear()

    changes: list[Change] = []
    seen: set[str] = set()
    for article, topics, terms in items:
        if article.id in seen:  # the same id twice in one batch: read what the first wrote
            flush()
            change = upsert_article(
                conn, article, now, topics=topics, terms=terms, upstream_id=upstream_id
            )
        elif article.id in existing:
            change = _upsert(conn, article, now, existing[article.id], topics, terms, upstream_id)
        else:
            values = _new_row(article, topics, terms, now, upstream_id)
            rows.append(values)
            topic_rows.extend(_topic_rows(article.id, values["topics"], article.updated))
            change = "added"
        seen.add(article.id)
        changes.append(change)
    flush()
    return changes


# built once: a poll runs it for every batch of new stories (see entries._KNOWN)
_EXISTING = select(
    articles.c.id, articles.c.content_hash, articles.c.updated, articles.c.topics
).where(articles.c.id.in_(bindparam("ids", expanding=True)))


def _new_row(
    article: ArticleData,
    topics: Sequence[str],
    terms: Sequence[str],
    now: datetime,
    upstream_id: int | None,
) -> dict[str, Any]:
    values = _values(article, topics, terms)
    values.update(
        id=article.id, updated=article.updated, created_at=now, changed_at=now,
        upstream_id=upstream_id,
    )  # fmt: skip
    return values


def _values(article: ArticleData, topics: Sequence[str], terms: Sequence[str]) -> dict[str, Any]:
    return {
        "title": article.title,
        "summary": article.summary,
        "content": article.content,
        "link": article.link,
        "authors": list(article.authors),
        "language": article.language,
        "categories": list(article.categories),
        "published": article.published,
        "origin_title": article.origin.title if article.origin else None,
        "origin_url": article.origin.url if article.origin else None,
        "origin_link": article.origin.link if article.origin else None,
        "content_hash": content_hash(article),
        "topics": sorted(set(topics)),
        "matched_terms": sorted(set(terms)),
    }


def _upsert(
    conn: Connection,
    article: ArticleData,
    now: datetime,
    row: Any,
    topics: Sequence[str],
    terms: Sequence[str],
    upstream_id: int | None,
) -> Change:
    if row is None:
        values = _new_row(article, topics, terms, now, upstream_id)
        conn.execute(insert(articles).values(**values))
        _insert_topics(conn, article.id, values["topics"], article.updated)
        return "added"
    values = _values(article, topics, terms)
    digest = values["content_hash"]
    if row.content_hash == digest and sorted(row.topics) == values["topics"]:
        return "unchanged"
    updated = row.updated
    if row.content_hash != digest:
        updated = article.updated if article.updated > row.updated else now
    values["updated"] = updated
    values["changed_at"] = now
    conn.execute(update(articles).where(articles.c.id == article.id).values(**values))
    conn.execute(delete(article_topics).where(article_topics.c.article_id == article.id))
    _insert_topics(conn, article.id, values["topics"], updated)
    return "updated"


def _insert_topics(
    conn: Connection, article_id: str, topics: Iterable[str], updated: datetime
) -> None:
    insert_rows(conn, article_topics, _topic_rows(article_id, topics, updated))


def _topic_rows(article_id: str, topics: Iterable[str], updated: datetime) -> list[dict[str, Any]]:
    return [{"topic": t, "article_id": article_id, "updated": updated} for t in topics]


def latest_articles(
    conn: Connection, limit: int, *, topics: Sequence[str] = ()
) -> list[StoredArticle]:
    """The newest *limit* articles by ``updated`` (then id), optionally of some topics.

    Both forms read an index in order and stop after *limit* rows: ``articles(updated, id)``
    without topics, ``article_topics(topic, updated)`` with them.
    """
    if topics:
        ids = (
            select(article_topics.c.article_id, article_topics.c.updated)
            .where(article_topics.c.topic.in_(list(topics)))
            .order_by(article_topics.c.updated.desc(), article_topics.c.article_id.desc())
            .limit(limit * len(topics))
            .subquery()
        )
        query = (
            select(articles)
            .where(articles.c.id.in_(select(ids.c.article_id)))
            .order_by(articles.c.updated.desc(), articles.c.id.desc())
            .limit(limit)
        )
    else:
        query = (
            select(articles).order_by(articles.c.updated.desc(), articles.c.id.desc()).limit(limit)
        )
    rows = conn.execute(query).all()
    related = _related(conn, [r.id for r in rows])
    return [_to_stored(r, related.get(r.id, ())) for r in rows]


def get_article(conn: Connection, article_id: str) -> StoredArticle | None:
    row = conn.execute(select(articles).where(articles.c.id == article_id)).first()
    if row is None:
        return None
    return _to_stored(row, _related(conn, [article_id]).get(article_id, ()))


def get_articles(conn: Connection, ids: Sequence[str]) -> dict[str, StoredArticle]:
    """``get_article`` for many ids at once (two queries per 500 ids); missing ids are absent."""
    unique = list(dict.fromkeys(ids))
    out: dict[str, StoredArticle] = {}
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        rows = conn.execute(select(articles).where(articles.c.id.in_(chunk))).all()
        related = _related(conn, [r.id for r in rows])
        for r in rows:
            out[r.id] = _to_stored(r, related.get(r.id, ()))
    return out


def count_articles(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(articles)).scalar_one())


CHANGE_MARKER = select(
    select(func.max(articles.c.changed_at)).scalar_subquery(),
    select(func.max(article_reports.c.seen_at)).scalar_subquery(),
)


def change_marker(conn: Connection) -> tuple[datetime | None, datetime | None]:
    """When feedbot last wrote an article (added or changed one) and last recorded another
    report of a story: what the published feeds show can only have changed when this has.

    Each is one lookup at the end of an index, so a publisher that asks every few seconds
    pays the same for a million articles as for ten. (Counting rows, as this check did
    before, reads a whole index.) Rows deleted behind feedbot's back are not seen here;
    the publisher's periodic full publish covers them.
    """
    row = conn.execute(CHANGE_MARKER).one()
    return row[0], row[1]


def add_report(
    conn: Connection,
    article_id: str,
    *,
    link: str,
    source_title: str | None,
    source_url: str | None,
    now: datetime,
) -> bool:
    """Record that the story of *article_id* was also reported at *link*. True if new."""
    if conn.execute(_REPORTED, {"article_id": article_id, "link": link}).first():
        return False
    conn.execute(
        _REPORT,
        {
            "article_id": article_id,
            "link": link,
            "source_title": source_title,
            "source_url": source_url,
            "seen_at": now,
        },
    )
    return True


_REPORTED = select(article_reports.c.link).where(
    article_reports.c.article_id == bindparam("article_id"),
    article_reports.c.link == bindparam("link"),
)
_REPORT = insert(article_reports)


def _related(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[Origin, ...]]:
    if not ids:
        return {}
    rows = conn.execute(
        select(article_reports)
        .where(article_reports.c.article_id.in_(list(ids)))
        .order_by(article_reports.c.seen_at, article_reports.c.link)
    ).all()
    out: dict[str, list[Origin]] = {}
    for r in rows:
        out.setdefault(r.article_id, []).append(
            Origin(title=r.source_title or "", url=r.source_url or "", link=r.link)
        )
    return {k: tuple(v) for k, v in out.items()}


def _to_stored(row: Row[Any], related: tuple[Origin, ...]) -> StoredArticle:
    origin = (
        Origin(title=row.origin_title or "", url=row.origin_url or "", link=row.origin_link)
        if row.origin_url
        else None
    )
    return StoredArticle(
        id=row.id,
        title=row.title,
        summary=row.summary,
        content=row.content,
        link=row.link,
        authors=tuple(row.authors),
        language=row.language,
        categories=tuple(row.categories),
        published=row.published,
        updated=row.updated,
        origin=origin,
        content_hash=row.content_hash,
        topics=tuple(row.topics),
        matched_terms=tuple(row.matched_terms),
        related=related,
    )
