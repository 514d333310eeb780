"""`market_data`: ticks (timeframe `tick`, close = price) and bars, per (data connection, symbol,
timeframe, timestamp). Writes are upserts; reads are the monitor's path of prices, a symbol's
history page, the ticks bars are built from, and the retention loop's bounded deletes."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.db import dialect_insert
from execution_service.market_data.bars import TICK
from execution_service.market_data.sources import Move
from execution_service.models import MarketData

_KEY = ("data_connection_id", "symbol", "timeframe", "timestamp")
_STATEMENT_ROWS = 1000


class MarketDataRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, rows: list[dict[str, Any]]) -> None:
        """Insert points; a point already stored for (connection, symbol, timeframe, time) is
        replaced, so a re-sent batch is harmless. Rows go in key order, so two writers of
        overlapping batches lock the same rows in the same order (no deadlock)."""
        if not rows:
            return
        rows = sorted(rows, key=lambda r: (r["data_connection_id"], r["symbol"], r["timeframe"]))
        for start in range(0, len(rows), _STATEMENT_ROWS):
            stmt = dialect_insert(self.session, MarketData).values(
                rows[start : start + _STATEMENT_ROWS]
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=list(_KEY),
                set_={c: stmt.excluded[c] for c in ("open", "high", "low", "close", "volume")},
            )
            await self.session.execute(stmt)

    async def moves_since(
        self,
        wanted: dict[int, dict[str, datetime]],
        limit: int,
        ticks_only: Collection[int] = (),
    ) -> dict[tuple[int, str], list[Move]]:
        """Every stored price after each wanted (data connection, symbol)'s time, oldest first:
        ticks, and bars with their low and high (except for the data connections in
        `ticks_only`, whose bars are built from those very ticks). At most `limit` in all, the
        oldest kept (a stop is judged on what came first)."""
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
        if ticks_only:
            stmt = stmt.where(
                or_(md.data_connection_id.not_in(list(ticks_only)), md.timeframe == TICK)
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

    # --- history ---------------------------------------------------------------------------------

    def _range(
        self,
        data_connection_id: int,
        symbols: Collection[str],
        timeframe: str,
        since: datetime | None,
        until: datetime | None,
    ) -> Any:
        md = MarketData
        clauses = [
            md.data_connection_id == data_connection_id,
            md.symbol.in_(list(symbols)),
            md.timeframe == timeframe,
        ]
        if since is not None:
            clauses.append(md.timestamp >= since)
        if until is not None:
            clauses.append(md.timestamp < until)
        return clauses

    async def page(
        self,
        data_connection_id: int,
        symbol: str,
        timeframe: str,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[MarketData], int]:
        """Stored points of one symbol and timeframe in [since, until), oldest first."""
        where = self._range(data_connection_id, [symbol], timeframe, since, until)
        stmt = select(MarketData).where(*where).order_by(MarketData.timestamp).limit(limit)
        rows = (await self.session.scalars(stmt.offset(offset))).all()
        if offset == 0 and len(rows) < limit:
            return rows, len(rows)  # the whole range is on this page
        total = await self.session.scalar(select(func.count()).where(*where))
        return rows, total or 0

    async def has(self, data_connection_id: int, symbol: str, timeframe: str) -> bool:
        stmt = (
            select(MarketData.id)
            .where(*self._range(data_connection_id, [symbol], timeframe, None, None))
            .limit(1)
        )
        return (await self.session.scalar(stmt)) is not None

    async def ticks(
        self,
        data_connection_id: int,
        symbols: Collection[str],
        since: datetime | None,
        until: datetime | None,
    ) -> list[tuple[str, datetime, Decimal]]:
        """(symbol, time, price) of the stored ticks in [since, until), per symbol in time
        order: what bars are built from (SQLite)."""
        md = MarketData
        stmt = (
            select(md.symbol, md.timestamp, md.close)
            .where(*self._range(data_connection_id, symbols, TICK, since, until))
            .order_by(md.symbol, md.timestamp, md.id)
        )
        return [(s, at, close) for s, at, close in await self.session.execute(stmt)]

    async def last_at(self, data_connection_id: int, timeframe: str) -> datetime | None:
        """The newest stored point of a timeframe on a data connection (any symbol)."""
        md = MarketData
        stmt = select(func.max(md.timestamp)).where(
            md.timeframe == timeframe, md.data_connection_id == data_connection_id
        )
        at: datetime | None = await self.session.scalar(stmt)
        return at

    # --- retention -------------------------------------------------------------------------------

    async def delete_before(
        self, timeframe: str, cutoff: datetime, limit: int, data_connection_id: int | None = None
    ) -> int:
        """Delete up to `limit` points of `timeframe` older than `cutoff` (through the
        (timeframe, timestamp) index, oldest first); returns how many went."""
        md = MarketData
        doomed = select(md.id).where(md.timeframe == timeframe, md.timestamp < cutoff)
        if data_connection_id is not None:
            doomed = doomed.where(md.data_connection_id == data_connection_id)
        doomed = doomed.order_by(md.timestamp).limit(limit)
        result = await self.session.execute(delete(md).where(md.id.in_(doomed)))
        return int(getattr(result, "rowcount", 0) or 0)
