"""Order tracking: resting orders (fills, partial fills, cancels) and `pending` orders whose
outcome was lost, both looked up at the venue by client order id. A pending order the venue has
never heard of, past the grace period, is `rejected` (`not_found_after_submit`); one it knows is
recorded as the venue says. Nothing is ever resent."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from execution_service import metrics
from execution_service.connections.service import mark_error
from execution_service.context import AppContext, FailureStreak
from execution_service.crypto import CredentialsError
from execution_service.db import utcnow
from execution_service.enums import ConnectionStatus, OrderStatus, Purpose
from execution_service.exchanges.base import ExchangeError, OrderNotFound, OrderResult
from execution_service.models import ExecutionConnection, ExecutionLog
from execution_service.orders import fills
from execution_service.orders.lifecycle import Recording, apply_result, refresh_analytics, reject
from execution_service.orders.protection import protect_soon
from execution_service.orders.repository import OrderRepository

log = logging.getLogger(__name__)

BATCH = 1000  # orders looked up per tick


@dataclass
class TrackReport:
    checked: int = 0
    updated: int = 0
    rejected: int = 0
    # The (connection, day) analytics rows the bookings touched: refreshed once they committed.
    days: set[tuple[int, date]] = field(default_factory=set)


async def track_orders(
    ctx: AppContext, now: datetime | None = None, *, starting: bool = False
) -> TrackReport:
    """`starting`: this process's first pass. Its own sends have not begun, so a young pending
    order was sent by a process that died (a crash between the venue's answer and its record):
    looked up now too (a lookup never resends; "not found" is acted on only past the grace)."""
    now = now or utcnow()
    # A pending order younger than the exchange timeout may still be on its way: leave it.
    in_flight = now - timedelta(milliseconds=ctx.settings.exchange_timeout_ms + 1000)
    if starting:
        in_flight = now
    grace = now - timedelta(seconds=ctx.settings.pending_grace_seconds)
    report = TrackReport()
    async with ctx.session_factory() as session:
        rows = await OrderRepository(session).to_track(in_flight, BATCH)
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)

    async def one(entry: ExecutionLog, conn: ExecutionConnection) -> None:
        async with bound:
            await _track(ctx, entry, conn, grace, report)

    await asyncio.gather(*(one(e, c) for e, c in rows))
    await refresh_analytics(ctx, report.days)
    return report


async def track_now(
    ctx: AppContext, conn: ExecutionConnection, client_order_ids: list[str]
) -> TrackReport:
    """The venue pushed updates of these orders (`Stream.orders`): look them up now, as a pass
    would. A protective leg that filled closes its position here; the sibling is cancelled by
    the protection pass started at once."""
    report = TrackReport()
    if not client_order_ids:
        return report
    grace = utcnow() - timedelta(seconds=ctx.settings.pending_grace_seconds)
    async with ctx.session_factory() as session:
        rows = await OrderRepository(session).live_by_client_ids(conn.id, client_order_ids)
    for entry in rows:  # read after the venue's update: newer than a pass's concurrent read
        await _track(ctx, entry, conn, grace, report, wait=True)
    if report.updated and any(e.purpose == Purpose.protect for e in rows):
        protect_soon(ctx)  # the sibling leg cancelled first, the analytics after
    await refresh_analytics(ctx, report.days)
    return report


async def _lookup_failed(
    ctx: AppContext, conn: ExecutionConnection, exc: CredentialsError | ExchangeError
) -> None:
    """Counted; logged once per kind of failure until a lookup succeeds; after
    `tracker_max_lookup_failures` in a row the connection is moved to `error` with the reason
    (its orders are still looked up: once the venue answers again, they are recorded)."""
    code = exc.code if isinstance(exc, ExchangeError) else "credentials_error"
    reason = f"{code}: {exc.message if isinstance(exc, ExchangeError) else exc}"
    metrics.ORDER_LOOKUP_FAILURES.labels(code).inc()
    streak = ctx.lookup_failures.setdefault(conn.id, FailureStreak())
    streak.count += 1
    if code not in streak.logged:
        streak.logged.add(code)
        log.warning("connection %s: order lookups fail: %s", conn.id, reason[:300])
    if streak.count < ctx.settings.tracker_max_lookup_failures:
        return
    count = streak.count
    ctx.lookup_failures.pop(conn.id, None)
    async with ctx.session_factory() as session:
        row = await OrderRepository(session).connection(conn.id)
        if row is None or row.status == ConnectionStatus.error:
            return
        mark_error(row, f"order lookups failed {count} times in a row: {reason}"[:1000])
        await session.commit()
    log.error("connection %s: moved to error after %d failed order lookups", conn.id, count)


async def _track(
    ctx: AppContext,
    entry: ExecutionLog,
    conn: ExecutionConnection,
    grace: datetime,
    report: TrackReport,
    *,
    wait: bool = False,
) -> None:
    report.checked += 1
    result: OrderResult | None = None
    try:
        adapter = await ctx.adapters.for_connection(conn)
        result = await adapter.fetch_order(
            entry.symbol,
            client_order_id=entry.client_order_id,
            trigger=entry.purpose == Purpose.protect,
        )
    except OrderNotFound:
        ctx.lookup_failures.pop(conn.id, None)  # the venue answered
        if entry.status != OrderStatus.pending or entry.created_at > grace:
            return
    except (CredentialsError, ExchangeError) as exc:
        await _lookup_failed(ctx, conn, exc)
        return
    else:
        ctx.lookup_failures.pop(conn.id, None)
    async with ctx.session_factory() as session:
        # SKIP LOCKED: another worker holding this row is already recording it.
        current = await OrderRepository(session).lock_if_unchanged(
            entry.id, entry.status, wait=wait
        )
        if current is None:
            return
        if result is None:
            reject(
                current,
                "not_found_after_submit",
                "the exchange has no order with this client order id",
                adapter=conn.adapter,
            )
            if current.purpose == Purpose.exit:
                await fills.release_exit(session, current, ctx.settings.exit_max_refusals)
            report.rejected += 1
        else:
            if current.status == OrderStatus.pending and current.submitted_at is None:
                current.submitted_at = utcnow()
            before = (current.status, current.filled_quantity)
            recording = Recording(max_refusals=ctx.settings.exit_max_refusals)
            await apply_result(session, current, result, adapter=conn.adapter, recording=recording)
            await recording.finish(session, report.days)
            if (current.status, current.filled_quantity) != before:
                report.updated += 1
        await session.commit()
