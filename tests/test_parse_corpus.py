"""Every file of the shared corpus, driven by its INDEX.tsv: expected entries or a clear refusal.

Each file is parsed in a worker process with a time limit and an address-space limit, so a
hang or an entity bomb fails its own case instead of stalling or exhausting the suite.
"""

from __future__ import annotations

import csv
import html
import multiprocessing
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.pool import Pool
from pathlib import Path

import pytest

from feedbot.errors import ParseError
from feedbot.poll.feeddata import FeedData
from feedbot.poll.parse import parse_feed
from tests.loopback import LoopbackServer

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "feeds"
BASE_URL = "http://feeds.example.com/corpus/"
SECONDS_PER_FILE = 20
MEMORY_LIMIT = 2 * 1024**3
# Formats the INDEX gives to documents that are no feed at all.
NOT_FEED_FORMATS = {"xml", "html", "none"}
# Local file text (/etc/passwd, boot.ini) or expanded entities must never show up in a field.
LEAKS = ("root:x:0:0", "[boot loader]", "lollollol", "1234567890123456789012345678901234567890")


@dataclass(frozen=True)
class Row:
    file: str
    format: str
    wellformed: str
    bozo: str
    counts: frozenset[int] | None  # acceptable entry counts; None if the INDEX gives none
    title: str
    link: str
    id: str
    date: str


def read_index(path: Path) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [
        Row(
            file=r["file"],
            format=r["format"],
            wellformed=r["xml_wellformed"],
            bozo=r["feedparser_bozo"],
            counts=frozenset(int(n) for n in re.findall(r"\d+", r["expected_entries"])) or None,
            title=r["first_title"],
            link=r["first_link"],
            id=r["first_id"],
            date=r["first_date_utc"],
        )
        for r in rows
    ]


ROWS = read_index(CORPUS / "INDEX.tsv") if (CORPUS / "INDEX.tsv").is_file() else []


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def parse_file(path: str) -> FeedData | str:
    """Worker: the parsed feed, or the refusal message."""
    body = Path(path).read_bytes()
    try:
        return parse_feed(body, {}, BASE_URL + Path(path).name)
    except ParseError as exc:
        return f"ParseError: {exc.message}"


@pytest.fixture(scope="module")
def pool(corpus_dir: Path) -> Iterator[Pool]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, initializer=_limit_memory) as workers:
        yield workers


@pytest.fixture(scope="module")
def loopback() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server
    assert server.requests == []  # nothing in the corpus made the parser fetch anything


def loose(text: str) -> str:
    """Compare titles by their visible characters only (markup, entities, spacing aside)."""
    text = re.sub(r"<[^>]*>", "", html.unescape(html.unescape(text)))
    return unicodedata.normalize("NFC", re.sub(r"\s+", "", text))


def expected_link(row: Row) -> str | None:
    if not row.link.startswith(("http://", "https://")) and row.link == row.id:
        return None  # the INDEX shows feedparser copying a non-URL id into the link
    return row.link


def refusal_expected(row: Row, body: bytes) -> bool:
    return row.format in NOT_FEED_FORMATS or b"<!ENTITY" in body  # entity declarations: policy


@pytest.mark.parametrize(
    "row",
    ROWS or [pytest.param(None, marks=pytest.mark.skip(reason=f"{CORPUS} is absent"))],
    ids=[r.file for r in ROWS] or ["absent"],
)
def test_corpus_file(row: Row, corpus_dir: Path, pool: Pool, loopback: LoopbackServer) -> None:
    path = corpus_dir / row.file
    body = path.read_bytes()
    try:
        result = pool.apply_async(parse_file, (str(path),)).get(timeout=SECONDS_PER_FILE)
    except multiprocessing.TimeoutError:
        pool.terminate()
        pytest.fail(f"{row.file}: no result within {SECONDS_PER_FILE}s")
    if isinstance(result, str):
        assert result.startswith("ParseError: ")
        assert result.split(": ", 1)[1].startswith(("not a feed: ", "unsafe document refused: "))
        may_refuse = row.wellformed == "False" and row.counts is not None and 0 in row.counts
        assert refusal_expected(row, body) or may_refuse, result
        return
    assert not refusal_expected(row, body), f"{row.file} should have been refused"
    texts = [result.title, *(t for e in result.entries for t in (e.title, e.summary, e.content))]
    leaked = {leak for leak in LEAKS if leak.encode() not in body for t in texts if leak in t}
    assert not leaked  # text that the document itself does not hold came from elsewhere
    if row.counts is not None:
        assert len(result.entries) in row.counts
    if not result.entries:
        return
    first = result.entries[0]
    if row.title:
        assert loose(first.title) == loose(row.title)
    link = expected_link(row)
    if link is None and row.link:
        assert first.link is None
    elif link and link.startswith(("http://", "https://")):
        assert first.link == link
    elif link:
        assert first.link is not None
        assert first.link.startswith(("http://", "https://"))
        assert first.link.endswith(link.lstrip("/"))
    if row.date:
        stamps = {d.strftime("%Y-%m-%dT%H:%M:%SZ") for d in (first.published, first.updated) if d}
        assert row.date in stamps
