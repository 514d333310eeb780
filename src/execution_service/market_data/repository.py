from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.db import dialect_insert
from execution_service.market_data.sources import Move
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

    async def by_ids(self, data_connection_ids: Sequence[int]) -> dict[int, DataConnection]:
        stmt = select(DataConnection).where(DataConnection.id.in_(data_connection_ids))
        return {d.id: d for d in await self.session.scalars(stmt)}

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

    async def latest_of_many(
        self, wanted: dict[int, set[str]]
    ) -> dict[tuple[int, str], tuple[Decimal, datetime]]:
        """The latest stored price and its time of every wanted (data connection, symbol), in
        one query."""
        if not wanted:
            return {}
        symbols = set().union(*wanted.values())
        md = MarketData
        latest = (
            select(md.data_connection_id, md.symbol, func.max(md.timestamp).label("at"))
            .where(md.data_connection_id.in_(list(wanted)), md.symbol.in_(symbols))
            .group_by(md.data_connection_id, md.symbol)
            .subquery()
        )
        stmt = select(md.data_connection_id, md.symbol, md.close, md.timestamp).join(
            latest,
            and_(
                md.data_connection_id == latest.c.data_connection_id,
                md.symbol == latest.c.symbol,
                md.timestamp == latest.c.at,
            ),
        )
        out: dict[tuple[int, str], tuple[Decimal, datetime]] = {}
        for dc_id, symbol, close, at in await self.session.execute(stmt):
            if symbol in wanted.get(dc_id, ()):
                out[(dc_id, symbol)] = (close, at)
        return out

    async def moves_since(
        self, wanted: dict[int, dict[str, datetime]], limit: int
    ) -> dict[tuple[int, str], list[Move]]:
        """Every stored price after each wanted (data connection, symbol)'s time, oldest first:
        pushed prices as ticks, bars with their low and high. At most `limit` in all, the oldest
        kept (a stop is judged on what came first)."""
        if not wanted:
            return {}
        md = MarketData
        after = min(at for symbols in wanted.values() for at in symbols.values())
        symbols = set().union(*(set(s) for s in wanted.values()))
        stmt = (
            select(md.data_connection_id, md.symbol, md.timestamp, md.close, md.low, md.high)
            .where(
                md.data_connection_id.in_(list(wanted)),
                md.symbol.in_(symbols),
                md.timestamp > after,
            )
            .order_by(md.timestamp, md.id)
            .limit(limit)
        )
        out: dict[tuple[int, str], list[Move]] = {}
        for dc_id, symbol, at, close, low, high in await self.session.execute(stmt):
            since = wanted.get(dc_id, {}).get(symbol)
            if since is not None and at > since:
                low, high = (
                    (low if low is not None else close),
                    (high if high is not None else close),
                )
                out.setdefault((dc_id, symbol), []).append(Move(at, close, low, high))
        return out
