from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.db import dialect_insert
from execution_service.models import DataConnection, ExecutionConnection, MarketData
from execution_service.principal import Principal


class DataConnectionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, principal: Principal, data_connection_id: int) -> DataConnection | None:
        stmt = principal.scope(select(DataConnection), DataConnection).where(
            DataConnection.id == data_connection_id
        )
        return (await self.session.scalars(stmt)).first()

    async def list(
        self, principal: Principal, limit: int, offset: int
    ) -> tuple[Sequence[DataConnection], int]:
        stmt = principal.scope(select(DataConnection), DataConnection)
        rows = await self.session.scalars(
            stmt.order_by(DataConnection.id).limit(limit).offset(offset)
        )
        total = await self.session.scalar(select(func.count()).select_from(stmt.subquery()))
        return rows.all(), total or 0

    async def is_referenced(self, data_connection_id: int) -> bool:
        stmt = (
            select(ExecutionConnection.id)
            .where(ExecutionConnection.data_connection_id == data_connection_id)
            .limit(1)
        )
        return (await self.session.scalar(stmt)) is not None


class MarketDataRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, rows: list[dict[str, Any]]) -> None:
        """Insert points; a point already stored for (connection, symbol, timeframe, time) is
        replaced, so a re-sent batch is harmless."""
        if not rows:
            return
        for start in range(0, len(rows), 1000):
            stmt = dialect_insert(self.session, MarketData).values(rows[start : start + 1000])
            stmt = stmt.on_conflict_do_update(
                index_elements=["data_connection_id", "symbol", "timeframe", "timestamp"],
                set_={c: stmt.excluded[c] for c in ("open", "high", "low", "close", "volume")},
            )
            await self.session.execute(stmt)

    async def latest(self, data_connection_id: int, symbol: str) -> MarketData | None:
        stmt = (
            select(MarketData)
            .where(MarketData.data_connection_id == data_connection_id, MarketData.symbol == symbol)
            .order_by(MarketData.timestamp.desc(), MarketData.id.desc())
            .limit(1)
        )
        return (await self.session.scalars(stmt)).first()
