from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.models import ExecutionConnection, TradingPreset
from execution_service.principal import Principal


class PresetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, principal: Principal, preset_id: int) -> TradingPreset | None:
        stmt = principal.scope(select(TradingPreset), TradingPreset).where(
            TradingPreset.id == preset_id
        )
        return (await self.session.scalars(stmt)).first()

    async def list(
        self, principal: Principal, limit: int, offset: int
    ) -> tuple[Sequence[TradingPreset], int]:
        stmt = principal.scope(select(TradingPreset), TradingPreset)
        rows = await self.session.scalars(
            stmt.order_by(TradingPreset.id).limit(limit).offset(offset)
        )
        total = await self.session.scalar(select(func.count()).select_from(stmt.subquery()))
        return rows.all(), total or 0

    async def is_referenced(self, preset_id: int) -> bool:
        stmt = (
            select(ExecutionConnection.id)
            .where(ExecutionConnection.preset_id == preset_id)
            .limit(1)
        )
        return (await self.session.scalar(stmt)) is not None
