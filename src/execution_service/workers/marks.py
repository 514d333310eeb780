"""Marking open positions to new prices in one set-based statement (PostgreSQL).

One `UPDATE ... FROM (VALUES ...)` writes every open position's price, unrealised PnL, PnL percent
and trailing high-water mark from one row per (price source, symbol), computed in exact NUMERIC
arithmetic; the same statement (a data-modifying CTE) returns only the positions a rule may act
on at that price. Those few are then evaluated in Python by the pure rules, which stay the one
authority: the SQL filter only has to be a superset of what they act on.

SQLite stores Money as text and its arithmetic is floating point, so there the monitor marks
positions in Python (`monitor.mark_in_python`); a test holds the two paths equal.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    String,
    Table,
    and_,
    case,
    column,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    text,
    update,
    values,
)
from sqlalchemy import (
    cast as sql_cast,
)
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.db import Money, UtcDateTime
from execution_service.models import ExecutionConnection, ExecutionPosition
from execution_service.workers.prices import Source

_p = cast(Table, ExecutionPosition.__table__)
_c = cast(Table, ExecutionConnection.__table__)

# A zero of scale 40 added to the dividend makes PostgreSQL divide to at least 40 decimals before
# the PnL percent is rounded to 8 (Python divides to 60 significant digits): both round the same
# quotient.
_SCALE: ColumnElement[Decimal] = literal_column("CAST(0 AS NUMERIC(1000, 40))", Money())
_HALF = literal(Decimal("0.000000005"), Money())
_ONE = literal(Decimal(1), Money())
_HUNDRED = literal(Decimal(100), Money())


def source_columns() -> tuple[ColumnElement[bool], ColumnElement[int]]:
    """(is the source the connection itself, source id): `prices.source_of` in SQL."""
    return _c.c.data_connection_id.is_(None), func.coalesce(_c.c.data_connection_id, _c.c.id)


def _half_even_8(x: ColumnElement[Any]) -> ColumnElement[Any]:
    """round(x, 8) with ties to even, as Decimal.quantize does (PostgreSQL rounds ties away)."""
    t = func.trunc(x, 8)
    even = func.mod(func.abs(t * literal(Decimal(100_000_000), Money())), 2) == 0
    return case((and_(func.abs(x - t) == _HALF, even), t), else_=func.round(x, 8))


def _marked(quotes: dict[tuple[Source, str], tuple[Decimal, datetime]]) -> Any:
    v = (
        values(
            column("is_conn", Boolean),
            column("sid", Integer),
            column("symbol", String),
            column("price", Money()),
            column("at", UtcDateTime()),
            name="v",
        )
        .data(
            [
                (kind == "conn", sid, symbol, price, at)
                for ((kind, sid), symbol), (price, at) in quotes.items()
            ]
        )
        .alias("v")
    )
    is_conn, sid = source_columns()
    buy = _p.c.direction == "buy"
    sign = case((buy, _ONE), else_=-_ONE)
    unit = func.coalesce(_p.c.contract_size, _ONE)
    best = func.coalesce(_p.c.best_price, _p.c.entry_price)
    # The PnL percent is pnl / (entry * quantity * unit) * 100, in which quantity and unit
    # cancel: the same quotient, divided once per row; 0 where there is no notional.
    percent = case(
        (_p.c.entry_price * _p.c.quantity * unit == 0, literal(Decimal(0), Money())),
        else_=((v.c.price - _p.c.entry_price) * sign * _HUNDRED + _SCALE) / _p.c.entry_price,
    )
    # OFFSET 0 keeps this a subquery of its own: each expression is computed once per row, not
    # once per reference in the UPDATE (a flattened subquery would be inlined).
    q = (
        select(
            _p.c.id,
            v.c.price,
            v.c.at,
            ((v.c.price - _p.c.entry_price) * _p.c.quantity * unit * sign).label("upnl"),
            percent.label("x"),
            case((buy, func.greatest(best, v.c.price)), else_=func.least(best, v.c.price)).label(
                "best"
            ),
        )
        .where(
            _p.c.status == "open",
            _c.c.id == _p.c.execution_connection_id,
            is_conn == v.c.is_conn,
            sid == v.c.sid,
            _p.c.symbol == v.c.symbol,
        )
        .offset(0)
        .subquery("q")
    )
    return (
        update(_p)
        .where(_p.c.id == q.c.id, _p.c.status == "open")
        .values(
            current_price=q.c.price,
            pnl=q.c.upnl,
            pnl_percentage=_half_even_8(q.c.x),
            best_price=q.c.best,
            last_price_update_at=q.c.at,
        )
        .returning(_p.c.id, q.c.price, _may_act(q.c.price, q.c.best).label("act"))
        .cte("marked")
    )


def _may_act(price: Any, best: Any) -> ColumnElement[bool]:
    """A superset of what `rules.evaluate` acts on at `price`, with the high-water mark `best`
    already moved by it."""
    buy = _p.c.direction == "buy"
    entry, sl, pct = _p.c.entry_price, _p.c.sl_price, _p.c.trailing_stop_percent

    def against(level: Any) -> ColumnElement[bool]:  # a stop hit: at or through it
        return case((buy, price <= level), else_=price >= level)

    def towards(level: Any) -> ColumnElement[bool]:  # a target reached: at or beyond it
        return case((buy, price >= level), else_=price <= level)

    # price <= best * (1 - pct/100) for a long, multiplied by 100 so nothing is divided.
    trailing = case(
        (buy, price * _HUNDRED <= best * (_HUNDRED - pct)),
        else_=price * _HUNDRED >= best * (_HUNDRED + pct),
    )
    sign = case((buy, _ONE), else_=-_ONE)
    rr = _p.c.break_even_trigger_rr
    break_even = and_(
        rr.is_not(None),
        not_(_p.c.break_even_done),
        sl.is_not(None),
        (entry - sl) * sign > 0,
        (price - entry) * sign >= (entry - sl) * sign * rr,
    )
    levels = and_(
        _p.c.take_profits.is_not(None), sql_cast(_p.c.take_profits, String) != "null"
    )  # any partial take-profit level: the rules look at each one
    return func.coalesce(
        or_(
            and_(sl.is_not(None), against(sl)),
            and_(_p.c.tp_price.is_not(None), towards(_p.c.tp_price)),
            and_(pct.is_not(None), trailing),
            levels,
            break_even,
        ),
        False,
    )


async def mark_in_sql(
    session: AsyncSession, quotes: dict[tuple[Source, str], tuple[Decimal, datetime]]
) -> dict[int, Decimal]:
    """Write the new marks; return {position id: its price} for the positions a rule may act on.
    The caller commits."""
    if not quotes:
        return {}
    marked = _marked(quotes)
    # Right after a burst of opens the planner's statistics can say "one open position", and its
    # nested loop then reads every position once per (source, symbol) pair; a hash join reads
    # them once. Local to this transaction.
    await session.execute(text("SET LOCAL enable_nestloop = off"))
    rows = await session.execute(select(marked.c.id, marked.c.price).where(marked.c.act))
    return {pid: price for pid, price in rows}
