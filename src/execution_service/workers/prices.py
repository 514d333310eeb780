"""One price per (source, symbol) per tick: a manual data connection's latest stored price, a ccxt
data connection's public ticker, or the connection's own adapter's ticker."""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import utcnow
from execution_service.enums import DataSourceType
from execution_service.exchanges.base import ExchangeAdapter, ExchangeError
from execution_service.market_data.sources import Quote, Source, SourceKind
from execution_service.models import DataConnection, ExecutionConnection, MarketData

log = logging.getLogger(__name__)


async def fetch_prices(
    ctx: AppContext, wanted: dict[Source, set[str]], connections: dict[int, ExecutionConnection]
) -> dict[tuple[Source, str], Quote]:
    out: dict[tuple[Source, str], Quote] = {}
    data_ids = [sid for kind, sid in wanted if kind == SourceKind.data]
    async with ctx.session_factory() as session:
        data_rows = {
            d.id: d
            for d in await session.scalars(
                select(DataConnection).where(DataConnection.id.in_(data_ids))
            )
        }
        manual = {
            i: wanted[(SourceKind.data, i)]
            for i, d in data_rows.items()
            if d.type == DataSourceType.manual
        }
        for (dc_id, symbol), quote in (await _stored_latest(session, manual)).items():
            out[((SourceKind.data, dc_id), symbol)] = quote
    for dc_id, data in data_rows.items():
        if data.type == DataSourceType.ccxt:
            adapter = await ctx.adapters.public(data)
            await _tickers(out, (SourceKind.data, dc_id), adapter, wanted[(SourceKind.data, dc_id)])
    for (kind, conn_id), symbols in wanted.items():
        if kind != SourceKind.conn:
            continue
        try:
            adapter = await ctx.adapters.for_connection(connections[conn_id])
        except (CredentialsError, ExchangeError) as exc:
            log.warning("no price source for connection %s: %s", conn_id, type(exc).__name__)
            continue
        await _tickers(out, (SourceKind.conn, conn_id), adapter, symbols)
    return out


async def _tickers(
    out: dict[tuple[Source, str], Quote],
    source: Source,
    adapter: ExchangeAdapter,
    symbols: set[str],
) -> None:
    try:
        tickers = await adapter.fetch_tickers(sorted(symbols))
    except ExchangeError as exc:
        log.warning("tickers from %s failed: %s", source, exc.code)
        return
    for symbol, ticker in tickers.items():
        out[(source, symbol)] = Quote(ticker.price, ticker.timestamp or utcnow())


async def _stored_latest(
    session: AsyncSession, wanted: dict[int, set[str]]
) -> dict[tuple[int, str], Quote]:
    """The latest stored price of every wanted (data connection, symbol), in one query."""
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
    out: dict[tuple[int, str], Quote] = {}
    for dc_id, symbol, close, at in await session.execute(stmt):
        if symbol in wanted.get(dc_id, ()):
            out[(dc_id, symbol)] = Quote(close, at)
    return out


def group_symbols(pairs: list[tuple[Source, str]]) -> dict[Source, set[str]]:
    grouped: dict[Source, set[str]] = defaultdict(set)
    for source, symbol in pairs:
        grouped[source].add(symbol)
    return grouped
