"""Fetching data connections (ccxt, mtapi) store what they fetch.

A feed tick claims the active fetching connections that are due (several workers never poll one
at once), fetches the tickers of each one's symbols and of its open positions' symbols outside
any transaction, stores them as ticks through the one write path (`store`), records each one's
health, and builds the bars of its configured timeframes once their period has closed. The
monitor then reads what was stored, like any other price.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service import metrics
from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import utcnow
from execution_service.enums import FeedMode
from execution_service.exchanges.base import AuthFailed, ExchangeError
from execution_service.exchanges.capabilities import Stream
from execution_service.exchanges.catalog import feed_capabilities
from execution_service.exchanges.kinds import DATA_KINDS
from execution_service.market_data import bars
from execution_service.market_data.repository import (
    BuiltBarsRepository,
    DataConnectionRepository,
    LatestRepository,
    MarketDataRepository,
)
from execution_service.market_data.store import Point, store
from execution_service.models import DataConnection
from execution_service.settings import Settings

log = logging.getLogger(__name__)

FETCHING = [t for t, kind in DATA_KINDS.items() if kind.fetches]
CLAIM_LIMIT = 500  # connections one tick polls at most (the rest are due at the next)
CONCURRENCY = 16  # connections polled at once
MAX_BACKOFF_SECONDS = 60.0  # a failing feed is retried at least this often


def is_stale(row: DataConnection, now: datetime, stale_seconds: float) -> bool:
    """An active fetching connection that has not fetched for `stale_seconds` (since it was
    created, if it never has). A manual connection's freshness is its pusher's business."""
    if not row.is_active or not DATA_KINDS[row.type].fetches:
        return False
    last = row.last_fetched_at or row.created_at
    return last is None or now - last > timedelta(seconds=stale_seconds)


def is_streamed(row: DataConnection, now: datetime) -> bool:
    """Its prices are pushed now: a worker holds its stream and last said it is healthy."""
    held = row.streamed_until is not None and row.streamed_until > now
    return held and row.mode == FeedMode.streaming


def mode_of(row: DataConnection, now: datetime) -> FeedMode | None:
    """How a fetching connection gets its prices now (None: a manual one, pushed to us)."""
    if not DATA_KINDS[row.type].fetches:
        return None
    return FeedMode.streaming if is_streamed(row, now) else FeedMode.polling


def can_stream(row: DataConnection, settings: Settings) -> bool:
    """Its venue pushes tickers (a declared capability) and streams are on."""
    streams = feed_capabilities(row.type, row.exchange, row.market_type).streams
    return settings.market_data_streams and Stream.tickers in streams


async def polled_streams(session: AsyncSession, settings: Settings) -> list[int]:
    """The active connections polled while their venue could stream them (their stream is down
    or silent, or no worker streams them), for /health/ready; refreshes the modes gauge."""
    now = utcnow()
    rows = await DataConnectionRepository(session).active_of_types(FETCHING)
    modes = [mode_of(d, now) for d in rows]
    for mode in FeedMode:
        metrics.MARKET_DATA_FEEDS.labels(mode.value).set(modes.count(mode))
    polled = [d for d, m in zip(rows, modes, strict=True) if m is FeedMode.polling]
    return [d.id for d in polled if can_stream(d, settings)]


async def stale_feeds(session: AsyncSession, stale_seconds: float) -> list[int]:
    """The ids of the stale data connections (`is_stale`), for /health/ready and the gauge."""
    now = utcnow()
    rows = await DataConnectionRepository(session).active_of_types(FETCHING)
    stale = [d.id for d in rows if is_stale(d, now, stale_seconds)]
    metrics.MARKET_DATA_STALE_FEEDS.set(len(stale))
    return stale


@dataclass
class Fetched:
    data_connection_id: int
    points: list[Point] = field(default_factory=list)
    error: str | None = None
    fatal: bool = False  # the login is refused or does not decrypt: retrying will not help


@dataclass
class FeedReport:
    polled: int = 0
    stored: int = 0
    failed: int = 0
    bars: int = 0


class Feeder:
    """The feed loop's state: the last bar period built per (connection, timeframe) in this
    process, so a closed period is built once, not at every tick."""

    def __init__(self) -> None:
        self._built: dict[tuple[int, str], datetime] = {}

    async def tick(self, ctx: AppContext) -> None:
        await self.run(ctx)
        async with ctx.session_factory() as session:  # the gauges, after this tick's outcomes
            await stale_feeds(session, ctx.settings.market_data_stale_seconds)
            await polled_streams(session, ctx.settings)

    async def run(
        self, ctx: AppContext, now: datetime | None = None, only: Collection[int] | None = None
    ) -> FeedReport:
        """Poll the due connections (`only`: just these, as tests do) and build their bars."""
        now = now or utcnow()
        claimed, wanted = await _claim(ctx, now, only)
        report = FeedReport(polled=len(claimed))
        if not claimed:
            return report
        bound = asyncio.Semaphore(CONCURRENCY)

        async def one(data: DataConnection) -> Fetched:
            async with bound:
                return await fetch(ctx, data, wanted.get(data.id, set()))

        results = await asyncio.gather(*(one(d) for d in claimed))
        report.stored, report.failed = await _record(ctx, results, now)
        for result in results:  # the monitor in this process judges their positions now
            if result.points:
                ctx.prices_arrived(result.data_connection_id, {p.symbol for p in result.points})
        report.bars = await self.build_bars(ctx, claimed, now)
        return report

    async def build_bars(
        self, ctx: AppContext, rows: Sequence[DataConnection], now: datetime
    ) -> int:
        """For each configured timeframe whose period closed (with a grace for ticks stamped
        a little late), the bars of the periods since the last one built, from the stored
        ticks. Idempotent: building a period twice writes the same bar."""
        grace = timedelta(seconds=max(2.0, 2 * ctx.settings.market_data_poll_seconds))
        keep = ctx.settings.market_data_tick_retention_hours
        written = 0
        for data in rows:
            for setting in data.timeframes or []:
                timeframe = setting["timeframe"]
                length = bars.seconds(timeframe)
                if length is None:
                    continue
                until = bars.period_start(now - grace, timeframe)
                if self._built.get((data.id, timeframe)) == until:
                    continue
                written += await _build(ctx, data, timeframe, until, length, keep, now)
                self._built[(data.id, timeframe)] = until
        return written


async def _claim(
    ctx: AppContext, now: datetime, only: Collection[int] | None
) -> tuple[Sequence[DataConnection], dict[int, set[str]]]:
    # Claimed for longer than one poll can take (each read may retry), so a slow venue is not
    # polled again by another worker meanwhile; the outcome sets the real next time.
    lease = now + timedelta(seconds=ctx.settings.exchange_timeout_ms / 1000 * 4 + 1)
    async with ctx.session_factory() as session:
        repo = DataConnectionRepository(session)
        claimed = await repo.claim_due(FETCHING, now, lease, CLAIM_LIMIT, only)
        wanted = await repo.position_symbols([d.id for d in claimed])
        await session.commit()
    for data in claimed:
        wanted.setdefault(data.id, set()).update(data.symbols or [])
    return claimed, wanted


async def fetch(ctx: AppContext, data: DataConnection, symbols: set[str]) -> Fetched:
    """The tickers of `symbols` from the connection's source, as ticks; never raises."""
    out = Fetched(data.id)
    if not symbols:
        return out  # nothing to fetch is a healthy feed
    try:
        adapter = await ctx.adapters.feed(data)
        tickers = await adapter.fetch_tickers(sorted(symbols))
    except CredentialsError as exc:
        out.error, out.fatal = f"credentials: {exc}", True
    except AuthFailed as exc:
        out.error, out.fatal = f"{exc.code}: {exc.message}", True
    except ExchangeError as exc:
        out.error = f"{exc.code}: {exc.message}"
    else:
        now = utcnow()
        out.points = [Point.tick(s, t.timestamp or now, t.price) for s, t in tickers.items()]
        if not out.points:
            out.error = f"no prices for {', '.join(sorted(symbols))}"
    if out.error:
        log.warning("data connection %s: fetch failed: %s", data.id, out.error)
    return out


async def _record(ctx: AppContext, results: list[Fetched], now: datetime) -> tuple[int, int]:
    """Store every fetched tick and each connection's health, in one transaction."""
    poll = ctx.settings.market_data_poll_seconds
    stored = failed = 0
    async with ctx.session_factory() as session:
        rows = await DataConnectionRepository(session).by_ids(
            [r.data_connection_id for r in results]
        )
        for result in results:
            row = rows.get(result.data_connection_id)
            if row is None:
                continue  # deleted while it was polled
            if result.points:
                stored += await store(session, row.id, result.points, now)
                metrics.MARKET_DATA_POINTS.labels("fetched").inc(len(result.points))
            # Streamed again since it was claimed: its stream holds the next poll off.
            held = is_streamed(row, now)
            if result.error is None:
                row.last_fetched_at, row.last_error, row.consecutive_failures = now, None, 0
                if not held:
                    row.next_fetch_at = now + timedelta(seconds=poll)
                continue
            failed += 1
            row.consecutive_failures = (row.consecutive_failures or 0) + 1
            row.last_error = result.error
            backoff = min(poll * 2 ** min(row.consecutive_failures, 16), MAX_BACKOFF_SECONDS)
            # A refused login is not retried every second (brokers lock accounts for that).
            if not held:
                wait = MAX_BACKOFF_SECONDS if result.fatal else backoff
                row.next_fetch_at = now + timedelta(seconds=wait)
        await session.commit()
    return stored, failed


async def _build(
    ctx: AppContext,
    data: DataConnection,
    timeframe: str,
    until: datetime,
    length: int,
    keep_hours: float,
    now: datetime,
) -> int:
    async with ctx.session_factory() as session:
        last = await MarketDataRepository(session).last_at(data.id, timeframe)
        since = until - timedelta(seconds=length) if last is None else last
        if keep_hours:
            since = max(since, now - timedelta(hours=keep_hours))
        if since >= until:
            return 0
        symbols = await LatestRepository(session).symbols(data.id)
        made, _ = await BuiltBarsRepository(session).build(
            data.id, sorted(symbols), timeframe, since, until
        )
        points = [Point.built(b, timeframe) for b in made]
        written = await store(session, data.id, points, now, latest=False)
        await session.commit()
    metrics.MARKET_DATA_POINTS.labels("built").inc(written)
    return written
