"""Relevance benchmark: topic matching throughput and dedup cost per new entry in the store.

Usage: python bench/relevance.py [--seconds 1.0] [--big 100000] [--entries 400] [--pg URL]

Prints one table:

1. matching, title + summary, default topics, one process (= one core): entries/s on a
   mix of English, French and Chinese entries (the labelled set, with summaries padded to
   feed length, among three times as many generated entries about other subjects).
   Target: at least 20,000 entries/s.
2. dedup per new relevant entry through a real store holding 1,000 and then 100,000
   articles: the pipeline's lookups (``story_candidates``: exact keys in the store, band
   keys in a mirror of the story log synced in each transaction -> candidates' compact
   keys -> ``decide``) and its writes (the article and its story keys, or a report of a
   known story), 25 entries per write transaction, commit included. Target: the 100,000 cost at most 1.5x the 1,000 cost.

Stores are filled with executemany inserts (SQLAlchemy Core) into the real schema. Text is
generated here from a fixed seed, so figures do not depend on any corpus.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

from scratch import scratch_postgres
from sqlalchemy import Connection, insert, select, text

from feedbot.models import ArticleData
from feedbot.relevance.dedup import Candidate, StoryKeys, decide, story_keys
from feedbot.relevance.topics import Matcher, MatchInput
from feedbot.store import articles as store_articles
from feedbot.store import entries as store_entries
from feedbot.store.db import Database
from feedbot.store.schema import articles
from feedbot.store.schema import story_keys as story_keys_table
from feedbot.stories import StoryWriter, story_index_keys

LABELLED = Path(__file__).resolve().parent.parent / "tests/data/relevance/labelled.jsonl"
MATCH_TARGET = 20_000
RATIO_TARGET = 1.5
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BATCH = 25  # entries per write transaction, like one poll

# ------------------------------------------------------------------ generated text


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FUNCTION = {
    "en": _words("the of and to in for on with at by from as after over about its their"),
    "fr": _words("le la les de des du et en pour sur avec par dans au aux une un son ses"),
}
_SYLLABLES = _words("ka lo ri ven to mar sel qui an bre dor pal mi nus ter go fe li sar tan ro vel")
_HANZI = [chr(0x4E00 + k) for k in random.Random(3).sample(range(0, 20_000), 3_000)]
_PUNCT = "，。、；"


@dataclass(frozen=True, slots=True)
class Text:
    title: str
    summary: str
    lang: str


class Writer:
    """Deterministic pseudo-news: Latin pseudo-words with real function words, capitalised
    names and numbers; Chinese from a pool of 3,000 ideographs."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        vocab_rng = random.Random(11)
        self.words = [
            "".join(vocab_rng.choices(_SYLLABLES, k=vocab_rng.randint(2, 4))) for _ in range(6_000)
        ]
        self.names = [w.capitalize() for w in self.words[:400]]
        # Zipf-like word frequencies with a flattened head, as in news text.
        self.cum = list(accumulate(1 / (rank + 10) for rank in range(len(self.words))))

    def _latin(self, lang: str, n: int) -> str:
        rng = self.rng
        out = []
        for _ in range(n):
            roll = rng.random()
            if roll < 0.35:
                out.append(rng.choice(_FUNCTION[lang]))
            elif roll < 0.45:
                out.append(rng.choice(self.names))
            elif roll < 0.5:
                out.append(str(rng.randint(2, 2_000)))
            else:
                out.append(rng.choices(self.words, cum_weights=self.cum)[0])
        return " ".join(out)

    def _hanzi(self, n: int) -> str:
        chars = self.rng.choices(_HANZI, k=n)
        for i in range(9, n, 11):
            chars[i] = self.rng.choice(_PUNCT)
        return "".join(chars)

    def item(self) -> Text:
        rng = self.rng
        lang = rng.choice(("en", "en", "fr", "zh"))
        if lang == "zh":
            return Text(self._hanzi(rng.randint(12, 22)), self._hanzi(rng.randint(60, 140)), lang)
        title = self._latin(lang, rng.randint(7, 12)).capitalize()
        return Text(title, self._latin(lang, rng.randint(30, 60)) + ".", lang)

    def padding(self, lang: str) -> str:
        if lang.startswith("zh"):
            return self._hanzi(self.rng.randint(60, 120))
        return self._latin("fr" if lang == "fr" else "en", self.rng.randint(25, 45)) + "."


# ------------------------------------------------------------------------- matching
def match_sets(seed: int = 5) -> dict[str, list[MatchInput]]:
    """The labelled set with feed-length summaries, among 3x as many other entries."""
    writer = Writer(seed)
    items = [json.loads(line) for line in LABELLED.read_text("utf-8").splitlines() if line]
    sets: dict[str, list[MatchInput]] = {"en": [], "fr": [], "zh": []}
    for i in items:
        lang = "zh" if i["lang"].startswith("zh") else i["lang"]
        summary = f"{i['summary']} {writer.padding(i['lang'])}"
        sets[lang].append(MatchInput(title=i["title"], summary=summary))
    for _ in range(3 * len(items)):
        t = writer.item()
        sets[t.lang].append(MatchInput(title=t.title, summary=t.summary))
    mixed = [d for docs in sets.values() for d in docs]
    random.Random(seed).shuffle(mixed)
    return {**sets, "mix": mixed}


def match_rate(matcher: Matcher, docs: Sequence[MatchInput], seconds: float) -> float:
    for doc in docs[:20]:
        matcher.match(doc)  # warm OpenCC and the regex caches
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for doc in docs:
            matcher.match(doc)
        done += len(docs)
    return done / elapsed


# ---------------------------------------------------------------------------- dedup
def _article_row(i: int, t: Text) -> dict[str, Any]:
    published = T0 - timedelta(minutes=5 * i)
    return {
        "id": f"tag:bench.localhost,2026:a/{i}",
        "title": t.title,
        "summary": t.summary,
        "content": "",
        "link": f"https://news{i % 50}.example/{i}/story",
        "authors": [],
        "language": t.lang,
        "categories": [],
        "published": published,
        "updated": published,
        "origin_title": f"Source {i % 50}",
        "origin_url": f"https://news{i % 50}.example/feed",
        "origin_link": None,
        "content_hash": f"v1:{i:064x}",
        "topics": ["alibaba"],
        "matched_terms": ["Alibaba"],
        "upstream_id": None,
        "created_at": published,
    }


def _index_rows(rows: list[dict[str, Any]]) -> list[tuple[str, list[str], int, datetime]]:
    """``add_story_keys_many``'s input for these articles (their story keys, computed in a
    pool process)."""
    out = []
    for row in rows:
        k = story_keys(row["title"], row["summary"], row["link"])
        out.append((row["id"], story_index_keys(k), k.simhash, row["published"]))
    return out


def fill(db: Database, texts: Sequence[Text], *, chunk: int = 5_000) -> float:
    """Insert *texts* as articles with their story keys (computed on every core); seconds."""
    start = time.perf_counter()
    chunks = [
        [_article_row(i, texts[i]) for i in range(base, min(base + chunk, len(texts)))]
        for base in range(0, len(texts), chunk)
    ]
    with ProcessPoolExecutor() as pool:
        keyed = list(pool.map(_index_rows, chunks))
    for rows, keys in zip(chunks, keyed, strict=True):
        with db.write() as conn:
            conn.execute(insert(articles), rows)
            store_entries.add_story_keys_many(conn, keys)
    if db.dialect == "postgresql":
        with db.write() as conn:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - start


def new_entries(stored: Sequence[Text], n: int, seed: int) -> list[tuple[Text, str, datetime]]:
    """*n* new entries: three in four new stories, one in four another report of one of
    the 500 newest stored stories (the same in both store sizes)."""
    writer = Writer(seed)
    rng = random.Random(seed)
    out = []
    for j in range(n):
        when = T0 + timedelta(minutes=j)
        if j % 4 == 3:
            old = stored[rng.randrange(500)]
            again = Text(f"{old.title} - Wire", old.summary, old.lang)
            out.append((again, f"https://wire.example/{j}", when))
        else:
            out.append((writer.item(), f"https://fresh{j % 30}.example/{seed}/{j}", when))
    return out


@dataclass(slots=True)
class Timing:
    lookup: float = 0.0
    decide: float = 0.0
    insert: float = 0.0
    total: float = 0.0
    candidates: int = 0
    duplicates: int = 0


def pipeline_lookup(conn: Connection, keys: StoryKeys, when: datetime) -> list[Candidate]:
    """The pipeline's own candidate step (``StoryWriter.candidates_many``): exact keys at
    any date, SimHash bands within the dedup window from the process's mirror of the story
    log (synced in this transaction, one per store), full keys rebuilt only for close
    hashes."""
    writer = _WRITERS.setdefault(str(conn.engine.url), StoryWriter())
    writer.bands.sync(conn, when)
    return writer.candidates_many(conn, [(keys, when)], bands=writer.bands)[0]


_WRITERS: dict[str, StoryWriter] = {}


Lookup = Callable[[Connection, StoryKeys, datetime], list[Candidate]]


Entry = tuple[Text, str, datetime]


def interleaved(
    dbs: Mapping[int, Database], entries: Sequence[Entry], tag: str, lookup: Lookup
) -> dict[int, Timing]:
    """Each batch goes to every store in turn, so load on the machine hits all sizes alike."""
    timings = {size: Timing() for size in dbs}
    for base in range(0, len(entries), BATCH):
        for size, db in dbs.items():
            dedup_run(db, entries[base : base + BATCH], f"{tag}/{base}", lookup, timings[size])
    return timings


def dedup_run(db: Database, entries: Sequence[Entry], tag: str, lookup: Lookup, t: Timing) -> None:
    """One write transaction (one poll) over *entries*, timed into *t*."""
    clock = time.perf_counter
    batch_start = clock()
    with db.write() as conn:
        for j, (item, link, when) in enumerate(entries):
            a = clock()
            keys = story_keys(item.title, item.summary, link)
            index_keys = story_index_keys(keys)
            b = clock()
            cands = lookup(conn, keys, when)
            c = clock()
            decision = decide(keys, when, cands)
            d = clock()
            if decision.duplicate_of is not None:
                t.duplicates += 1
                store_articles.add_report(
                    conn, decision.duplicate_of, link=link, source_title="Wire",
                    source_url="https://wire.example/feed", now=when,
                )  # fmt: skip
            else:
                article = ArticleData(
                    id=f"tag:bench.localhost,2026:{tag}/{j}", title=item.title,
                    summary=item.summary, content="", link=link, authors=(),
                    language=item.lang, categories=(), published=when, updated=when,
                )  # fmt: skip
                store_articles.upsert_article(
                    conn, article, when, topics=["alibaba"], terms=["Alibaba"]
                )
                store_entries.add_story_keys_many(
                    conn, [(article.id, index_keys, keys.simhash, when)]
                )
            e = clock()
            t.candidates += len(cands)
            t.lookup += c - b
            t.decide += (b - a) + (d - c)
            t.insert += e - d
    t.total += clock() - batch_start


@contextmanager
def store(kind: str, pg_url: str | None, workdir: Path, name: str) -> Iterator[Database]:
    if kind == "sqlite":
        db = Database(f"sqlite:///{workdir / f'{name}.sqlite3'}")
        try:
            yield db
        finally:
            db.close()
        return
    assert pg_url is not None
    with scratch_postgres(pg_url) as db:
        yield db


def sqlite_plan(db: Database) -> str:
    """How SQLite runs the two lookup queries: 'indexed' unless a table is scanned."""
    with db.read() as conn:
        compiled = []
        keys = select(story_keys_table.c.article_id, story_keys_table.c.key).where(
            story_keys_table.c.key.in_(["u:0", "t:0"])
        )
        rows = select(articles.c.id).where(articles.c.id.in_(["x", "y"]))
        for stmt in (keys, rows):
            sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
            compiled += [r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
    scans = [p for p in compiled if p.startswith("SCAN")]
    return "indexed (no scan)" if not scans else "SCANS: " + "; ".join(scans)


# ---------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per matching set")
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=400, help="new entries per store size")
    parser.add_argument("--pg", metavar="URL", help="also run the dedup part on PostgreSQL")
    args = parser.parse_args()

    rows: list[list[str]] = []
    matcher = Matcher.default()
    for name, docs in match_sets().items():
        rate = match_rate(matcher, docs, args.seconds)
        chars = statistics.mean(len(d.title) + len(d.summary) for d in docs)
        relevant = sum(bool(matcher.match(d).topics) for d in docs) / len(docs)
        rows.append([
            "matching, title+summary", f"{name}: {len(docs)} entries, {chars:.0f} chars, "
            f"{relevant:.0%} relevant", f"{rate:,.0f} entries/s", f">= {MATCH_TARGET:,}",
            "ok" if rate >= MATCH_TARGET else "BELOW",
        ])  # fmt: skip

    writer = Writer(1)
    stored = [writer.item() for _ in range(args.big)]
    warm = new_entries(stored, 50, seed=99)
    measured = new_entries(stored, args.entries, seed=42)
    kinds = ["sqlite"] + (["postgresql"] if args.pg else [])
    with tempfile.TemporaryDirectory(prefix="feedbot-bench-") as tmp:
        for kind in kinds:
            results: dict[tuple[str, int], tuple[Timing, str]] = {}
            fills: dict[tuple[str, int], float] = {}
            with ExitStack() as stack:
                dbs = {}
                for size in (args.small, args.big):
                    dbs[size] = stack.enter_context(store(kind, args.pg, Path(tmp), f"{size}"))
                    fills[kind, size] = fill(dbs[size], stored[:size])
                    interleaved({size: dbs[size]}, warm, "warm", pipeline_lookup)
                plan = sqlite_plan(dbs[args.small]) if kind == "sqlite" else "-"
                for size, t in interleaved(dbs, measured, "new", pipeline_lookup).items():
                    results["pipeline", size] = t, plan
            label = f"dedup/new entry, {kind}"
            costs = {}
            for size in (args.small, args.big):
                t, plan = results["pipeline", size]
                n = len(measured)
                costs[size] = t.total / n
                rows.append([
                    label,
                    f"{size:,} stored (filled in {fills[kind, size]:.0f} s): "
                    f"{t.duplicates}/{n // 4} dups found, {t.candidates / n:.0f} cand/entry, "
                    f"lookup plan: {plan}",
                    f"{t.total / n * 1e6:,.0f} µs",
                    f"lookup+candidate keys {t.lookup / n * 1e6:.0f} + keys&decide {t.decide / n * 1e6:.0f} "
                    f"+ writes {t.insert / n * 1e6:.0f} µs", "",
                ])  # fmt: skip
            ratio = costs[args.big] / costs[args.small]
            rows.append([
                label, f"ratio {args.big:,} / {args.small:,} stored", f"{ratio:.2f}x",
                f"<= {RATIO_TARGET}x", "ok" if ratio <= RATIO_TARGET else "ABOVE",
            ])  # fmt: skip
    print_table(rows, ["measurement", "setting", "result", "target / detail", ""])


def print_table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
