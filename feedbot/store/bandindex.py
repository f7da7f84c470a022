"""The SimHash band keys of stored stories, mirrored in a process's memory.

A new story's near-duplicate candidates are the stored stories that share one of its band
keys, were published within the window around it, and have a SimHash within a few bits of
its own. Band keys are kept in ``story_log`` alone, one row a story (they were once eight
rows of ``story_keys`` each, the most written and most read rows under the write lock).
Every process that deduplicates keeps every band key of the log from a date on (its
*floor*) in a dict, and before each lookup reads the log rows written since it last
looked, by any process, inside the transaction that then decides and writes (the story
lock serialises those, so nothing is missed).

The log is only ever added to: the mirror never has to forget a story, except the ones of
a transaction that did not commit, which ``reset`` drops (with everything: the next lookup
reads the log again). A lookup whose window starts before the floor lowers it (reading
that stretch of the log), down to ``REACH`` before the newest story; older windows read
the log by date (``entries.story_candidates``). Stories that fall more than ``REACH``
behind the newest one are dropped now and then, so memory follows the stories of the
last year.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from feedbot.relevance.similarity import band_keys
from feedbot.store.schema import story_log

REACH = timedelta(days=366)  # how far before the newest story the mirror may reach
START = timedelta(days=30)  # how far it reaches at first
_PRUNE_EVERY = timedelta(days=1)  # of stories' dates, between two drops of old stories

_Story = tuple[str, int, datetime]  # (article id, unsigned SimHash, published)
_COLUMNS = (story_log.c.seq, story_log.c.article_id, story_log.c.simhash, story_log.c.published,
            story_log.c.bands)  # fmt: skip
_SINCE = select(*_COLUMNS).where(story_log.c.seq > bindparam("seq")).order_by(story_log.c.seq)
_FROM = select(*_COLUMNS).where(
    story_log.c.seq <= bindparam("seq"), story_log.c.published >= bindparam("since")
)
_BETWEEN = _FROM.where(story_log.c.published < bindparam("until"))
_HEAD = select(func.max(story_log.c.seq), func.max(story_log.c.published))


def logged_bands(simhash: int, mask: int) -> list[str]:
    """The band keys a ``story_log`` row stands for: bit i of *mask* is "b{i}:...", a slice
    of *simhash* (as stored, signed)."""
    return [k for i, k in enumerate(band_keys(simhash % (1 << 64))) if mask >> i & 1]


class BandIndex:
    """Band key → stored stories, from ``floor`` on; one per process, not thread-safe (its
    users hold the database's story lock)."""

    def __init__(self, reach: timedelta = REACH, start: timedelta = START) -> None:
        self.reach = reach
        self.start = start
        self._bands: dict[str, list[_Story]] = {}
        self._seq: int | None = None  # the last log row read; None: nothing read yet
        self._floor: datetime | None = None  # every story published from then on is here
        self._newest: datetime | None = None  # the newest story's date, at most now

    @property
    def entries(self) -> int:
        """Band entries held: a story counts once per band key it has."""
        return sum(map(len, self._bands.values()))

    def reset(self) -> None:
        """Forget everything (after a transaction that read the log did not commit)."""
        self._bands.clear()
        self._seq = self._floor = self._newest = None

    def sync(self, conn: Connection, now: datetime) -> None:
        """Read the log rows written since the last call (the first call reads the last
        ``start`` before the newest story). Call it holding the story lock, in the
        transaction that then looks up and writes."""
        if self._seq is None:
            seq, newest = conn.execute(_HEAD).one()
            self._seq = seq or 0
            self._newest = min(newest or now, now)  # a story dated in the future counts as now
            self._floor = self._newest - self.start
            self._add(conn.execute(_FROM, {"seq": self._seq, "since": self._floor}), now)
            return
        self._add(conn.execute(_SINCE, {"seq": self._seq}), now)
        self._prune()

    def covers(self, conn: Connection, since: datetime) -> bool:
        """Whether every story published from *since* on is here; lowers the floor to it
        (reading that stretch of the log) when it is no more than ``reach`` before the
        newest story."""
        if self._floor is None or self._newest is None:  # not synced yet
            return False
        if since >= self._floor:
            return True
        if since < self._newest - self.reach:
            return False
        rows = conn.execute(_BETWEEN, {"seq": self._seq, "since": since, "until": self._floor})
        self._floor = since
        self._add(rows, self._newest)  # all before the old floor
        return True

    def near(
        self, bands: Sequence[str], simhash: int, since: datetime, until: datetime, bits: int,
        limit: int,
    ) -> list[_Story]:  # fmt: skip
        """Stories sharing one of *bands*, published in [since, until], whose SimHash
        (unsigned) is within *bits* of *simhash*: what a read of the log by date returns,
        at most *limit* (a story once per band it shares)."""
        out: list[_Story] = []
        for key in bands:
            for story in self._bands.get(key, ()):
                if since <= story[2] <= until and (story[1] ^ simhash).bit_count() <= bits:
                    out.append(story)
                    if len(out) >= limit:
                        return out
        return out

    def _add(self, rows: Iterable[Any], now: datetime) -> None:
        """Mirror *rows* of the log from the floor on; a date after *now* counts as now."""
        assert self._seq is not None
        assert self._floor is not None
        assert self._newest is not None
        for seq, article_id, simhash, published, bands in rows:
            self._seq = max(self._seq, seq)
            self._newest = max(self._newest, min(published, now))
            if published < self._floor:
                continue  # before the floor: read from the log by date, as every older story
            story = (article_id, simhash % (1 << 64), published)
            for key in logged_bands(simhash, bands):
                self._bands.setdefault(key, []).append(story)

    def _prune(self) -> None:
        """Drop the stories more than ``reach`` before the newest, once the floor is
        ``_PRUNE_EVERY`` further behind than that."""
        if self._newest is None or self._floor is None:
            return
        if self._newest - self._floor < self.reach + _PRUNE_EVERY:
            return
        floor = self._floor = self._newest - self.reach
        for key, stories in list(self._bands.items()):
            kept = [s for s in stories if s[2] >= floor]
            if kept:
                self._bands[key] = kept
            else:
                del self._bands[key]
