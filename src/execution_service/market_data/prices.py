"""The monitor's prices: one per (source, symbol) per tick, a manual data connection's latest
stored price, a ccxt data connection's public ticker, or the connection's own adapter's ticker.
A source that fails is left out of this tick (its positions are not acted on)."""

from __future__ import annotations

import logging

from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import utcnow
from execution_service.enums import DataSourceType
from execution_service.exchanges.base import ExchangeAdapter, ExchangeError
from execution_service.market_data.repository import (
    DataConnectionRepository,
    MarketDataRepository,
)
from execution_service.market_data.sources import Quote, Source, SourceKind
from execution_service.models import ExecutionConnection

log = logging.getLogger(__name__)


async def fetch_prices(
    ctx: AppContext, wanted: dict[Source, set[str]], connections: dict[int, ExecutionConnection]
) -> dict[tuple[Source, str], Quote]:
    out: dict[tuple[Source, str], Quote] = {}
    data_ids = [sid for kind, sid in wanted if kind == SourceKind.data]
    async with ctx.session_factory() as session:
        data_rows = await DataConnectionRepository(session).by_ids(data_ids)
        manual = {
            i: wanted[(SourceKind.data, i)]
            for i, d in data_rows.items()
            if d.type == DataSourceType.manual
        }
        stored = await MarketDataRepository(session).latest_of_many(manual)
        for (dc_id, symbol), (price, at) in stored.items():
            out[((SourceKind.data, dc_id), symbol)] = Quote(price, at)
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
