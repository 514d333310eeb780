"""The monitor's prices: one per (source, symbol) per tick. A data connection's are what it
stored (pushed over the API, or fetched by the feed loop from a venue or a gateway): the latest
price, and every price since the positions were last marked. Without a data connection, the
connection's own adapter's ticker. A source that fails is left out of this tick (its positions
are not acted on)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from execution_service import metrics
from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import utcnow
from execution_service.exchanges.base import ExchangeError
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
# How long a monitor tick waits for the connections' own tickers (the rest arrive next tick).
TICKER_WAIT_SECONDS = 0.25

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
    own_sources: Wanted = {
        (kind, conn_id): own for (kind, conn_id), own in wanted.items() if kind == SourceKind.conn
    }
    out.update(await _own_tickers(ctx, own_sources, connections))
    return out


async def _own_tickers(
    ctx: AppContext, sources: Wanted, connections: dict[int, ExecutionConnection]
) -> dict[tuple[Source, str], Quote]:
    """Connections' own tickers, asked at once and waited for at most TICKER_WAIT_SECONDS: one
    account whose client is slow (its rate limiter, a slow venue) no longer holds up the stops
    of every other account (issue #20). A venue's public prices are asked once for every account
    on it (the union of their symbols, through one credential-less client), not once per
    account: 1,000 Binance accounts' tickers every second would be 120,000 weight a minute of
    an IP's 6,000. A fetch still running when the wait ends keeps running; the next tick takes
    its answer (its quotes carry their own time) instead of asking again."""
    fetches = ctx.ticker_fetches  # by venue (shared prices), or by source (an account's own)
    groups: dict[str | Source, list[Source]] = {}
    symbols: dict[str | Source, set[str]] = {}
    for source, own in sources.items():
        key = ctx.adapters.price_venue(connections[source[1]]) or source
        groups.setdefault(key, []).append(source)
        symbols.setdefault(key, set()).update(own)
    for key, members in groups.items():
        if key not in fetches:
            conn = connections[members[0][1]]
            shared = isinstance(key, str)
            fetches[key] = asyncio.ensure_future(_tickers(ctx, key, conn, symbols[key], shared))
    waiting = [fetches[k] for k in groups]
    if waiting:
        await asyncio.wait(waiting, timeout=TICKER_WAIT_SECONDS)
    out: dict[tuple[Source, str], Quote] = {}
    for key, task in list(fetches.items()):
        if task.done():
            del fetches[key]
            if task.cancelled() or task.exception() is not None:
                continue
            prices: dict[str, Quote] = task.result()
            if prices and isinstance(key, str):
                ctx.venue_prices_at[key] = time.monotonic()
            for source in groups.get(key, []):
                out.update(((source, s), prices[s]) for s in sources[source] if s in prices)
    _report_stale(ctx, [k for k in groups if isinstance(k, str)])
    return out


def _report_stale(ctx: AppContext, venues: list[str]) -> None:
    """A venue that has not answered for the monitor's maximum price age is reported (a gauge,
    readiness, a warning once): its accounts' stops are not acted on meanwhile; every other
    venue's are."""
    now, limit = time.monotonic(), ctx.settings.monitor_max_price_age_seconds
    for venue in set(ctx.venue_prices_at) - set(venues):  # wanted again later: time anew
        del ctx.venue_prices_at[venue]
    for venue in venues:
        ctx.venue_prices_at.setdefault(venue, now)  # first wanted: it has `limit` to answer
    stale = sorted(v for v in venues if now - ctx.venue_prices_at[v] > limit)
    for venue in set(stale) - set(ctx.stale_price_venues):
        log.warning("venue prices stale: %s has not answered for %.0f s", venue, limit)
    ctx.stale_price_venues = stale
    metrics.STALE_PRICE_VENUES.set(len(stale))


async def _tickers(
    ctx: AppContext, key: object, conn: ExecutionConnection, symbols: Iterable[str], shared: bool
) -> dict[str, Quote]:
    try:
        if shared:
            adapter = await ctx.adapters.venue_prices(conn)
        else:
            adapter = await ctx.adapters.for_connection(conn)
        tickers = await adapter.fetch_tickers(sorted(symbols))
    except (CredentialsError, ExchangeError) as exc:
        log.warning("tickers from %s failed: %s", key, getattr(exc, "code", type(exc).__name__))
        return {}
    return {
        symbol: Quote(ticker.price, ticker.timestamp or utcnow())
        for symbol, ticker in tickers.items()
    }


def venue_name(key: str) -> str:
    """A `price_venue` key as readiness shows it: exchange, market type, egress; never the URL
    (a tenant's row may name one)."""
    exchange, rest = key.split("|", 1)
    _url, sandbox, market_type, egress = rest.rsplit("|", 3)
    name = f"{exchange} {market_type}" + (" sandbox" if sandbox == "True" else "")
    return f"{name} via {egress}" if egress else name
