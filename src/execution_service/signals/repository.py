from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from execution_service.enums import CloseReason, Purpose
from execution_service.models import (
    ExecutionConnection,
    ExecutionLog,
    Signal,
    TradingPreset,
)
from execution_service.principal import Principal


class SignalRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_external_id(self, owner_key: str, external_id: str) -> Signal | None:
        stmt = select(Signal).where(
            Signal.owner_key == owner_key, Signal.external_id == external_id
        )
        return (await self.session.scalars(stmt)).first()

    async def get(self, principal: Principal, signal_id: int) -> Signal | None:
        stmt = principal.scope(select(Signal), Signal).where(Signal.id == signal_id)
        return (await self.session.scalars(stmt)).first()

    async def list(
        self, principal: Principal, limit: int, offset: int
    ) -> tuple[Sequence[Signal], int]:
        stmt = principal.scope(select(Signal), Signal)
        rows = await self.session.scalars(
            stmt.order_by(Signal.id.desc()).limit(limit).offset(offset)
        )
        total = await self.session.scalar(select(func.count()).select_from(stmt.subquery()))
        return rows.all(), total or 0

    def _placed(self, principal: Principal, signal_ids: Sequence[int]) -> Select[Any]:
        """The orders the signals placed: their entries, and the exits netting sent (an exit
        of the position a signal opened, by its SL say, belongs to the position, not here)."""
        placed = or_(
            ExecutionLog.purpose == Purpose.entry, ExecutionLog.close_reason == CloseReason.signal
        )
        return principal.scope(select(ExecutionLog), ExecutionLog).where(
            ExecutionLog.signal_id.in_(signal_ids), placed
        )

    async def entry_logs(
        self, principal: Principal, signal_ids: Sequence[int], per_signal: int | None = None
    ) -> Sequence[ExecutionLog]:
        """The signals' orders in id order; with `per_signal`, only each one's first so many."""
        stmt = self._placed(principal, signal_ids)
        if per_signal is not None:
            rank = (
                func.row_number()
                .over(partition_by=ExecutionLog.signal_id, order_by=ExecutionLog.id)
                .label("rank")
            )
            ranked = stmt.add_columns(rank).subquery()
            first = aliased(ExecutionLog, ranked)
            stmt = select(first).where(ranked.c.rank <= per_signal).order_by(first.id)
            return (await self.session.scalars(stmt)).all()
        return (await self.session.scalars(stmt.order_by(ExecutionLog.id))).all()

    async def entry_page(
        self, principal: Principal, signal_id: int, limit: int, offset: int
    ) -> Sequence[ExecutionLog]:
        stmt = self._placed(principal, [signal_id]).order_by(ExecutionLog.id)
        return (await self.session.scalars(stmt.limit(limit).offset(offset))).all()

    async def entry_counts(
        self, principal: Principal, signal_ids: Sequence[int]
    ) -> dict[int, dict[str, int]]:
        """Per signal, how many of its orders have each status."""
        placed = self._placed(principal, signal_ids).subquery()
        rows = await self.session.execute(
            select(placed.c.signal_id, placed.c.status, func.count()).group_by(
                placed.c.signal_id, placed.c.status
            )
        )
        out: dict[int, dict[str, int]] = {}
        for signal_id, status, n in rows:
            out.setdefault(signal_id, {})[str(status)] = n
        return out

    async def targets(
        self,
        ids: Sequence[int] | None,
        user_id: int | None,
        admin_id: int | None,
        principal: Principal,
    ) -> Sequence[tuple[ExecutionConnection, TradingPreset | None]]:
        # The presets in a query of their own: a fan-out's 10,000 connections share a few, and
        # joined, every row would carry (and convert) its preset's 30 columns again.
        stmt = select(ExecutionConnection)
        if ids is not None:
            stmt = principal.scope(stmt.where(ExecutionConnection.id.in_(ids)), ExecutionConnection)
        else:
            stmt = stmt.where(
                ExecutionConnection.is_active.is_(True),
                ExecutionConnection.user_id.is_(None)
                if user_id is None
                else ExecutionConnection.user_id == user_id,
            )
            if user_id is None:
                stmt = stmt.where(
                    ExecutionConnection.admin_id.is_(None)
                    if admin_id is None
                    else ExecutionConnection.admin_id == admin_id
                )
        conns = (await self.session.scalars(stmt.order_by(ExecutionConnection.id))).all()
        preset_ids = sorted({c.preset_id for c in conns if c.preset_id is not None})
        presets: dict[int | None, TradingPreset] = {}
        if preset_ids:
            found = await self.session.scalars(
                select(TradingPreset).where(TradingPreset.id.in_(preset_ids))
            )
            presets = {p.id: p for p in found}
        return [(conn, presets.get(conn.preset_id)) for conn in conns]
