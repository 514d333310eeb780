"""Marking open positions to new prices: one set-based statement on PostgreSQL, per-row
updates (computed in Python by `positions.book.mark`) on SQLite.

On PostgreSQL one `UPDATE ... FROM unnest(...)` writes every open position's price, unrealised
PnL, PnL percent and trailing high-water mark from one row per (price source, symbol), computed
in exact NUMERIC arithmetic; the same statement (a data-modifying CTE) returns only the
positions a rule may act on at that price. Those few are then evaluated in Python by the pure
rules, which stay the one authority: the SQL filter only has to be a superset of what they act
on.

SQLite stores Money as text and its arithmetic is floating point, so there the positions are
marked in Python (`positions.watch`); property tests hold the SQL marking equal to
`positions.book.mark` and `_may_act` a superset of `positions.rules.evaluate`.
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
    bindparam,
    case,
    cast as sql_cast,
    column,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.db import Money, UtcDateTime
from execution_service.enums import Direction, PositionStatus
from execution_service.market_data.sources import Quote, Source, SourceKind
from execution_service.models import ExecutionConnection, ExecutionPosition

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
    """(is the source the connection itself, source id): `sources.source_of` in SQL."""
    return _c.c.data_connection_id.is_(None), func.coalesce(_c.c.data_connection_id, _c.c.id)


def _half_even_8(x: ColumnElement[Any]) -> ColumnElement[Any]:
    """round(x, 8) with ties to even, as Decimal.quantize does (PostgreSQL rounds ties away)."""
    t = func.trunc(x, 8)
    even = func.mod(func.abs(t * literal(Decimal(100_000_000), Money())), 2) == 0
    return case((and_(func.abs(x - t) == _HALF, even), t), else_=func.round(x, 8))


_QUOTE_COLUMNS = ("is_conn", "sid", "symbol", "price", "at", "low", "high")


def _quotes_table(quotes: dict[tuple[Source, str], Quote]) -> Any:
    """The quotes as a table of one row per (source, symbol): `unnest` over one array parameter
    per column, so the statement is compiled (and prepared) once whatever the number of rows;
    1,000 accounts priced by their venue are 2,000 rows a tick. The NUMERIC arrays are cast
    explicitly: exact digits, never a float in between."""
    rows = [
        (kind == SourceKind.conn, sid, symbol, q.price, q.at, q.low, q.high)
        for ((kind, sid), symbol), q in quotes.items()
    ]
    cols = list(zip(*rows, strict=True))
    types: list[Any] = [Boolean(), Integer(), String(), Money(), UtcDateTime(), Money(), Money()]
    arrays = [
        sql_cast(bindparam(f"v_{name}", list(col), type_=ARRAY(t)), ARRAY(t))
        for name, col, t in zip(_QUOTE_COLUMNS, cols, types, strict=True)
    ]
    return (
        func.unnest(*arrays)
        .table_valued(*(column(n, t) for n, t in zip(_QUOTE_COLUMNS, types, strict=True)))
        .render_derived(name="v")
    )


def _priced(quotes: dict[tuple[Source, str], Quote]) -> Any:
    """Every open position joined to its quote, with its new mark computed once per row."""
    v = _quotes_table(quotes)
    is_conn, sid = source_columns()
    buy = _p.c.direction == Direction.buy
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
    return (
        select(
            _p.c.id,
            v.c.price,
            v.c.at,
            ((v.c.price - _p.c.entry_price) * _p.c.quantity * unit * sign).label("upnl"),
            percent.label("x"),
            # The high-water mark moves to the best the path reached, not only its last price.
            case((buy, func.greatest(best, v.c.high)), else_=func.least(best, v.c.low)).label(
                "best"
            ),
            v.c.low,
            v.c.high,
            v.c.is_conn,
            v.c.sid,
            _p.c.last_price_update_at.label("marked_at"),
        )
        .where(
            _p.c.status == PositionStatus.open,
            _c.c.id == _p.c.execution_connection_id,
            is_conn == v.c.is_conn,
            sid == v.c.sid,
            _p.c.symbol == v.c.symbol,
        )
        .offset(0)
        .subquery("q")
    )


def _marked(quotes: dict[tuple[Source, str], Quote]) -> Any:
    q = _priced(quotes)
    return (
        update(_p)
        .where(_p.c.id == q.c.id, _p.c.status == PositionStatus.open)
        .values(
            current_price=q.c.price,
            pnl=q.c.upnl,
            pnl_percentage=_half_even_8(q.c.x),
            best_price=q.c.best,
            last_price_update_at=q.c.at,
        )
        .returning(
            _p.c.id,
            q.c.marked_at,
            q.c.is_conn,
            q.c.sid,
            _may_act(q.c.low, q.c.high, q.c.best).label("act"),
        )
        .cte("marked")
    )


def _may_act(low: Any, high: Any, best: Any) -> ColumnElement[bool]:
    """A superset of what `rules.evaluate_path` acts on for a path between `low` and `high`,
    with the high-water mark `best` already moved by the whole path: each rule is monotonic in
    the price, so judging it at the path's extreme against the position (stops) or in its
    favour (targets, break-even) finds every position it may act on."""
    buy = _p.c.direction == Direction.buy
    entry, sl, pct = _p.c.entry_price, _p.c.sl_price, _p.c.trailing_stop_percent

    def against(level: Any) -> ColumnElement[bool]:  # a stop hit: at or through it
        return case((buy, low <= level), else_=high >= level)

    def towards(level: Any) -> ColumnElement[bool]:  # a target reached: at or beyond it
        return case((buy, high >= level), else_=low <= level)

    # low <= best * (1 - pct/100) for a long, multiplied by 100 so nothing is divided.
    trailing = case(
        (buy, low * _HUNDRED <= best * (_HUNDRED - pct)),
        else_=high * _HUNDRED >= best * (_HUNDRED + pct),
    )
    sign = case((buy, _ONE), else_=-_ONE)
    rr = _p.c.break_even_trigger_rr
    first_sl = func.coalesce(_p.c.initial_sl_price, sl)  # the risk taken at the open
    break_even = and_(
        rr.is_not(None),
        not_(_p.c.break_even_done),
        first_sl.is_not(None),
        (entry - first_sl) * sign > 0,
        case((buy, high - entry), else_=entry - low) >= (entry - first_sl) * sign * rr,
    )
    liquidation = _p.c.liquidation_price
    levels = and_(
        _p.c.take_profits.is_not(None), sql_cast(_p.c.take_profits, String) != "null"
    )  # any partial take-profit level: the rules look at each one
    return func.coalesce(
        or_(
            and_(liquidation.is_not(None), against(liquidation)),
            and_(sl.is_not(None), against(sl)),
            and_(_p.c.tp_price.is_not(None), towards(_p.c.tp_price)),
            and_(pct.is_not(None), trailing),
            levels,
            break_even,
        ),
        False,
    )


_PRICE_UPDATE = (
    update(_p)
    .where(_p.c.id == bindparam("pid"), _p.c.status == PositionStatus.open)
    .values(
        current_price=bindparam("cp", type_=Money()),
        pnl=bindparam("upnl", type_=Money()),
        pnl_percentage=bindparam("upct", type_=Money()),
        best_price=bindparam("best", type_=Money()),
        last_price_update_at=bindparam("at", type_=UtcDateTime()),
    )
)
_BREAK_EVEN = (
    update(_p)
    .where(
        _p.c.id == bindparam("pid"),
        _p.c.status == PositionStatus.open,
        _p.c.break_even_done.is_(False),
    )
    .values(sl_price=bindparam("sl", type_=Money()), break_even_done=True)
)


class MarkRepository:
    """The monitor's reads and writes. The caller commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open_groups(
        self, symbols: set[str] | None = None
    ) -> dict[tuple[Source, str], tuple[int, datetime | None]]:
        """How many open positions each (price source, symbol) prices, and the oldest time any
        of them was marked at (the path of prices since then is theirs to judge); `symbols`:
        only theirs."""
        is_conn, sid = source_columns()
        stmt = (
            select(is_conn, sid, _p.c.symbol, func.count(), func.min(_p.c.last_price_update_at))
            .select_from(_p.join(_c, _c.c.id == _p.c.execution_connection_id))
            .where(_p.c.status == PositionStatus.open)
            .group_by(is_conn, sid, _p.c.symbol)
        )
        if symbols is not None:
            stmt = stmt.where(_p.c.symbol.in_(symbols))
        rows = await self.session.execute(stmt)
        return {
            ((SourceKind.conn if own else SourceKind.data, source_id), symbol): (n, oldest)
            for own, source_id, symbol, n, oldest in rows
        }

    async def connections(self, connection_ids: list[int]) -> list[ExecutionConnection]:
        """The connections that price their own positions (no data connection linked)."""
        if not connection_ids:
            return []
        stmt = select(ExecutionConnection).where(ExecutionConnection.id.in_(connection_ids))
        return list((await self.session.scalars(stmt)).all())

    async def mark_in_sql(
        self, quotes: dict[tuple[Source, str], Quote]
    ) -> dict[int, tuple[Source, datetime | None]]:
        """PostgreSQL: write the new marks of every open position priced by `quotes`; return
        {position id: (its price source, when it was marked before)} for the positions a rule
        may act on (the moves since then are theirs to judge)."""
        if not quotes:
            return {}
        marked = _marked(quotes)
        # Right after a burst of opens the planner's statistics can say "one open position",
        # and its nested loop then reads every position once per (source, symbol) pair; a hash
        # join reads them once. Local to this transaction.
        await self.session.execute(text("SET LOCAL enable_nestloop = off"))
        rows = await self.session.execute(
            select(marked.c.id, marked.c.is_conn, marked.c.sid, marked.c.marked_at).where(
                marked.c.act
            )
        )
        return {
            pid: ((SourceKind.conn if own else SourceKind.data, sid), marked_at)
            for pid, own, sid, marked_at in rows
        }

    async def write_marks(self, marks: list[dict[str, Any]]) -> None:
        """Per-row marks (SQLite): pid, cp (price), upnl, upct, best, at."""
        if marks:
            await self.session.execute(_PRICE_UPDATE, marks)

    async def move_stops_to_break_even(self, moves: list[dict[str, Any]]) -> None:
        """pid, sl: once per position (`break_even_done`)."""
        if moves:
            await self.session.execute(_BREAK_EVEN, moves)
