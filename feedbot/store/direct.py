"""The write lock's hottest statements, run at the driver's pace.

``conn.execute(insert(table), rows)`` makes SQLAlchemy build every row's parameters again
(``construct_params``, then each column's processors, through several calls a value), and
every ``conn.execute`` of a select derives the statement's cache key and wraps each row it
reads; a first poll writes about 130 rows a feed and runs a candidate query for each new
story, all inside SQLite's write lock. Here the same Core statement is compiled once per
dialect (and column set), values go through the same processors of the columns' types
(so JSON, booleans and ``UTCDateTime`` are written and read exactly as ``conn.execute``
does), and the driver gets plain tuples (or dicts, for drivers with named parameters)
through ``exec_driver_sql``: the connection's own transaction, events and error wrapping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Select, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

_Processor = Callable[[Any], Any]
_NOTHING = object()


@dataclass(frozen=True, slots=True)
class _Insert:
    sql: str
    keys: tuple[str, ...]  # row keys, in the order of the statement's parameters
    processors: tuple[tuple[int, _Processor], ...]  # (position, processor)
    defaults: tuple[tuple[str, Any], ...]  # columns the rows leave out: scalar defaults
    named: bool  # the driver takes a dict per row (else a tuple)


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert *rows* (mappings with the same keys, column names of *table*) in one
    executemany. Columns the rows leave out get their scalar Python default, if any, as
    with ``insert(table)``; a column with another kind of default raises ``ValueError``."""
    if not rows:
        return
    plan = _insert_plan(conn.dialect, table, tuple(rows[0]))
    if plan.defaults:
        defaults = dict(plan.defaults)
        rows = [{**row, **defaults} for row in rows]
    pick = itemgetter(*plan.keys)
    if len(plan.keys) == 1:
        values = [[pick(row)] for row in rows]
    else:
        values = [list(pick(row)) for row in rows]
    for position, process in plan.processors:
        # rows often share one object (a poll's "now", a story's date): processed once
        last: Any = _NOTHING
        done: Any = None
        for value in values:
            if value[position] is not last:
                last = value[position]
                done = process(last)
            value[position] = done
    params: list[Any]
    if plan.named:
        params = [dict(zip(plan.keys, value, strict=True)) for value in values]
    else:
        params = [tuple(value) for value in values]
    conn.exec_driver_sql(plan.sql, params)


@lru_cache(maxsize=64)
def _insert_plan(dialect: Dialect, table: Table, given: tuple[str, ...]) -> _Insert:
    defaults = []
    for column in table.columns:
        if column.key in given or column.default is None:
            continue
        if not column.default.is_scalar:
            raise ValueError(f"{table.name}.{column.key}: only scalar defaults are supported")
        defaults.append((column.key, column.default.arg))  # type: ignore[attr-defined]
    keys = (*given, *(k for k, _ in defaults))
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
    named = not compiled.positional
    order = keys if named else tuple(compiled.positiontup or ())
    if sorted(order) != sorted(keys):
        raise ValueError(f"{table.name}: parameters {order} do not match columns {keys}")
    binds = [_bind(table.c[key].type, dialect) for key in order]
    processors = tuple((n, process) for n, process in enumerate(binds) if process is not None)
    return _Insert(compiled.string, order, processors, tuple(defaults), named)


@dataclass(frozen=True, slots=True)
class _Select:
    compiled: SQLCompiler
    sql: str
    names: tuple[str, ...]  # parameter names, in the order the statement takes them
    binds: tuple[_Processor | None, ...]
    named: bool
    columns: tuple[tuple[int, _Processor], ...]  # (position, result processor)


def select_rows(
    conn: Connection, statement: Select[Any], params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """The rows of *statement* (built once, without expanding parameters) as tuples, each
    value read through its column type's result processor."""
    plan = _select_plan(conn.dialect, statement)
    given = plan.compiled.construct_params(params)  # the statement's own names for them
    values = [
        given[name] if process is None else process(given[name])
        for name, process in zip(plan.names, plan.binds, strict=True)
    ]
    bound: Any = dict(zip(plan.names, values, strict=True)) if plan.named else tuple(values)
    rows = conn.exec_driver_sql(plan.sql, bound).all()  # one fetch, not one call a row
    if not plan.columns:
        return [tuple(row) for row in rows]
    out = []
    for row in rows:
        cells = list(row)
        for position, process in plan.columns:
            cells[position] = process(cells[position])
        out.append(tuple(cells))
    return out


@lru_cache(maxsize=64)
def _select_plan(dialect: Dialect, statement: Select[Any]) -> _Select:
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    if any(b.expanding for b in compiled.binds.values()):
        raise ValueError("select_rows takes no expanding parameters")
    named = not compiled.positional
    names = tuple(compiled.binds) if named else tuple(compiled.positiontup or ())
    binds = tuple(_bind(compiled.binds[name].type, dialect) for name in names)
    columns = []
    for position, column in enumerate(statement.selected_columns):
        process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None:
            columns.append((position, process))
    return _Select(compiled, compiled.string, names, binds, named, tuple(columns))


def _bind(type_: TypeEngine[Any], dialect: Dialect) -> _Processor | None:
    """The processor ``conn.execute`` applies to a value of *type_* bound for *dialect*."""
    return type_.dialect_impl(dialect).bind_processor(dialect)
