"""The queries of protection held at the venue (`orders.protection`): positions to protect,
their live protective legs, and legs that outlived their position."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.enums import ConnectionStatus, OrderStatus, PositionStatus, Purpose
from execution_service.models import (
    ExecutionConnection,
    ExecutionLog,
    ExecutionPosition,
    TradingPreset,
)
from execution_service.orders.repository import RESTING


class ProtectionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def live_protection(self, position_ids: Sequence[int]) -> Sequence[ExecutionLog]:
        """The protective orders of these positions still pending or resting at the venue."""
        if not position_ids:
            return []
        stmt = select(ExecutionLog).where(
            ExecutionLog.position_id.in_(position_ids),
            ExecutionLog.purpose == Purpose.protect,
            ExecutionLog.status.in_((OrderStatus.pending, *RESTING)),
        )
        return list(await self.session.scalars(stmt))

    async def holding_connections(self) -> Sequence[ExecutionConnection]:
        """Active connections holding open positions with an SL or TP, whose preset lets the
        venue hold them."""
        holders = (
            select(ExecutionPosition.execution_connection_id)
            .where(
                ExecutionPosition.status == PositionStatus.open,
                or_(
                    ExecutionPosition.sl_price.is_not(None), ExecutionPosition.tp_price.is_not(None)
                ),
            )
            .distinct()
        )
        stmt = (
            select(ExecutionConnection)
            .outerjoin(TradingPreset, TradingPreset.id == ExecutionConnection.preset_id)
            .where(
                ExecutionConnection.id.in_(holders),
                ExecutionConnection.status == ConnectionStatus.active,
                # The preset lets the venue hold them (no preset: the default, yes).
                or_(TradingPreset.id.is_(None), TradingPreset.stops_on_venue.is_(True)),
            )
        )
        return list(await self.session.scalars(stmt))

    async def to_protect(self, connection_ids: Sequence[int]) -> Sequence[ExecutionPosition]:
        """The open positions of these connections with an SL or TP, not flagged."""
        if not connection_ids:
            return []
        stmt = (
            select(ExecutionPosition)
            .where(
                ExecutionPosition.execution_connection_id.in_(connection_ids),
                ExecutionPosition.status == PositionStatus.open,
                ExecutionPosition.flagged_at.is_(None),
                or_(
                    ExecutionPosition.sl_price.is_not(None), ExecutionPosition.tp_price.is_not(None)
                ),
            )
            .order_by(ExecutionPosition.id)
        )
        return list(await self.session.scalars(stmt))

    async def orphaned_protection(self) -> Sequence[tuple[ExecutionLog, ExecutionConnection]]:
        """Protective orders still resting whose position is no longer open (closed by their
        sibling's fill, by an exit, by the venue): to cancel."""
        stmt = (
            select(ExecutionLog, ExecutionConnection)
            .join(ExecutionPosition, ExecutionPosition.id == ExecutionLog.position_id)
            .join(
                ExecutionConnection, ExecutionConnection.id == ExecutionLog.execution_connection_id
            )
            .where(
                ExecutionLog.purpose == Purpose.protect,
                ExecutionLog.status.in_(RESTING),
                ExecutionPosition.status == PositionStatus.closed,
            )
            .order_by(ExecutionLog.id)
        )
        return [(e, c) for e, c in (await self.session.execute(stmt)).all()]

    async def protect_counts(self, position_ids: Sequence[int]) -> dict[int, int]:
        """How many protective orders each position has had (their client ids count on)."""
        if not position_ids:
            return {}
        rows = await self.session.execute(
            select(ExecutionLog.position_id, func.count())
            .where(
                ExecutionLog.position_id.in_(position_ids),
                ExecutionLog.purpose == Purpose.protect,
            )
            .group_by(ExecutionLog.position_id)
        )
        return {pid: n for pid, n in rows if pid is not None}

    async def refused_protection_since(
        self, position_ids: Sequence[int], since: datetime
    ) -> set[int]:
        """Positions whose protective order the venue refused since `since`: left to the
        monitor a while, not re-placed every pass."""
        if not position_ids:
            return set()
        rows = await self.session.scalars(
            select(ExecutionLog.position_id).where(
                ExecutionLog.position_id.in_(position_ids),
                ExecutionLog.purpose == Purpose.protect,
                ExecutionLog.status == OrderStatus.rejected,
                ExecutionLog.updated_at >= since,
            )
        )
        return {pid for pid in rows if pid is not None}
