"""The one place where SQL differs between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, cast, func
from sqlalchemy.dialects import postgresql, sqlite

HAMMING_FUNCTION = "feedbot_hamming"  # registered on every SQLite connection (store/db.py)
_MASK64 = (1 << 64) - 1


def hamming64(a: int | None, b: int | None) -> int | None:
    """Bits that differ between two 64-bit hashes stored as signed integers."""
    if a is None or b is None:
        return None
    return ((a ^ b) & _MASK64).bit_count()


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
    return func.feedbot_hamming(column, other)


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
