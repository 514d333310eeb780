"""SQL of the execution logs (one row per order), and the reads of the accounts orders go to."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, and_, func, inspect, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import instance_state

from execution_service import setbased
from execution_service.db import utcnow
from execution_service.decimals import ZERO
from execution_service.enums import ConnectionStatus, OrderStatus, PositionStatus, Purpose
from execution_service.models import (
    ExecutionConnection,
    ExecutionLog,
    ExecutionPosition,
    TradingPreset,
)
from execution_service.principal import Principal

RESTING = (OrderStatus.open, OrderStatus.partially_filled)
_LOGS = cast(Table, ExecutionLog.__table__)
_UNSET = dict.fromkeys(c.key for c in _LOGS.columns)  # a new row's columns none of its values set


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- the API's reads ------------------------------------------------------------------------

    async def list(
        self,
        principal: Principal,
        *,
        filters: dict[str, Any],
        limit: int,
        offset: int,
    ) -> tuple[Sequence[ExecutionLog], int]:
        """Newest first. `filters`: connection_id, status, signal_id, symbol, purpose, since,
        until (each None for no filter)."""
        stmt = principal.scope(select(ExecutionLog), ExecutionLog)
        exact = {
            "connection_id": ExecutionLog.execution_connection_id,
            "status": ExecutionLog.status,
            "signal_id": ExecutionLog.signal_id,
            "symbol": ExecutionLog.symbol,
            "purpose": ExecutionLog.purpose,
        }
        for name, column in exact.items():
            if filters.get(name) is not None:
                stmt = stmt.where(column == filters[name])
        if filters.get("since") is not None:
            stmt = stmt.where(ExecutionLog.created_at >= filters["since"])
        if filters.get("until") is not None:
            stmt = stmt.where(ExecutionLog.created_at < filters["until"])
        rows = await self.session.scalars(
            stmt.order_by(ExecutionLog.id.desc()).limit(limit).offset(offset)
        )
        total = await self.session.scalar(select(func.count()).select_from(stmt.subquery()))
        return rows.all(), total or 0

    async def get(self, principal: Principal, log_id: int) -> ExecutionLog | None:
        stmt = principal.scope(select(ExecutionLog), ExecutionLog).where(ExecutionLog.id == log_id)
        return (await self.session.scalars(stmt)).first()

    # --- the lifecycle ----------------------------------------------------------------------------

    async def lock_many(self, log_ids: Sequence[int]) -> dict[int, ExecutionLog]:
        """Rows whose outcomes are being recorded, locked in id order (no deadlock between two
        recorders of overlapping batches)."""
        rows = await self.session.scalars(
            select(ExecutionLog)
            .where(ExecutionLog.id.in_(log_ids))
            .order_by(ExecutionLog.id)
            .with_for_update()
        )
        return {entry.id: entry for entry in rows}

    async def lock_pending(self, log_ids: Sequence[int]) -> set[int]:
        """Which of these rows are still `pending`, locked in id order as `lock_many` locks them
        (ids only: a batch's rows are in the caller's hands already)."""
        rows = await self.session.scalars(
            select(ExecutionLog.id)
            .where(
                setbased.any_of(self.session, ExecutionLog.id, log_ids),
                ExecutionLog.status == OrderStatus.pending,
            )
            .order_by(ExecutionLog.id)
            .with_for_update()
        )
        return set(rows)

    async def insert_rows(self, rows: Sequence[dict[str, Any]]) -> Sequence[ExecutionLog]:
        """New logs in one statement, without the ORM's unit of work (a fan-out's thousands):
        each row a dict of the same columns; those with a default it leaves out take it, as
        ORM rows would. Returns them as recorded, in the order given: detached, every column
        loaded (None where neither given nor defaulted)."""
        if not rows:
            return []
        now = utcnow()
        defaults = {"filled_quantity": ZERO, "fee": ZERO, "created_at": now, "updated_at": now}
        missing = {k: v for k, v in defaults.items() if k not in rows[0]}
        if missing:
            rows = [{**missing, **row} for row in rows]
        ids = await setbased.insert_rows(self.session, _LOGS, rows)
        mapper = inspect(ExecutionLog)
        new, key = mapper.class_manager.new_instance, mapper.identity_key_from_primary_key
        out: list[ExecutionLog] = []
        for values, log_id in zip(rows, ids, strict=True):
            entry = new()  # not __init__: its instrumented sets cost more than the INSERT
            entry.__dict__.update(_UNSET, **values, id=log_id)  # loaded, nothing changed
            instance_state(entry).key = key((log_id,))  # detached, as if read and expunged
            out.append(entry)
        return out

    async def update_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Many rows' new values in one statement by id: each row a dict of the same columns,
        its id under `row_id`."""
        await setbased.update_rows(self.session, _LOGS, rows)

    async def lock(self, log_id: int) -> ExecutionLog | None:
        return await self.session.get(ExecutionLog, log_id, with_for_update=True)

    async def lock_if_unchanged(
        self, log_id: int, status: str, *, wait: bool = False
    ) -> ExecutionLog | None:
        """The row if it still has `status`, locked; None if another worker holds it (SKIP
        LOCKED: it is already recording it) or it moved on. `wait`: for the holder to finish
        instead (what the caller read is newer than what the holder may be recording)."""
        stmt = (
            select(ExecutionLog)
            .where(ExecutionLog.id == log_id, ExecutionLog.status == status)
            .with_for_update(skip_locked=not wait)
        )
        return (await self.session.scalars(stmt)).first()

    async def to_track(
        self, pending_before: datetime, limit: int
    ) -> Sequence[tuple[ExecutionLog, ExecutionConnection]]:
        """Resting orders, and pending ones older than `pending_before` (their answer is late or
        lost), with their connections, oldest first."""
        stmt = (
            select(ExecutionLog, ExecutionConnection)
            .join(
                ExecutionConnection, ExecutionConnection.id == ExecutionLog.execution_connection_id
            )
            .where(
                or_(
                    ExecutionLog.status.in_(RESTING),
                    and_(
                        ExecutionLog.status == OrderStatus.pending,
                        ExecutionLog.created_at <= pending_before,
                    ),
                )
            )
            .order_by(ExecutionLog.id)
            .limit(limit)
        )
        return [(e, c) for e, c in (await self.session.execute(stmt)).all()]

    async def live_connections(self) -> Sequence[ExecutionConnection]:
        """Active connections with an order pending or resting at their venue."""
        live = select(ExecutionLog.execution_connection_id).where(
            ExecutionLog.status.in_((OrderStatus.pending, *RESTING))
        )
        stmt = select(ExecutionConnection).where(
            ExecutionConnection.id.in_(live.distinct()),
            ExecutionConnection.status == ConnectionStatus.active,
        )
        return list(await self.session.scalars(stmt))

    async def live_by_client_ids(
        self, connection_id: int, client_order_ids: Sequence[str]
    ) -> Sequence[ExecutionLog]:
        """This connection's orders still pending or resting, among these client order ids."""
        stmt = select(ExecutionLog).where(
            ExecutionLog.execution_connection_id == connection_id,
            ExecutionLog.client_order_id.in_(client_order_ids),
            ExecutionLog.status.in_((OrderStatus.pending, *RESTING)),
        )
        return list(await self.session.scalars(stmt))

    async def entry_ticket(self, position_id: int | None) -> str | None:
        """The venue's id of the order that opened a position (a broker ticket)."""
        if position_id is None:
            return None
        return await self.session.scalar(
            select(ExecutionLog.order_id)
            .join(ExecutionPosition, ExecutionPosition.execution_log_id == ExecutionLog.id)
            .where(ExecutionPosition.id == position_id)
        )

    async def exit_counts(self, position_ids: Sequence[int]) -> dict[int, int]:
        """How many exit orders each position has had (absent: none)."""
        if not position_ids:
            return {}
        rows = await self.session.execute(
            select(ExecutionLog.position_id, func.count())
            .where(
                setbased.any_of(self.session, ExecutionLog.position_id, position_ids),
                ExecutionLog.purpose == Purpose.exit,
            )
            .group_by(ExecutionLog.position_id)
        )
        return {pid: n for pid, n in rows if pid is not None}

    async def refused_exits_since(self, position_ids: Sequence[int], since: datetime) -> set[int]:
        """The positions among these whose exit order was refused since `since`."""
        rows = await self.session.scalars(
            select(ExecutionLog.position_id).where(
                setbased.any_of(self.session, ExecutionLog.position_id, position_ids),
                ExecutionLog.purpose == Purpose.exit,
                ExecutionLog.status == OrderStatus.rejected,
                ExecutionLog.updated_at >= since,
            )
        )
        return {pid for pid in rows if pid is not None}

    async def venue_order_ids(self, position_ids: Sequence[int]) -> set[str]:
        """The venue's ids of the orders that opened or reduced these positions."""
        if not position_ids:
            return set()
        stmt = select(ExecutionLog.order_id).where(
            ExecutionLog.position_id.in_(position_ids), ExecutionLog.order_id.is_not(None)
        )
        return {str(i) for i in (await self.session.scalars(stmt)).all() if i}

    async def busy_symbols(self, connection_id: int) -> set[str]:
        """The symbols of a connection with an order still in flight (pending or resting, entry
        or exit): the venue's positions there may not match ours yet."""
        stmt = (
            select(ExecutionLog.symbol)
            .where(
                ExecutionLog.execution_connection_id == connection_id,
                ExecutionLog.status.in_((OrderStatus.pending, *RESTING)),
                # A position's SL/TP resting at the venue is not an order in flight.
                ExecutionLog.purpose != Purpose.protect,
            )
            .distinct()
        )
        return set((await self.session.scalars(stmt)).all())

    async def committed_to(
        self, connection_ids: Sequence[int], symbol: str, excluding_signal: int | None = None
    ) -> dict[int, tuple[int, int]]:
        """Per connection: positions held plus entries that may still open one (pending, or
        resting without a fill yet), as (all, in `symbol`); absent means none. A partly filled
        entry has its position already. `excluding_signal`: the signal being recorded now.

        One statement, so one snapshot: under READ COMMITTED each statement sees its own, and a
        fill committed between two of them (its entry leaves "in flight" as its position
        appears) would be counted by neither, letting one entry past the limit."""
        if not connection_ids:
            return {}
        held = select(
            ExecutionPosition.execution_connection_id.label("conn"),
            ExecutionPosition.symbol.label("sym"),
        ).where(
            ExecutionPosition.execution_connection_id.in_(connection_ids),
            ExecutionPosition.status.in_((PositionStatus.open, PositionStatus.closing)),
        )
        flying = select(ExecutionLog.execution_connection_id, ExecutionLog.symbol).where(
            ExecutionLog.execution_connection_id.in_(connection_ids),
            ExecutionLog.purpose == Purpose.entry,
            ExecutionLog.status.in_((OrderStatus.pending, OrderStatus.open)),
            ExecutionLog.position_id.is_(None),
        )
        if excluding_signal is not None:
            flying = flying.where(
                or_(ExecutionLog.signal_id.is_(None), ExecutionLog.signal_id != excluding_signal)
            )
        both = union_all(held, flying).subquery()
        stmt = select(both.c.conn, both.c.sym, func.count()).group_by(both.c.conn, both.c.sym)
        out: dict[int, tuple[int, int]] = {}
        for conn_id, sym, n in await self.session.execute(stmt):
            total, for_symbol = out.get(conn_id, (0, 0))
            out[conn_id] = (total + n, for_symbol + (n if sym == symbol else 0))
        return out

    async def resting(self, connection_ids: Sequence[int]) -> Sequence[ExecutionLog]:
        """The orders of these connections resting at their venues, oldest first."""
        if not connection_ids:
            return []
        stmt = (
            select(ExecutionLog)
            .where(
                ExecutionLog.execution_connection_id.in_(connection_ids),
                ExecutionLog.status.in_(RESTING),
                # Protective orders go with their position's exit (`orders.protection`).
                ExecutionLog.purpose != Purpose.protect,
            )
            .order_by(ExecutionLog.id)
        )
        return list(await self.session.scalars(stmt))

    async def guarded_connections(self) -> Sequence[tuple[ExecutionConnection, TradingPreset]]:
        """Active accounts whose preset has a drawdown stop-out rule, not stopped already."""
        stmt = (
            select(ExecutionConnection, TradingPreset)
            .join(TradingPreset, ExecutionConnection.preset_id == TradingPreset.id)
            .where(
                ExecutionConnection.is_active.is_(True),
                ExecutionConnection.stopped_out_at.is_(None),
                or_(
                    TradingPreset.stop_out_drawdown_percent.is_not(None),
                    TradingPreset.stop_out_daily_loss.is_not(None),
                ),
            )
            .order_by(ExecutionConnection.id)
        )
        return [(c, p) for c, p in await self.session.execute(stmt)]

    async def lock_connection(self, connection_id: int) -> ExecutionConnection | None:
        return await self.session.get(ExecutionConnection, connection_id, with_for_update=True)

    async def realized_since(
        self, connection_ids: Sequence[int], since: datetime
    ) -> dict[int, Decimal]:
        """Per connection: the PnL realised by fills since `since`: entry fees, partial and
        whole exits, each on the day it was realised."""
        if not connection_ids:
            return {}
        # Summed here, not in SQL: SQLite stores money as text.
        rows = await self.session.execute(
            select(ExecutionLog.execution_connection_id, ExecutionLog.realized_pnl).where(
                ExecutionLog.execution_connection_id.in_(connection_ids),
                ExecutionLog.realized_pnl.is_not(None),
                ExecutionLog.executed_at >= since,
            )
        )
        out: dict[int, Decimal] = {}
        for conn_id, pnl in rows:
            out[conn_id] = out.get(conn_id, Decimal(0)) + (pnl or Decimal(0))
        return out

    # --- the accounts orders go to ----------------------------------------------------------------

    async def lock_accounts(self, connection_ids: Sequence[int]) -> None:
        """Lock the connections' rows until the transaction ends, in id order (two signals on
        overlapping accounts lock them in the same order): a signal holds its accounts while it
        checks their limits and records its entries."""
        await self.session.execute(
            select(ExecutionConnection.id)
            .where(ExecutionConnection.id.in_(sorted(connection_ids)))
            .order_by(ExecutionConnection.id)
            # FOR NO KEY UPDATE: it excludes the other signals' same lock, not the KEY SHARE
            # locks that inserting logs and positions (foreign keys) take on these rows.
            .with_for_update(key_share=True)
        )

    async def connection(self, connection_id: int) -> ExecutionConnection | None:
        return await self.session.get(ExecutionConnection, connection_id)

    async def connections(self, connection_ids: Sequence[int]) -> dict[int, ExecutionConnection]:
        rows = await self.session.scalars(
            select(ExecutionConnection).where(ExecutionConnection.id.in_(connection_ids))
        )
        return {c.id: c for c in rows}

    async def touch_last_used(self, connection_ids: Sequence[int], at: datetime) -> None:
        ids = sorted(connection_ids)
        # Locked in id order first: an UPDATE locks in whatever order its plan reads, and two
        # batches recording at once (a mass close's lanes) may share accounts.
        await self.session.execute(
            select(ExecutionConnection.id)
            .where(setbased.any_of(self.session, ExecutionConnection.id, ids))
            .order_by(ExecutionConnection.id)
            .with_for_update(key_share=True)
        )
        await self.session.execute(
            update(ExecutionConnection)
            .where(setbased.any_of(self.session, ExecutionConnection.id, ids))
            .values(last_used_at=at)
            .execution_options(synchronize_session=False)
        )
