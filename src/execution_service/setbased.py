"""Many rows written in one statement per table: a fan-out's thousands of logs, positions and
events, a paper batch's orders, balances and holdings. On PostgreSQL one INSERT (or UPDATE) over
`unnest` arrays, one array a column, each cast to its column's type; money goes as the text of
each Decimal, cast to NUMERIC by the server (exact, and about 3x cheaper for asyncpg to encode
than a NUMERIC[] of Decimals). On SQLite a multi-row INSERT or an executemany UPDATE. Every row
is a dict of the same columns; no ORM object is involved.

Here, beside `db`, the lowest layer: the domains and the paper venue (`exchanges/`) write such
batches, on a session or on a bare connection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,  # not money: the type the money check excludes
    Numeric,
    Select,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeEngine

from execution_service.db import Money

Rows = Sequence[Mapping[str, Any]]
# A session (the domains' repositories) or the connection of one (the paper venue's batch).
Executor = AsyncSession | AsyncConnection
_TEXTS = ARRAY(Text())


def postgres(db: Executor) -> bool:
    bind = db if isinstance(db, AsyncConnection) else db.get_bind()
    return bind.dialect.name == "postgresql"


def _same(values: list[Any]) -> bool:
    """Every value the first one: the very object (a shared moment, status, None), or an equal
    string (one symbol read from many rows). Not money: 1 and 1.0 are equal, not the same."""
    first = values[0]
    if isinstance(first, str):
        return values.count(first) == len(values)
    return all(v is first for v in values)


def _unnest(
    table: Table, names: Sequence[tuple[str, str]], rows: Rows
) -> tuple[Any, dict[str, ColumnElement[Any]]]:
    """The rows as `unnest($1::type1[], ...) WITH ORDINALITY AS v(name1, ..., n)`, in the order
    given (`v.n`), and each name's value in it: its column of `v`, or one parameter where every
    row has the same value (not encoded, sent and unnested 10,000 times). `names`: (key in the
    rows, the column of `table` whose type it has); the first is always an array."""
    arrays, scalars = [], {}
    for i, (key, column) in enumerate(names):
        kind = table.c[column].type
        values = [r[key] for r in rows]
        if i > 0 and _same(values):
            scalars[key] = cast(bindparam(f"s_{key}", values[0], type_=kind), kind)
        else:
            arrays.append((key, _array(f"a_{key}", kind, values)))
    source: TableValuedAlias = func.unnest(*(a for _, a in arrays)).table_valued(
        *(key for key, _ in arrays), with_ordinality="n"
    )
    v = source.render_derived(name="v")
    columns = {key: v.c[key] for key, _ in arrays} | scalars
    return v, {key: columns[key] for key, _ in names}


def _array(name: str, kind: TypeEngine[Any], values: list[Any]) -> ColumnElement[Any]:
    """`CAST($n AS kind[])`. Money (an exact NUMERIC) is sent as TEXT[] of each Decimal's str,
    `CAST($n::TEXT[] AS NUMERIC[])`: the server parses the very digits; asyncpg's binary NUMERIC
    encoding of a Decimal costs about three times as much. None stays NULL. One dimension, always:
    a JSON value that is itself a list (a take-profit ladder) is one element, not a row of the
    array (SQLAlchemy would otherwise read it as a second dimension and unnest it flat)."""
    many = ARRAY(kind, dimensions=1)
    floating = isinstance(kind, Float)  # not money: a float column keeps its own encoding
    if isinstance(kind, Money) or (isinstance(kind, Numeric) and not floating):
        texts = [
            None if v is None else str(v if type(v) is Decimal else Decimal(v)) for v in values
        ]
        return cast(bindparam(name, texts, type_=_TEXTS), many)
    return cast(bindparam(name, values, type_=many), many)


def source(table: Table, rows: Rows) -> Select[Any]:
    """PostgreSQL: the rows (dicts of the same columns of `table`) as a SELECT, in the order
    given, for an INSERT ... SELECT of the caller's own (an upsert)."""
    v, columns = _unnest(table, [(n, n) for n in rows[0]], rows)
    return select(*columns.values()).order_by(v.c.n)


def any_of(
    db: Executor,
    column: ColumnElement[Any] | QueryableAttribute[Any],
    values: Sequence[Any],
) -> ColumnElement[bool]:
    """`column IN (values)`: on PostgreSQL `= ANY($1)`, one array parameter (a statement with
    thousands of parameters costs its planning each time); a plain IN list on SQLite."""
    if not postgres(db):
        return column.in_(values)
    kind = ARRAY(column.type, dimensions=1)
    return column == any_(cast(bindparam(None, list(values), type_=kind), kind))


async def insert_rows(db: Executor, table: Table, rows: Rows, key: Sequence[str] = ()) -> list[int]:
    """Insert the rows; their new ids, in the order given. The columns a row leaves out take
    their defaults (a callable's evaluated once for all rows on PostgreSQL). `key`: columns
    unique among the rows and in the table; SQLite then matches its RETURNING rows to the rows
    by them, in one multi-row INSERT (without, SQLAlchemy's ordered RETURNING inserts one row a
    statement there)."""
    if not rows:
        return []
    if not postgres(db):
        if key:
            stmt = insert(table).returning(table.c.id, *(table.c[k] for k in key))
            by_key = {tuple(r[1:]): r[0] for r in await db.execute(stmt, list(rows))}
            return [by_key[tuple(row[k] for k in key)] for row in rows]
        stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return list((await db.scalars(stmt, list(rows))).all())
    stmt = insert(table).from_select(list(rows[0]), source(table, rows)).returning(table.c.id)
    # The sequence numbers the rows in the SELECT's order; RETURNING promises no order.
    return sorted((await db.scalars(stmt)).all())


async def insert_many(db: Executor, table: Table, rows: Rows) -> None:
    """Insert the rows, in the order given (their ids follow it), as `insert_rows` does;
    nothing returned."""
    if not rows:
        return
    if not postgres(db):
        await db.execute(insert(table), list(rows))
        return
    await db.execute(insert(table).from_select(list(rows[0]), source(table, rows)))


async def update_rows(db: Executor, table: Table, rows: Rows) -> None:
    """Each row's new values, by id (under `row_id`): one UPDATE ... FROM unnest on PostgreSQL,
    an executemany UPDATE on SQLite."""
    if not rows:
        return
    names = [c for c in rows[0] if c != "row_id"]
    if not postgres(db):
        stmt = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({c: bindparam(c) for c in names})
        )
        await db.execute(stmt, list(rows))
        return
    v, columns = _unnest(table, [("row_id", "id"), *((n, n) for n in names)], rows)
    await db.execute(
        update(table).where(table.c.id == v.c.row_id).values({c: columns[c] for c in names})
    )
