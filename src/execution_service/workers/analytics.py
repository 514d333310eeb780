"""Analytics worker: keeps today's row of every active connection that trades or holds positions
(figures, balance, equity; the first snapshot of a day without activity yet, normally the
first tick after midnight UTC, is its opening equity), and after midnight UTC refreshes earlier
days once more and marks them final.

Every step is idempotent (rows are recomputed from positions and upserted), so several worker
processes may run it at once without claiming anything: the worst case is the same row written
twice with the same figures.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal

from execution_service.analytics import service as analytics
from execution_service.analytics.repository import AnalyticsRepository, PositionBook
from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.decimals import normalize
from execution_service.enums import MarketType
from execution_service.events.repository import EventRepository
from execution_service.exchanges.base import BalanceEntry
from execution_service.exchanges.budget import Priority, calling
from execution_service.exchanges.catalog import capabilities
from execution_service.models import ExecutionConnection

log = logging.getLogger(__name__)

# Past days finalised per tick: a backlog (a worker down for days) drains over a few ticks.
FINALISE_BATCH = 500
# Old events deleted per tick (the same: a backlog drains over ticks, each transaction short).
EVENTS_PRUNE_BATCH = 5000


def quote_of(symbols: list[str]) -> str | None:
    """The most common quote currency ("BTC/USDT:USDT" -> "USDT"); the earliest wins a tie."""
    quotes = [s.partition("/")[2].split(":", 1)[0].upper() for s in symbols if "/" in s]
    return Counter(quotes).most_common(1)[0][0] if quotes else None


def equity_of(conn: ExecutionConnection, balance: Decimal, book: PositionBook) -> Decimal:
    """The account's equity in its quote currency, as sizing counts it: the cash, plus what the
    positions add. On a real spot account the coins bought are no longer in the quote balance:
    they add their value at the last mark. Elsewhere (margin, derivatives, paper, a broker) the
    cash still counts what the positions cost or posted: they add their unrealised PnL."""
    caps = capabilities(conn.adapter, conn.exchange, conn.market_type)
    coins = conn.market_type == MarketType.spot and not (
        caps.simulated or caps.positions_are_tickets
    )
    return normalize(balance + (book.value if coins else book.unrealized))


async def _snapshot(ctx: AppContext, conn: ExecutionConnection, today: date) -> None:
    # The exchange answers outside any transaction; the positions are read after it, so the
    # open PnL is as recent as the balance.
    adapter = await ctx.adapters.for_connection(conn)
    with calling(Priority.BACKGROUND):  # the venues' request budgets: last in line
        balances: dict[str, BalanceEntry] = await adapter.fetch_balance()
    async with ctx.session_factory() as session:
        book = await AnalyticsRepository(session).position_book(conn.id)
        quote = quote_of(book.symbols)
        entry = balances.get(quote) if quote is not None else None
        balance = entry.total if entry is not None else None
        equity = equity_of(conn, balance, book) if balance is not None else None
        await analytics.snapshot_balance(session, conn.id, today, balance, equity, final=False)
        await session.commit()


async def _refresh(ctx: AppContext, connection_id: int, day: date, *, final: bool) -> None:
    async with ctx.session_factory() as session:
        await analytics.refresh_day(session, connection_id, day)
        if final:
            await analytics.snapshot_balance(session, connection_id, day, None, None, final=True)
        await session.commit()


async def _today(ctx: AppContext, conn: ExecutionConnection, today: date) -> None:
    # The snapshot first: on a day without activity yet, it is the day's opening equity.
    try:
        await _snapshot(ctx, conn, today)
    except Exception:
        log.exception("analytics: balance snapshot of connection %s failed", conn.id)
    try:
        await _refresh(ctx, conn.id, today, final=False)
    except Exception:
        log.exception("analytics: refreshing connection %s for %s failed", conn.id, today)


async def analytics_tick(ctx: AppContext, now: datetime | None = None) -> None:
    today = (now or utcnow()).date()
    start = analytics.day_start(today)
    async with ctx.session_factory() as session:
        repo = AnalyticsRepository(session)
        conns = await repo.active_today(today, start, start + analytics.DAY)
        past = await repo.unfinished_days(today, FINALISE_BATCH)
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)

    async def one(conn: ExecutionConnection) -> None:
        async with bound:
            await _today(ctx, conn, today)

    await asyncio.gather(*(one(c) for c in conns))
    for connection_id, day in past:
        try:
            await _refresh(ctx, connection_id, day, final=True)
        except Exception:
            log.exception("analytics: finalising connection %s for %s failed", connection_id, day)
    await prune_events(ctx, now or utcnow())


async def prune_events(ctx: AppContext, now: datetime) -> int:
    """Housekeeping: the outbox keeps `EXEC_EVENTS_RETENTION_DAYS` of history."""
    days = ctx.settings.events_retention_days
    if days <= 0:
        return 0
    try:
        async with ctx.session_factory() as session:
            repo = EventRepository(session)
            pruned = await repo.prune(now - timedelta(days=days), EVENTS_PRUNE_BATCH)
            await session.commit()
    except Exception:
        log.exception("events: pruning failed")
        return 0
    return pruned
