"""The monitor's prices: one per (source, symbol) per tick. A data connection's are what it
stored (pushed over the API, or fetched by the feed loop from a venue or a gateway): the latest
price, and every price since the positions were last marked. Without a data connection, the
connection's own adapter's ticker. A source that fails is left out of this tick (its positions
are not acted on)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import utcnow
from execution_service.exchanges.base import ExchangeAdapter, ExchangeError
from execution_service.exchanges.kinds import DATA_KINDS
from execution_service.market_data.repository import (
    DataConnectionRepository,
    LatestRepository,
    MarketDataRepository,
)
from execution_service.market_data.sources import Quote, Source, SourceKind
from execution_service.models import ExecutionConnection

log = logging.getLogger(__name__)


# Stored prices judged per tick at most (the oldest first): a backlog drains over a few ticks.
PATH_LIMIT = 10_000

# symbol -> the oldest mark among the positions it prices (None: only the latest price is wanted)
Wanted = dict[Source, dict[str, datetime | None]]


async def fetch_prices(
    ctx: AppContext, wanted: Wanted, connections: dict[int, ExecutionConnection]
) -> dict[tuple[Source, str], Quote]:
    """The latest price of every wanted (source, symbol); for a data connection's, also every
    stored price since the oldest mark (no older than the monitor's maximum price age: older
    ones are not acted on), so the monitor judges each. A fetching data connection's path is
    its ticks (its bars are built from them)."""
    out: dict[tuple[Source, str], Quote] = {}
    data_ids = [sid for kind, sid in wanted if kind == SourceKind.data]
    oldest = utcnow() - timedelta(seconds=ctx.settings.monitor_max_price_age_seconds)
    async with ctx.session_factory() as session:
        data_rows = await DataConnectionRepository(session).by_ids(data_ids)
        stored = {i: wanted[(SourceKind.data, i)] for i in data_rows}
        fetching = [i for i, d in data_rows.items() if DATA_KINDS[d.type].fetches]
        latest = await LatestRepository(session).many(
            {i: set(symbols) for i, symbols in stored.items()}
        )
        since = {
            i: {s: max(at, oldest) for s, at in symbols.items() if at is not None}
            for i, symbols in stored.items()
        }
        paths = await MarketDataRepository(session).moves_since(
            {i: s for i, s in since.items() if s}, PATH_LIMIT, ticks_only=fetching
        )
        for (dc_id, symbol), (price, at) in latest.items():
            path = tuple(paths.get((dc_id, symbol), ()))
            out[((SourceKind.data, dc_id), symbol)] = Quote(price, at, path)
    for (kind, conn_id), own in wanted.items():
        if kind != SourceKind.conn:
            continue
        try:
            adapter = await ctx.adapters.for_connection(connections[conn_id])
        except (CredentialsError, ExchangeError) as exc:
            log.warning("no price source for connection %s: %s", conn_id, type(exc).__name__)
            continue
        await _tickers(out, (SourceKind.conn, conn_id), adapter, own)
    return out


async def _tickers(
    out: dict[tuple[Source, str], Quote],
    source: Source,
    adapter: ExchangeAdapter,
    symbols: Iterable[str],
) -> None:
    try:
        tickers = await adapter.fetch_tickers(sorted(symbols))
    except ExchangeError as exc:
        log.warning("tickers from %s failed: %s", source, exc.code)
        return
    for symbol, ticker in tickers.items():
        out[(source, symbol)] = Quote(ticker.price, ticker.timestamp or utcnow())
