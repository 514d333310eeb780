"""The positions list read, built once per combination of filters (building a select and its cache
key costs more than running it), with bound parameters.

Two forms of one page, newest first, with the total as `count(*) over ()` (windows run before
LIMIT, so one statement carries both):
- `rows`: the response fields in `schemas.LIST_FIELDS` order, money already as its JSON string;
- `json` (PostgreSQL): the page's items as one compact JSON text, byte for byte what
  `schemas.page_json` makes of the rows, so no row reaches Python. Take-profit lists are the one
  field it cannot render as PositionRead does (free-form JSON through a model): a page holding
  any says so, and is read as rows instead.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Numeric,
    Select,
    String,
    Text,
    bindparam,
    case,
    cast,
    func,
    null,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import literal_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from execution_service.enums import Direction
from execution_service.models import ExecutionPosition
from execution_service.positions.schemas import (
    DERIVED_FIELDS,
    LIST_FIELDS,
    LIST_SOURCES,
    MONEY_FIELDS,
    items_json,
    page_json,
)
from execution_service.principal import Principal

P = ExecutionPosition.__table__.c
_INTS = frozenset(
    {"id", "connection_id", "user_id", "signal_id", "execution_log_id", "exit_refusals"}
)
_TIMES = frozenset({"opened_at", "closed_at", "last_price_update_at", "flagged_at"})


class money_text(FunctionElement[str]):
    """A Money column as the JSON string `decimals.to_str` makes of it, computed by the database:
    `trim_scale(x)::text` on PostgreSQL (positional digits, no trailing fractional zeros); on
    SQLite the stored text, which Money wrote with to_str."""

    type = String()
    inherit_cache = True


@compiles(money_text)
def _money_text(element: money_text, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(money_text, "postgresql")
def _money_text_pg(element: money_text, compiler: SQLCompiler, **kw: Any) -> str:
    return f"trim_scale({compiler.process(element.clauses, **kw)})::text"


def _column(field: str) -> Any:
    return P[LIST_SOURCES.get(field, field)]


def _sql(text: str) -> ColumnElement[str]:
    """A constant string, inline (not a bound parameter)."""
    return literal_column("'" + text.replace("'", "''") + "'", Text)


def _cat(*parts: ColumnElement[Any]) -> ColumnElement[str]:
    """`a || b || ...`: NULL if any part is (unlike concat()). The built-in operator, not
    `.op("||")`: a custom operator is hashed in Python each time the statement's cache key is
    looked up, that is on every execution."""
    out: ColumnElement[str] = type_coerce(parts[0], Text)
    for part in parts[1:]:
        out = out + part
    return out


def _trailing_level() -> ColumnElement[Any]:
    """`rules.trailing_level` from the high-water mark (the entry before the first mark), exact:
    `x * 0.01` multiplies (NUMERIC keeps every digit), where `x / 100` would round to the
    division's scale. NULL without a trailing stop."""
    best = func.coalesce(P.best_price, P.entry_price)
    pct = P.trailing_stop_percent
    hundred = literal_column("100", Numeric())
    away = case((P.direction == Direction.buy, hundred - pct), else_=hundred + pct)
    return best * away * literal_column("0.01", Numeric())


def _json_value(field: str) -> ColumnElement[str]:
    """One field as pydantic writes it in JSON (NULL for null, coalesced by the caller)."""
    if field == "trailing_stop_price":
        return _cat(_sql('"'), money_text(_trailing_level()), _sql('"'))
    if field == "return_on_margin":  # `schemas.return_on_margin`: a product, exact
        return _cat(_sql('"'), money_text(P.pnl_percentage * P.leverage), _sql('"'))
    column = _column(field)
    if field in MONEY_FIELDS:
        return _cat(_sql('"'), money_text(column), _sql('"'))
    if field in _INTS:
        return cast(column, Text)
    if field in _TIMES:
        # pydantic: 2026-01-02T03:04:05Z, and .ffffff only when there are microseconds.
        utc = func.timezone(_sql("UTC"), column)
        fraction = case(
            (func.date_trunc(_sql("second"), column) == column, _sql("")),
            else_=func.to_char(utc, _sql(".US")),
        )
        return _cat(
            _sql('"'), func.to_char(utc, _sql('YYYY-MM-DD"T"HH24:MI:SS')), fraction, _sql('Z"')
        )
    if field == "take_profits":
        return _sql("null")  # a page with take profits is read as rows (see the module doc)
    return cast(func.to_json(column), Text)  # strings: quoted and escaped


def _has_take_profits() -> ColumnElement[bool]:
    # The JSON column holds JSON null (not SQL NULL) for "none".
    return func.coalesce(func.json_typeof(P.take_profits), _sql("null")) != _sql("null")


def _json_item() -> ColumnElement[str]:
    parts: list[ColumnElement[Any]] = []
    for n, field in enumerate(LIST_FIELDS):
        parts.append(_sql(("," if n else "{") + f'"{field}":'))
        parts.append(func.coalesce(_json_value(field), _sql("null")))
    parts.append(_sql("}"))
    return func.concat(*parts)


@functools.cache
def statements(
    owned: bool, status: bool, connection: bool, symbol: bool
) -> tuple[Select[Any], Select[Any], Select[Any]]:
    """(rows, json, count) for one combination of filters. Parameters: user_id (`owned`: the
    principal's scope for a user key), status, connection_id, symbol, limit, offset."""
    where = []
    if owned:
        where.append(P.user_id == bindparam("user_id"))
    if status:
        where.append(P.status == bindparam("status"))
    if connection:
        where.append(P.execution_connection_id == bindparam("connection_id"))
    if symbol:
        where.append(P.symbol == bindparam("symbol"))

    def page(*columns: Any) -> Select[Any]:
        return (
            select(*columns, func.count().over().label("total"))
            .where(*where)
            .order_by(P.id.desc())
            .limit(bindparam("limit"))
            .offset(bindparam("offset"))
        )

    rows = page(*(_list_column(field) for field in LIST_FIELDS))
    inner = page(P.id, _json_item().label("item"), _has_take_profits().label("tps")).subquery()
    json = select(
        func.string_agg(inner.c.item, aggregate_order_by(_sql(","), inner.c.id.desc())),
        func.max(inner.c.total),
        func.bool_or(inner.c.tps),
    )
    count = select(func.count()).select_from(ExecutionPosition.__table__).where(*where)
    return rows, json, count


def _list_column(field: str) -> ColumnElement[Any]:
    if field in DERIVED_FIELDS:
        return null().label(field)  # computed from the row by `schemas.position_item`
    column = _column(field)
    return (money_text(column) if field in MONEY_FIELDS else column).label(field)


class PositionListing:
    """The positions list on the autocommit reader: bound to a connection, not a session (one
    statement per page, no transaction around it)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def page(
        self, principal: Principal, filters: dict[str, Any], limit: int, offset: int
    ) -> bytes:
        """`Page[PositionRead]` as JSON bytes: one statement, a second only for a page with
        take profits (PostgreSQL) or past the end. `filters`: status, connection_id, symbol."""
        status, connection_id, symbol = (
            filters["status"],
            filters["connection_id"],
            filters["symbol"],
        )
        rows_stmt, json_stmt, count_stmt = statements(
            principal.is_user, status is not None, connection_id is not None, symbol is not None
        )
        params = {
            "user_id": principal.user_id,
            "status": status,
            "connection_id": connection_id,
            "symbol": symbol,
            "limit": limit,
            "offset": offset,
        }
        conn = self.conn
        if conn.dialect.name == "postgresql":
            items, total, take_profits = (await conn.execute(json_stmt, params)).one()
            if items is None:
                total = 0 if offset == 0 else await conn.scalar(count_stmt, params)
                return items_json(None, total or 0, limit, offset)
            if not take_profits:
                return items_json(items, total, limit, offset)
        rows = (await conn.execute(rows_stmt, params)).all()
        if rows:
            return page_json(rows, rows[0][-1], limit, offset)
        total = 0 if offset == 0 else await conn.scalar(count_stmt, params)
        return page_json(rows, total or 0, limit, offset)
