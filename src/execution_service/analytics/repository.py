"""SQL of the analytics: daily rows (upserted, dialect-specific), the closed trades and the
bookings (execution logs' realised PnL) behind them, and the equity snapshots.

Money columns are TEXT on SQLite, so nothing here sums money in SQL: values come back as Decimals
and the service adds them.

Which connections a read covers is a statement the methods embed as `IN (...)` (the caller's
`visible_connections`, or a list of ids for a worker), so each read stays one statement. The
builders execute nothing: they stay functions, not methods of the session-bound class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service import setbased
from execution_service.db import dialect_insert, utcnow
from execution_service.decimals import ZERO
from execution_service.enums import PositionStatus, Purpose
from execution_service.models import (
    ExecutionAnalytics,
    ExecutionConnection,
    ExecutionLog,
    ExecutionPosition,
)
from execution_service.principal import Principal

EA = ExecutionAnalytics
STATS = (
    "total_trades",
    "winning_trades",
    "losing_trades",
    "win_rate",
    "gross_profit",
    "gross_loss",
    "net_pnl",
    "profit_factor",
    "max_drawdown",
    "max_drawdown_percent",
)


# A select of connection ids, used as `IN (...)`. Any: SQLAlchemy 2.0 and 2.1 spell its
# row type differently (Select[tuple[int]] vs Select[int]).
IdQuery = Select[Any]


@dataclass(frozen=True, slots=True)
class Trade:
    connection_id: int
    closed_at: datetime
    pnl: Decimal


@dataclass(slots=True)
class PositionBook:
    symbols: list[str] = field(default_factory=list)
    unrealized: Decimal = ZERO  # the held positions' PnL at their last mark
    value: Decimal = ZERO  # what they are worth there (quantity x price x contract size)


@dataclass(frozen=True, slots=True)
class Booking:
    """PnL an order's fills realised: an entry's fee (negative), an exit's gross PnL minus fee."""

    connection_id: int
    executed_at: datetime
    pnl: Decimal


def visible_connections(principal: Principal, connection_id: int | None) -> IdQuery:
    """Ids of the connections the caller may see (one, if connection_id is given)."""
    stmt: IdQuery = principal.scope(select(ExecutionConnection.id), ExecutionConnection)
    if connection_id is not None:
        stmt = stmt.where(ExecutionConnection.id == connection_id)
    return stmt


class AnalyticsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def first_id(self, connections: IdQuery) -> int | None:
        """The first id the statement selects: None when it matches no connection."""
        return await self.session.scalar(connections)

    async def openings(self, connection_ids: Sequence[int], day: date) -> dict[int, Decimal]:
        """The opening equity of those of the connections whose row for `day` has one."""
        # Columns, not the ORM rows: the Core upserts here would leave loaded rows stale.
        rows = await self.session.execute(
            select(EA.execution_connection_id, EA.opening_equity).where(
                setbased.any_of(self.session, EA.execution_connection_id, connection_ids),
                EA.date == day,
                EA.opening_equity.is_not(None),
            )
        )
        return {conn_id: equity for conn_id, equity in rows if equity is not None}

    async def open_days(self, day: date, equities: dict[int, Decimal]) -> None:
        """Each connection's opening equity for `day`, unless its row has one: a snapshot is
        never overwritten. One statement, executed for every connection (in id order)."""
        if not equities:
            return
        at = utcnow()
        rows = [
            {
                "execution_connection_id": c,
                "date": day,
                "opening_equity": equities[c],
                "updated_at": at,
            }
            for c in sorted(equities)
        ]
        stmt = dialect_insert(self.session, EA)
        many: list[dict[str, Any]] | None = rows
        if setbased.postgres(self.session):  # one INSERT ... SELECT over arrays, not one a row
            stmt = stmt.from_select(list(rows[0]), setbased.source(cast(Table, EA.__table__), rows))
            many = None
        # No arithmetic: a COALESCE of two stored values, exact on SQLite's text money too.
        kept = func.coalesce(EA.opening_equity, stmt.excluded.opening_equity)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["execution_connection_id", "date"],
                set_={"opening_equity": kept, "updated_at": stmt.excluded.updated_at},
            ),
            many,
        )

    async def upsert_day(self, connection_id: int, day: date, values: dict[str, Any]) -> None:
        await self.upsert_days([(connection_id, day)], [values])

    async def upsert_days(
        self, days: Sequence[tuple[int, date]], values: Sequence[dict[str, Any]]
    ) -> None:
        """Insert each (connection, day) row with its `values` (every one the same columns), or
        set exactly those columns on the row already there. `is_final`, when given, only ever
        goes from false to true. One statement executed for every row, in the order given (the
        caller sorts them: rows are locked in that order)."""
        if not days:
            return
        at = utcnow()
        rows = [
            {**v, "execution_connection_id": c, "date": d, "updated_at": at}
            for (c, d), v in zip(days, values, strict=True)
        ]
        stmt = dialect_insert(self.session, EA)
        changes: dict[str, Any] = {
            name: stmt.excluded[name]
            for name in rows[0]
            if name not in ("execution_connection_id", "date")
        }
        if "is_final" in changes:
            changes["is_final"] = or_(EA.is_final, stmt.excluded.is_final)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["execution_connection_id", "date"], set_=changes
            ),
            rows,
        )

    async def closed_trades(
        self,
        connections: IdQuery | Sequence[int],
        start: datetime | None,
        end: datetime | None,
    ) -> list[Trade]:
        """Closed positions of those connections with closed_at in [start, end), in close order."""
        p = ExecutionPosition
        stmt = select(p.execution_connection_id, p.closed_at, p.pnl).where(
            p.status == PositionStatus.closed,
            p.closed_at.is_not(None),
            p.execution_connection_id.in_(connections),
        )
        if start is not None:
            stmt = stmt.where(p.closed_at >= start)
        if end is not None:
            stmt = stmt.where(p.closed_at < end)
        rows = await self.session.execute(stmt.order_by(p.closed_at, p.id))
        return [Trade(conn_id, at, pnl) for conn_id, at, pnl in rows if at is not None]

    async def bookings(
        self,
        connections: IdQuery | Sequence[int],
        start: datetime | None,
        end: datetime | None,
    ) -> list[Booking]:
        """What those connections' orders realised with executed_at in [start, end), in time
        order: every exit that filled (one that realised nothing counts 0) and every entry whose
        fee was booked. An entry without a fee realised nothing and is left out."""
        log = ExecutionLog
        stmt = select(
            log.execution_connection_id, log.executed_at, log.purpose, log.realized_pnl
        ).where(
            log.execution_connection_id.in_(connections),
            log.executed_at.is_not(None),
            or_(log.purpose == Purpose.exit, log.realized_pnl.is_not(None)),
        )
        if start is not None:
            stmt = stmt.where(log.executed_at >= start)
        if end is not None:
            stmt = stmt.where(log.executed_at < end)
        rows = await self.session.execute(stmt.order_by(log.executed_at, log.id))
        return [
            Booking(conn_id, at, pnl if pnl is not None else ZERO)
            for conn_id, at, purpose, pnl in rows
            if at is not None and (purpose == Purpose.exit or pnl)
        ]

    async def equities_before(self, connection_ids: list[int], day: date) -> dict[int, Decimal]:
        """Per connection, the equity last measured before `day`: the latest snapshot of its
        latest row dated before `day` that has one."""
        latest = (
            select(EA.execution_connection_id, func.max(EA.date).label("day"))
            .where(
                EA.execution_connection_id.in_(connection_ids),
                EA.date < day,
                EA.equity.is_not(None),
            )
            .group_by(EA.execution_connection_id)
            .subquery()
        )
        rows = await self.session.execute(
            select(EA.execution_connection_id, EA.equity).join(
                latest,
                and_(
                    EA.execution_connection_id == latest.c.execution_connection_id,
                    EA.date == latest.c.day,
                ),
            )
        )
        return {conn_id: equity for conn_id, equity in rows if equity is not None}

    async def first_rows(
        self, connection_ids: list[int], first: date | None, end: date | None
    ) -> dict[int, ExecutionAnalytics]:
        """Per connection, its earliest row dated in [first, end)."""
        bounds: list[ColumnElement[bool]] = [EA.execution_connection_id.in_(connection_ids)]
        if first is not None:
            bounds.append(EA.date >= first)
        if end is not None:
            bounds.append(EA.date < end)
        earliest = (
            select(EA.execution_connection_id, func.min(EA.date).label("day"))
            .where(*bounds)
            .group_by(EA.execution_connection_id)
            .subquery()
        )
        rows = await self.session.scalars(
            select(EA).join(
                earliest,
                and_(
                    EA.execution_connection_id == earliest.c.execution_connection_id,
                    EA.date == earliest.c.day,
                ),
            )
        )
        return {row.execution_connection_id: row for row in rows}

    async def daily_rows(
        self,
        connections: IdQuery,
        first: date | None,
        end: date | None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[ExecutionAnalytics], int]:
        """Rows dated in [first, end), oldest first, a page of them and how many there are."""
        stmt = select(EA).where(EA.execution_connection_id.in_(connections))
        if first is not None:
            stmt = stmt.where(EA.date >= first)
        if end is not None:
            stmt = stmt.where(EA.date < end)
        rows = await self.session.scalars(
            stmt.order_by(EA.date, EA.execution_connection_id).limit(limit).offset(offset)
        )
        total = await self.session.scalar(select(func.count()).select_from(stmt.subquery()))
        return rows.all(), total or 0

    async def unfinished_days(self, before: date, limit: int) -> list[tuple[int, date]]:
        """(connection, day) of rows dated before `before` not yet final, oldest first."""
        rows = await self.session.execute(
            select(EA.execution_connection_id, EA.date)
            .where(EA.date < before, EA.is_final.is_(False))
            .order_by(EA.date, EA.execution_connection_id)
            .limit(limit)
        )
        return [(conn_id, day) for conn_id, day in rows]

    async def active_today(
        self, day: date, start: datetime, end: datetime
    ) -> Sequence[ExecutionConnection]:
        """Active connections with a row for `day`, a position closed in [start, end), or a
        position held (its equity moves: the day's first snapshot is its opening equity)."""
        c, p = ExecutionConnection, ExecutionPosition
        has_row = select(EA.id).where(EA.execution_connection_id == c.id, EA.date == day).exists()
        closed = (
            select(p.id)
            .where(
                p.execution_connection_id == c.id,
                p.status == PositionStatus.closed,
                p.closed_at >= start,
                p.closed_at < end,
            )
            .exists()
        )
        held = (
            select(p.id)
            .where(
                p.execution_connection_id == c.id,
                p.status.in_((PositionStatus.open, PositionStatus.closing)),
            )
            .exists()
        )
        rows = await self.session.scalars(
            select(c).where(c.is_active.is_(True), or_(has_row, closed, held)).order_by(c.id)
        )
        return rows.all()

    async def position_book(self, connection_id: int) -> PositionBook:
        """The symbols of every position of a connection (oldest first), and the unrealised PnL
        and value at their last mark of those still held (`open`, or `closing` while the exit
        order is in flight)."""
        p = ExecutionPosition
        rows = await self.session.execute(
            select(p.symbol, p.status, p.pnl, p.quantity, p.current_price, p.contract_size)
            .where(p.execution_connection_id == connection_id)
            .order_by(p.id)
        )
        book = PositionBook()
        for symbol, status, pnl, quantity, price, unit in rows:
            book.symbols.append(symbol)
            if status in (PositionStatus.open, PositionStatus.closing):
                book.unrealized += pnl
                book.value += quantity * (price if price is not None else ZERO) * (unit or 1)
        return book
