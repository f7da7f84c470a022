"""``store/direct.py`` writes and reads exactly what ``conn.execute`` does, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    create_engine,
    insert,
    select,
)

from feedbot.store.db import make_engine
from feedbot.store.direct import insert_rows, select_rows
from feedbot.store.schema import UTCDateTime

_meta = MetaData()
items = Table(
    "direct_items",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("hash", BigInteger, nullable=False),
    Column("flag", Boolean, nullable=False, default=True),
    Column("note", Text, default="none"),
)
stamped = Table(
    "direct_stamped",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, default=lambda: datetime.now(UTC)),
)

_SHANGHAI = ZoneInfo("Asia/Shanghai")


def _rows(first_id: int) -> list[dict[str, object]]:
    return [
        {
            "id": first_id + n,
            "at": datetime(2026, 7, 1, 8, n, 5, n * 1001, tzinfo=_SHANGHAI if n % 2 else UTC),
            "tags": ["阿里巴巴", f"t{n}", {"n": n}],
            "hash": -(2**63) + n if n % 2 else 2**63 - 1 - n,
        }
        for n in range(5)
    ]


def test_insert_rows_and_select_rows_match_sqlalchemy(db_url: str) -> None:
    engine = make_engine(db_url)
    _meta.create_all(engine)
    near = (
        select(items.c.id, items.c.at, items.c.tags, items.c.flag, items.c.note)
        .where(items.c.at.between(bindparam("since"), bindparam("until")))
        .where(items.c.hash != bindparam("hash", type_=BigInteger))
        .order_by(items.c.id)
        .limit(bindparam("limit"))
    )
    params = {
        "since": datetime(2026, 7, 1, 0, 2, tzinfo=UTC),
        "until": datetime(2026, 7, 1, 8, 3, tzinfo=UTC),
        "hash": 2**63 - 1,
        "limit": 3,
    }
    try:
        with engine.begin() as conn:
            conn.execute(insert(items), _rows(0))  # SQLAlchemy's way: ids 0-4
            insert_rows(conn, items, _rows(100))  # the direct way: ids 100-104
            raw = conn.exec_driver_sql(
                "SELECT id, at, tags, hash, flag, note FROM direct_items ORDER BY id"
            ).all()
            typed = conn.execute(select(items).order_by(items.c.id)).all()
            direct = select_rows(conn, near, params)
            expected = [tuple(r) for r in conn.execute(near, params)]
    finally:
        _meta.drop_all(engine)
        engine.dispose()
    by_sqlalchemy, by_direct = raw[:5], raw[5:]
    assert [r[1:] for r in by_direct] == [r[1:] for r in by_sqlalchemy]  # stored alike
    assert [r[1:] for r in typed[5:]] == [r[1:] for r in typed[:5]]
    assert typed[6].at == datetime(2026, 7, 1, 0, 1, 5, 1001, tzinfo=UTC)
    assert typed[6].at.tzinfo is UTC
    assert typed[5].flag is True  # scalar defaults applied
    assert typed[5].note == "none"
    # 1 and 4 fall outside the range (UTC 00:01 and 08:04), 0 has the excluded hash,
    # and the limit leaves out 103
    assert [r[0] for r in expected] == [2, 3, 102]
    assert direct == expected
    assert all(r[1].tzinfo is UTC for r in direct)


def test_insert_rows_refuses_what_it_cannot_write_as_sqlalchemy_would(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'direct.sqlite3'}")
    _meta.create_all(engine)
    try:
        with engine.begin() as conn:
            with pytest.raises(ValueError, match=r"direct_stamped\.at: only scalar defaults"):
                insert_rows(conn, stamped, [{"id": 1}])
            with pytest.raises(ValueError, match="naive datetime"):
                insert_rows(conn, stamped, [{"id": 1, "at": datetime(2026, 1, 1)}])
            insert_rows(conn, stamped, [])  # nothing to do
            insert_rows(conn, stamped, [{"id": 2, "at": datetime(2026, 1, 1, tzinfo=UTC)}])
            stored = conn.execute(select(stamped.c.at)).scalar_one()
    finally:
        engine.dispose()
    assert stored == datetime(2026, 1, 1, tzinfo=UTC)


def test_insert_rows_processes_each_row_s_own_value(tmp_path: Path) -> None:
    """Rows that share one value (a poll's "now") are processed once; the others still
    get their own."""
    engine = make_engine(f"sqlite:///{tmp_path / 'direct.sqlite3'}")
    _meta.create_all(engine)
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    other = datetime(2026, 3, 1, 20, tzinfo=_SHANGHAI)
    given = [now, now, other, now, datetime(2026, 3, 1, 12, tzinfo=UTC)]
    try:
        with engine.begin() as conn:
            insert_rows(conn, stamped, [{"id": n, "at": at} for n, at in enumerate(given)])
            stored = conn.execute(select(stamped.c.at).order_by(stamped.c.id)).scalars().all()
    finally:
        engine.dispose()
    assert stored == given
    assert stored[2] == datetime(2026, 3, 1, 12, tzinfo=UTC)
