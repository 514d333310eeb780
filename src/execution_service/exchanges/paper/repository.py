"""The paper venue's queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.decimals import normalize
from execution_service.exchanges.base import BalanceEntry
from execution_service.models import DataConnection, MarketData, PaperBalance


async def latest_price(
    session: AsyncSession, data_connection_id: int | None, symbol: str
) -> MarketData | None:
    if data_connection_id is None:
        return None
    stmt = (
        select(MarketData)
        .where(MarketData.data_connection_id == data_connection_id, MarketData.symbol == symbol)
        .order_by(MarketData.timestamp.desc(), MarketData.id.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def latest_prices(
    session: AsyncSession, data_connection_ids: Iterable[int | None], symbol: str
) -> dict[int | None, MarketData | None]:
    """`latest_price` of many data connections in one statement (each its own index lookup)."""
    keys = list(data_connection_ids)
    wanted = {dc for dc in keys if dc is not None}
    found: dict[int | None, MarketData | None] = dict.fromkeys(keys)
    if not wanted:
        return found
    latest = (
        select(MarketData.id)
        .where(MarketData.data_connection_id == DataConnection.id, MarketData.symbol == symbol)
        .order_by(MarketData.timestamp.desc(), MarketData.id.desc())
        .limit(1)
        .correlate(DataConnection)
        .scalar_subquery()
    )
    ids = select(latest).where(DataConnection.id.in_(sorted(wanted)))
    for row in await session.scalars(select(MarketData).where(MarketData.id.in_(ids))):
        found[row.data_connection_id] = row
    return found


async def balances_of(
    session: AsyncSession, connection_ids: Sequence[int]
) -> dict[int, dict[str, BalanceEntry]]:
    """Every currency's balance of many paper accounts, in one query (absent: none)."""
    out: dict[int, dict[str, BalanceEntry]] = {}
    if not connection_ids:
        return out
    rows = await session.scalars(
        select(PaperBalance).where(PaperBalance.connection_id.in_(connection_ids))
    )
    for r in rows:
        out.setdefault(r.connection_id, {})[r.currency] = BalanceEntry(
            r.free, r.used, normalize(r.free + r.used)
        )
    return out
