"""The one write path of market data: prices pushed over the API, fetched from a venue or a
gateway, and bars built from ticks all go into `market_data` here, and every ingest moves the
latest price per (data connection, symbol) forward in the same transaction. So the monitor, the
paper venue and the API read one source of truth, whoever brought the price."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.market_data.bars import TICK, BuiltBar
from execution_service.market_data.repository import LatestRepository, MarketDataRepository


@dataclass(frozen=True)
class Point:
    symbol: str
    timeframe: str
    timestamp: datetime
    close: Decimal
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    volume: Decimal | None = None

    @classmethod
    def tick(cls, symbol: str, at: datetime, price: Decimal) -> Point:
        return cls(symbol, TICK, at, price)

    @classmethod
    def built(cls, bar: BuiltBar, timeframe: str) -> Point:
        return cls(bar.symbol, timeframe, bar.timestamp, bar.close, bar.open, bar.high, bar.low)


async def store(
    session: AsyncSession,
    data_connection_id: int,
    points: Iterable[Point],
    now: datetime,
    *,
    latest: bool = True,
) -> int:
    """Upsert the points (within one call the last point for a key wins: one statement cannot
    touch a key twice) and, unless `latest` is off (bars built from ticks already stored), move
    each symbol's latest price to its newest point. Returns how many keys were written. The
    caller commits."""
    rows: dict[tuple[str, str, datetime], dict[str, Any]] = {}
    newest: dict[str, tuple[Decimal, datetime]] = {}
    for p in points:
        rows[(p.symbol, p.timeframe, p.timestamp)] = {
            "data_connection_id": data_connection_id,
            "symbol": p.symbol,
            "timeframe": p.timeframe,
            "timestamp": p.timestamp,
            "open": p.open,
            "high": p.high,
            "low": p.low,
            "close": p.close,
            "volume": p.volume,
            "created_at": now,
        }
        seen = newest.get(p.symbol)
        if seen is None or p.timestamp >= seen[1]:
            newest[p.symbol] = (p.close, p.timestamp)
    await MarketDataRepository(session).upsert(list(rows.values()))
    if latest:
        await LatestRepository(session).advance(data_connection_id, newest, now)
    return len(rows)
