"""Bars built from stored ticks: PostgreSQL groups them in SQL (exact NUMERIC min and max, the
first and last price of each period by time); SQLite, whose money is text, has them built in
Python (`bars.build`) from the ticks read in order."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import extract, func, select
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.db import Money
from execution_service.decimals import normalize
from execution_service.market_data import bars
from execution_service.market_data.bars import TICK, BuiltBar
from execution_service.market_data.repository.points import MarketDataRepository
from execution_service.models import MarketData

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BuiltBarsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _in_sql(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    async def build(
        self,
        data_connection_id: int,
        symbols: Collection[str],
        timeframe: str,
        since: datetime | None,
        until: datetime | None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[list[BuiltBar], int]:
        """Bars of `timeframe` from the ticks in [since, until), by symbol then time: the page
        asked for, and how many bars the whole range makes."""
        if not self._in_sql:
            ticks = await MarketDataRepository(self.session).ticks(
                data_connection_id, symbols, since, until
            )
            built = bars.build(ticks, timeframe)
            end = None if limit is None else offset + limit
            return built[offset:end], len(built)
        periods = self._periods(data_connection_id, symbols, timeframe, since, until)
        total = await self.session.scalar(
            select(func.count()).select_from(
                select(periods.c.symbol, periods.c.k).distinct().subquery()
            )
        )
        return await self._grouped(periods, timeframe, limit, offset), total or 0

    def _periods(
        self,
        data_connection_id: int,
        symbols: Collection[str],
        timeframe: str,
        since: datetime | None,
        until: datetime | None,
    ) -> Any:
        """Each tick in range with `k`, the number of its period since the epoch."""
        md = MarketData
        length, shift = bars.seconds(timeframe), bars.offset(timeframe)
        k = func.floor((extract("epoch", md.timestamp) - shift) / length)
        stmt = select(md.symbol, md.timestamp, md.id, md.close, k.label("k")).where(
            md.data_connection_id == data_connection_id,
            md.symbol.in_(list(symbols)),
            md.timeframe == TICK,
        )
        if since is not None:
            stmt = stmt.where(md.timestamp >= since)
        if until is not None:
            stmt = stmt.where(md.timestamp < until)
        return stmt.subquery()

    async def _grouped(
        self, periods: Any, timeframe: str, limit: int | None, offset: int
    ) -> list[BuiltBar]:
        t = periods.c
        prices = ARRAY(Money())
        first = func.array_agg(aggregate_order_by(t.close, t.timestamp, t.id), type_=prices)
        last = func.array_agg(
            aggregate_order_by(t.close, t.timestamp.desc(), t.id.desc()), type_=prices
        )
        stmt = (
            select(
                t.symbol,
                t.k,
                first[1],
                func.max(t.close),
                func.min(t.close),
                last[1],
                func.count(),
            )
            .group_by(t.symbol, t.k)
            .order_by(t.symbol, t.k)
            .offset(offset)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        length, shift = bars.seconds(timeframe) or 0, bars.offset(timeframe)
        return [
            BuiltBar(
                symbol,
                _EPOCH + timedelta(seconds=int(k) * length + shift),
                normalize(open_),
                high,
                low,
                normalize(close),
                count,
            )
            for symbol, k, open_, high, low, close, count in await self.session.execute(stmt)
        ]
