"""SQL of the position book. `PositionRepository` reads and writes rows; `listing` builds the
one-statement list read; `marking` marks every open position to new prices (set-based on
PostgreSQL, per row on SQLite)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service import setbased
from execution_service.db import utcnow
from execution_service.decimals import ONE, ZERO
from execution_service.enums import ConnectionStatus, MarketType, PositionStatus
from execution_service.models import ExecutionConnection, ExecutionPosition
from execution_service.principal import Principal


@dataclass(frozen=True)
class Exposure:
    unrealized: Decimal = ZERO
    value: Decimal = ZERO


# ids per IN list: far below the driver's bound on parameters
CHUNK = 5000
HELD = (PositionStatus.open, PositionStatus.closing)
_POSITIONS = cast(Table, ExecutionPosition.__table__)


class HeldRow(dict[str, Any]):
    """A locked position's columns as plain values, for a batch that books thousands without an
    ORM instance each; the book's pure functions read them as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


# A position as a row of the ORM, or as the plain values a batch reads.
PositionLike = ExecutionPosition | HeldRow

_IDS = ("id", "user_id", "admin_id", "execution_connection_id", "signal_id", "symbol")
# What the rules judge (`positions.rules.Judged`), and the monitor's checks around them.
_JUDGED = (
    *_IDS,
    "direction",
    "status",
    "entry_price",
    "quantity",
    "initial_quantity",
    "current_price",
    "sl_price",
    "tp_price",
    "take_profits",
    "trailing_stop_percent",
    "best_price",
    "break_even_trigger_rr",
    "break_even_done",
    "liquidation_price",
    "initial_sl_price",
    "break_even_offset_percent",
    "held_sl_price",
    "held_tp_price",
    "held_trailing_percent",
    "flagged_at",
)
# What claiming an exit reads (`orders.exits.claim_in`: its size, its row, its trigger level).
_CLAIMED = (
    *_IDS,
    "direction",
    "entry_price",
    "quantity",
    "current_price",
    "sl_price",
    "tp_price",
    "take_profits",
    "trailing_stop_percent",
    "best_price",
)

# What booking an exit reads and writes (`orders.bulk`: `book.reduced`, `fills.released`, the
# `position.closed` payload, `POSITION_WRITTEN`).
_BOOKED = (
    *_IDS,
    "execution_log_id",
    "direction",
    "status",
    "quantity",
    "initial_quantity",
    "entry_price",
    "contract_size",
    "current_price",
    "sl_price",
    "tp_price",
    "pnl",
    "pnl_percentage",
    "realized_pnl",
    "fees",
    "close_price",
    "closed_reason",
    "leverage",
    "liquidation_price",
    "opened_at",
    "closed_at",
    "exit_refusals",
    "flagged_at",
)


def _columns(names: Sequence[str]) -> list[Any]:
    return [_POSITIONS.c[n] for n in names]


class PositionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, principal: Principal, position_id: int) -> ExecutionPosition | None:
        stmt = principal.scope(select(ExecutionPosition), ExecutionPosition).where(
            ExecutionPosition.id == position_id
        )
        return (await self.session.scalars(stmt)).first()

    async def status_of(self, position_id: int) -> PositionStatus | None:
        return await self.session.scalar(
            select(ExecutionPosition.status).where(ExecutionPosition.id == position_id)
        )

    async def lock(self, position_id: int) -> ExecutionPosition | None:
        """The position, locked for this transaction: read `FOR UPDATE` once per transaction,
        then reused (a fill and the release of its exit order lock the same row in one)."""
        tx = self.session.get_transaction()
        locked: dict[int, tuple[object, ExecutionPosition]] = self.session.info.setdefault(
            "locked_positions", {}
        )
        held = locked.get(position_id)
        if held is not None and tx is not None and held[0] is tx:
            return held[1]
        position = await self.session.get(ExecutionPosition, position_id, with_for_update=True)
        if position is not None and tx is not None:
            locked[position_id] = (tx, position)
        return position

    async def lock_all(self, position_ids: Sequence[int]) -> None:
        """Lock these positions for this transaction in one statement (in id order), so that
        `lock` finds each without a query of its own: a batch of fills books many at once."""
        tx = self.session.get_transaction()
        if not position_ids or tx is None:
            return
        locked: dict[int, tuple[object, ExecutionPosition]] = self.session.info.setdefault(
            "locked_positions", {}
        )
        wanted = sorted(set(position_ids))
        for start in range(0, len(wanted), CHUNK):
            stmt = (
                select(ExecutionPosition)
                .where(ExecutionPosition.id.in_(wanted[start : start + CHUNK]))
                .order_by(ExecutionPosition.id)
                .with_for_update()
            )
            for position in await self.session.scalars(stmt):
                locked[position.id] = (tx, position)

    async def lock_open(
        self, position_ids: Sequence[int], *, skip_locked: bool
    ) -> Sequence[ExecutionPosition]:
        """The still-open ones of these positions, locked `FOR UPDATE`: `skip_locked` passes
        over rows another transaction holds (a worker's batch) instead of waiting for them."""
        stmt = (
            select(ExecutionPosition)
            .where(
                ExecutionPosition.id.in_(position_ids),
                ExecutionPosition.status == PositionStatus.open,
            )
            .with_for_update(skip_locked=skip_locked)
        )
        return (await self.session.scalars(stmt)).all()

    async def lock_rows(self, position_ids: Sequence[int]) -> dict[int, HeldRow]:
        """What booking an exit reads of these positions, locked for this transaction (in id
        order, as `lock_all`), by id; one absent is gone."""
        return {p.id: p for p in await self._values(_BOOKED, position_ids, lock=True)}

    async def update_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Each row's new values, by id (under `row_id`), in one statement."""
        await setbased.update_rows(self.session, _POSITIONS, rows)

    async def lock_open_rows(
        self, position_ids: Sequence[int], *, skip_locked: bool
    ) -> list[HeldRow]:
        """`lock_open` as plain values, what claiming an exit reads (a batch's thousands of exits
        claim them), in id order."""
        return await self._values(
            _CLAIMED, position_ids, lock=True, skip_locked=skip_locked, open_only=True
        )

    async def _values(
        self,
        names: Sequence[str],
        position_ids: Sequence[int],
        *,
        lock: bool = False,
        skip_locked: bool = False,
        open_only: bool = False,
    ) -> list[HeldRow]:
        """These positions' `names` as plain values, in id order, CHUNK ids a statement (SQLite's
        bound on parameters); `lock`: `FOR UPDATE`, in that order; `open_only`: still `open`."""
        out: list[HeldRow] = []
        wanted = sorted(set(position_ids))
        for start in range(0, len(wanted), CHUNK):
            ids = wanted[start : start + CHUNK]
            stmt = select(*_columns(names)).where(
                setbased.any_of(self.session, _POSITIONS.c.id, ids)
            )
            if open_only:
                stmt = stmt.where(_POSITIONS.c.status == PositionStatus.open)
            if lock:
                stmt = stmt.with_for_update(skip_locked=skip_locked)
            stmt = stmt.order_by(_POSITIONS.c.id)
            out += [HeldRow(row._mapping) for row in await self.session.execute(stmt)]
        return out

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> list[ExecutionPosition]:
        """New positions in one multi-row INSERT, returned in the order given."""
        # No autoflush: the caller's pending changes (the entry logs) are written once, later.
        with self.session.no_autoflush:
            stmt = insert(ExecutionPosition).returning(
                ExecutionPosition, sort_by_parameter_order=True
            )
            return list(await self.session.scalars(stmt, list(rows)))

    async def insert_rows(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """New positions without ORM objects (a fan-out's thousands): their ids, in the order
        given."""
        return await setbased.insert_rows(self.session, _POSITIONS, rows)

    async def mark_closing(self, position_ids: Sequence[int]) -> None:
        """These locked positions are `closing` (their exits claimed), in one UPDATE."""
        if position_ids:
            await self.session.execute(
                update(_POSITIONS)
                .where(setbased.any_of(self.session, _POSITIONS.c.id, position_ids))
                .values(status=PositionStatus.closing, updated_at=utcnow())
            )

    async def by_ids(self, position_ids: Sequence[int]) -> list[HeldRow]:
        """What the rules judge of these positions, as plain values (the monitor judges
        thousands at once)."""
        return await self._values(_JUDGED, position_ids)

    async def open_with_connections(
        self, symbols: set[str] | None = None
    ) -> Sequence[tuple[ExecutionPosition, ExecutionConnection]]:
        """Open positions with their connections (`symbols`: only theirs)."""
        stmt = (
            select(ExecutionPosition, ExecutionConnection)
            .join(
                ExecutionConnection,
                ExecutionConnection.id == ExecutionPosition.execution_connection_id,
            )
            .where(ExecutionPosition.status == PositionStatus.open)
        )
        if symbols is not None:
            stmt = stmt.where(ExecutionPosition.symbol.in_(symbols))
        return [(p, c) for p, c in (await self.session.execute(stmt)).all()]

    async def derivative_accounts(self) -> list[ExecutionConnection]:
        """Swap connections holding positions (open, or being closed), not in `error` (their
        credentials or venue fail: they are looked at again once they work)."""
        held = (
            select(ExecutionPosition.execution_connection_id)
            .where(ExecutionPosition.status.in_(HELD))
            .distinct()
        )
        stmt = select(ExecutionConnection).where(
            ExecutionConnection.id.in_(held),
            ExecutionConnection.market_type == MarketType.swap,
            ExecutionConnection.status != ConnectionStatus.error,
        )
        return list((await self.session.scalars(stmt.order_by(ExecutionConnection.id))).all())

    async def held_on(self, connection_id: int) -> list[ExecutionPosition]:
        """A connection's positions open or being closed, oldest first."""
        stmt = select(ExecutionPosition).where(
            ExecutionPosition.execution_connection_id == connection_id,
            ExecutionPosition.status.in_(HELD),
        )
        return list((await self.session.scalars(stmt.order_by(ExecutionPosition.id))).all())

    async def lock_held(self, position_ids: Sequence[int]) -> list[ExecutionPosition]:
        """These positions still open or being closed, locked, oldest first."""
        stmt = (
            select(ExecutionPosition)
            .where(ExecutionPosition.id.in_(position_ids), ExecutionPosition.status.in_(HELD))
            .order_by(ExecutionPosition.id)
            .with_for_update()
        )
        return list((await self.session.scalars(stmt)).all())

    async def held_by(
        self, connection_ids: Sequence[int], symbol: str, direction: str
    ) -> tuple[dict[int, list[tuple[int, Decimal]]], dict[int, Exposure]]:
        """In one read of what these connections hold: per connection, its open positions in
        `symbol` in `direction` (oldest first, as (position id, quantity)), and the exposure of
        everything it holds (`exposure`). Absent means none."""
        if not connection_ids:
            return {}, {}
        p = ExecutionPosition
        rows = await self.session.execute(
            select(
                p.execution_connection_id,
                p.id,
                p.symbol,
                p.direction,
                p.status,
                p.quantity,
                p.pnl,
                p.current_price,
                p.contract_size,
            )
            .where(p.execution_connection_id.in_(connection_ids), p.status.in_(HELD))
            .order_by(p.id)
        )
        matching: dict[int, list[tuple[int, Decimal]]] = {}
        exposure: dict[int, Exposure] = {}
        for conn_id, pid, sym, side, status, quantity, pnl, price, unit in rows:
            if sym == symbol and side == direction and status == PositionStatus.open:
                matching.setdefault(conn_id, []).append((pid, quantity))
            value = quantity * (price if price is not None else ZERO) * (unit or ONE)
            before = exposure.get(conn_id, Exposure())
            exposure[conn_id] = Exposure(before.unrealized + pnl, before.value + value)
        return matching, exposure

    async def open_of(self, connection_ids: Sequence[int]) -> list[ExecutionPosition]:
        """The open positions (not already closing) of these connections."""
        if not connection_ids:
            return []
        stmt = select(ExecutionPosition).where(
            ExecutionPosition.execution_connection_id.in_(connection_ids),
            ExecutionPosition.status == PositionStatus.open,
        )
        return list(await self.session.scalars(stmt.order_by(ExecutionPosition.id)))

    async def exposure(self, connection_ids: Sequence[int]) -> dict[int, Exposure]:
        """Per connection with positions held: their unrealised PnL at their last mark, and
        what they are worth there (quantity x price x contract size)."""
        if not connection_ids:
            return {}
        p = ExecutionPosition
        # Summed here, not in SQL: SQLite stores money as text.
        rows = await self.session.execute(
            select(
                p.execution_connection_id, p.pnl, p.quantity, p.current_price, p.contract_size
            ).where(p.execution_connection_id.in_(connection_ids), p.status.in_(HELD))
        )
        out: dict[int, Exposure] = {}
        for conn_id, pnl, quantity, price, unit in rows:
            value = quantity * (price if price is not None else ZERO) * (unit or ONE)
            before = out.get(conn_id, Exposure())
            out[conn_id] = Exposure(before.unrealized + pnl, before.value + value)
        return out
