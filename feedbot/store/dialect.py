"""The one place where SQL differs between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, Table, case, cast, func, literal
from sqlalchemy.dialects import postgresql, sqlite

# registered on every SQLite connection (store/db.py): ``int.bit_count`` itself, a C
# function that SQLite calls without a Python frame
POPCOUNT_FUNCTION = "feedbot_popcount"
_LOW63 = (1 << 63) - 1


def signed64(value: int) -> int:
    """An unsigned 64-bit hash as the signed value a BIGINT column holds."""
    return value - (1 << 64) if value >= (1 << 63) else value


def hamming(
    dialect: str, column: ColumnElement[int], other: ColumnElement[int]
) -> ColumnElement[int]:
    """SQL for the Hamming distance between two signed 64-bit hashes, so that rows which
    cannot be near-duplicates are filtered in the database, never sent to Python."""
    if dialect == "postgresql":  # bit_count(bit) since PostgreSQL 14
        return func.bit_count(cast(column.op("#")(other), postgresql.BIT(64)))
    # SQLite has no XOR: a | b minus a & b is the same bits, and never overflows. The sign
    # bit is counted apart, so that int.bit_count only ever sees a non-negative value
    # (of a negative int it counts the bits of its magnitude). SQLite evaluates this for
    # every row a band key finds: about a third cheaper than a Python function.
    xor = column.op("|")(other) - column.op("&")(other)
    low = func.feedbot_popcount(xor.op("&")(literal(_LOW63, BigInteger)), type_=BigInteger)
    return low + case((xor < 0, 1), else_=0)


def insert_ignore(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], conflict: Sequence[str]
) -> int:
    """Insert *rows*, silently skipping those that collide on the *conflict* columns.

    Returns how many rows were inserted.
    """
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(table)
        .on_conflict_do_nothing(index_elements=list(conflict))
        .returning(table.c[conflict[0]])
    )
    # RETURNING counts exactly what was inserted on both backends (rowcount does not)
    return sum(len(conn.execute(stmt, row).all()) for row in rows)


STORY_LOCK = 0x66656564  # "feed": one advisory lock id for story deduplication


def lock_stories(conn: Connection) -> None:
    """Serialise "is this story new? then insert it" across processes until commit.

    Without it two transactions polling two feeds of the same story both find no
    candidate and both insert. SQLite needs nothing: ``BEGIN IMMEDIATE`` already lets one
    writer in at a time. PostgreSQL takes a transaction-scoped advisory lock.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({STORY_LOCK})")
