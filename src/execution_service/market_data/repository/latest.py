"""`market_data_latest`: the newest point per (data connection, symbol), moved forward by every
ingest in the ingest's own transaction, read by a primary-key lookup."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.db import dialect_insert
from execution_service.models import MarketDataLatest


class LatestRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def advance(
        self,
        data_connection_id: int,
        newest: dict[str, tuple[Decimal, datetime]],
        now: datetime,
    ) -> None:
        """Each symbol's newest point of an ingest becomes its latest, unless a newer one is
        stored already (a late or re-sent older point leaves the latest alone; an equal time
        replaces it, as re-sending a point replaces it in `market_data`)."""
        if not newest:
            return
        rows = [
            {
                "data_connection_id": data_connection_id,
                "symbol": symbol,
                "close": close,
                "timestamp": at,
                "updated_at": now,
            }
            for symbol, (close, at) in sorted(newest.items())  # one lock order for every writer
        ]
        stmt = dialect_insert(self.session, MarketDataLatest).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["data_connection_id", "symbol"],
            set_={c: stmt.excluded[c] for c in ("close", "timestamp", "updated_at")},
            where=stmt.excluded.timestamp >= MarketDataLatest.timestamp,
        )
        await self.session.execute(stmt)

    async def get(self, data_connection_id: int, symbol: str) -> MarketDataLatest | None:
        return await self.session.get(MarketDataLatest, (data_connection_id, symbol))

    async def many(
        self, wanted: dict[int, set[str]]
    ) -> dict[tuple[int, str], tuple[Decimal, datetime]]:
        """The latest price and its time of every wanted (data connection, symbol), in one
        query."""
        if not wanted:
            return {}
        latest = MarketDataLatest
        symbols = set().union(*wanted.values())
        stmt = select(
            latest.data_connection_id, latest.symbol, latest.close, latest.timestamp
        ).where(latest.data_connection_id.in_(list(wanted)), latest.symbol.in_(symbols))
        return {
            (dc_id, symbol): (close, at)
            for dc_id, symbol, close, at in await self.session.execute(stmt)
            if symbol in wanted.get(dc_id, ())
        }

    async def symbols(self, data_connection_id: int) -> set[str]:
        """Every symbol the data connection has a price of."""
        stmt = select(MarketDataLatest.symbol).where(
            MarketDataLatest.data_connection_id == data_connection_id
        )
        return set(await self.session.scalars(stmt))
