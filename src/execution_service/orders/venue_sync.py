"""Derivatives accounts' positions as the venue holds them, reconciled with ours: at start-up and
every `venue_sync_interval_seconds`, for each swap connection holding positions on a venue that
keeps positions of its own (`venue_positions`):

- the liquidation price the venue shows is written on our positions in that symbol;
- funding the venue settled is booked on them (`funding_fees`, and in `realized_pnl`), each
  payment once (`funding_synced_at`), split by quantity where several are open;
- where the venue holds less of our side than we do, and no order of ours is in flight there,
  what is missing was closed without us: liquidated (or auto-deleveraged), or closed by hand. It
  is recorded as an exit at the venue's close price (`closed_reason` `liquidation` or
  `external`, the venue's PnL and fee where it reports them), in one transaction with no order
  sent, so that position can never be "closed" again by an order that would open the other
  side. What the venue holds beyond ours is not ours, and is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from execution_service import metrics
from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import utcnow
from execution_service.decimals import ZERO, normalize, ratio
from execution_service.enums import CloseReason, OrderStatus, OrderType, PositionStatus
from execution_service.exchanges.base import (
    ExchangeAdapter,
    ExchangeError,
    FundingPayment,
    OrderResult,
    VenueClose,
    VenuePosition,
)
from execution_service.models import ExecutionConnection, ExecutionLog, ExecutionPosition
from execution_service.orders import fills, protection_legs
from execution_service.orders.exits import exit_values
from execution_service.orders.lifecycle import Recording, apply_result
from execution_service.orders.protection import protect_soon
from execution_service.orders.repository import OrderRepository
from execution_service.positions.book import exit_direction
from execution_service.positions.repository import PositionRepository

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    accounts: int = 0
    closed: list[int] = field(default_factory=list)  # positions closed as the venue says
    funding: int = 0  # funding payments booked
    failed: int = 0  # accounts whose venue could not be read


async def sync_venues(ctx: AppContext) -> SyncReport:
    async with ctx.session_factory() as session:
        conns = await PositionRepository(session).derivative_accounts()
    conns = [c for c in conns if ctx.adapters.capabilities(c).venue_positions]
    report = SyncReport(accounts=len(conns))
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)

    async def one(conn: ExecutionConnection) -> None:
        async with bound:
            try:
                await _sync_account(ctx, conn, report)
            except (CredentialsError, ExchangeError) as exc:
                report.failed += 1
                log.warning("connection %s: the venue's positions were not read: %s", conn.id, exc)

    await asyncio.gather(*(one(c) for c in conns))
    return report


async def _sync_account(ctx: AppContext, conn: ExecutionConnection, report: SyncReport) -> None:
    async with ctx.session_factory() as session:
        positions = await PositionRepository(session).held_on(conn.id)
        busy = await OrderRepository(session).busy_symbols(conn.id)
    symbols = sorted({p.symbol for p in positions})
    if not symbols:
        return
    adapter = await ctx.adapters.for_connection(conn)
    held = {v.symbol: v for v in await adapter.fetch_positions(symbols)}
    for symbol in symbols:
        ours = [p for p in positions if p.symbol == symbol]
        venue = held.get(symbol)
        report.funding += await _book_funding(ctx, adapter, ours)
        await _show_liquidation_price(ctx, ours, venue)
        if symbol in busy or any(p.status != PositionStatus.open for p in ours):
            continue  # an order of ours is in flight there: its outcome comes first
        report.closed += await _reconcile(ctx, adapter, conn, ours, venue)


# --- what the venue shows: liquidation price, funding ------------------------------------------


async def _show_liquidation_price(
    ctx: AppContext, ours: Sequence[ExecutionPosition], venue: VenuePosition | None
) -> None:
    if venue is None or venue.liquidation_price is None or not ours:
        return
    if venue.side != ours[0].direction:
        return
    stale = [p.id for p in ours if p.liquidation_price != venue.liquidation_price]
    if not stale:
        return
    async with ctx.session_factory() as session:
        for row in await PositionRepository(session).lock_held(stale):
            row.liquidation_price = venue.liquidation_price
        await session.commit()


async def _book_funding(
    ctx: AppContext, adapter: ExchangeAdapter, ours: Sequence[ExecutionPosition]
) -> int:
    """The venue's funding on the symbol since the oldest watermark, each payment once."""
    if not ours or not adapter.capabilities.funding:
        return 0
    since = min(p.funding_synced_at or p.opened_at for p in ours)
    payments = [f for f in await adapter.fetch_funding(ours[0].symbol, since) if f.at > since]
    if not payments:
        return 0
    booked = 0
    async with ctx.session_factory() as session:
        rows = await PositionRepository(session).lock_held([p.id for p in ours])
        for payment in payments:
            booked += _book_payment(payment, rows)
        latest = max(f.at for f in payments)
        for row in rows:
            if row.funding_synced_at is None or row.funding_synced_at < latest:
                row.funding_synced_at = latest
        await session.commit()
    return booked


def _book_payment(payment: FundingPayment, rows: Sequence[ExecutionPosition]) -> int:
    """A payment on the symbol is shared by our positions open then, by quantity (the last
    takes what division leaves, so the shares add up to the payment exactly)."""
    open_then = [r for r in rows if r.opened_at <= payment.at]
    shares = split(payment.amount, [r.quantity for r in open_then])
    booked = 0
    for row, share in zip(open_then, shares, strict=True):
        if (row.funding_synced_at or row.opened_at) >= payment.at:
            continue  # booked on an earlier sync
        row.funding_fees = normalize((row.funding_fees or ZERO) + share)
        row.realized_pnl = normalize(row.realized_pnl + share)
        booked = 1
    return booked


def split(amount: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """`amount` in parts proportional to `weights`, adding up to it exactly."""
    total = sum(weights, ZERO)
    if not weights or total <= 0:
        return [ZERO for _ in weights]
    parts = [ratio(amount * w, total) for w in weights[:-1]]
    return [*parts, normalize(amount - sum(parts, ZERO))]


# --- what the venue closed without us ----------------------------------------------------------


@dataclass(frozen=True)
class VenueExit:
    """How `amount` of our side went away at the venue, as far as it says."""

    amount: Decimal
    price: Decimal
    reason: CloseReason
    pnl: Decimal | None  # gross, for exactly `amount` (None: computed from the price)
    fee: Decimal
    order_id: str
    at: datetime
    raw: dict[str, object]


def venue_exit(
    closes: Sequence[VenueClose],
    gone: Decimal,
    side: str,
    booked_fees: Decimal,
    fallback: Decimal,
) -> VenueExit:
    """Pure. The venue's records of closes of our side, together; without any, the last price
    we know, as `external` (and said in `raw`). The venue's gross PnL and total fees are used
    only where its records are of exactly what we miss (`gone`); a fee reported as a
    position's total (open and close) counts what we did not book already."""
    mine = [c for c in closes if c.side == side]
    amount = sum((c.amount for c in mine), ZERO)
    now = utcnow()
    if not mine or amount <= 0:
        raw: dict[str, object] = {"reconciled": "the venue holds less than we do, and no record"}
        return VenueExit(gone, fallback, CloseReason.external, None, ZERO, "", now, raw)
    price = ratio(sum((c.amount * c.price for c in mine), ZERO), amount)
    exact = amount == gone
    pnl = None
    if exact and all(c.pnl is not None for c in mine):
        pnl = sum((c.pnl or ZERO for c in mine), ZERO)
    fee = sum((c.fee or ZERO for c in mine), ZERO)
    totals = [c.fees_total for c in mine if c.fee is None and c.fees_total is not None]
    if exact and totals:
        fee += max(sum(totals, ZERO) - booked_fees, ZERO)
    reason = CloseReason.liquidation if any(c.liquidation for c in mine) else CloseReason.external
    last = mine[-1]
    raw = {"venue_closes": [c.raw for c in mine]}
    return VenueExit(gone, price, reason, pnl, normalize(fee), last.order_id, last.at, raw)


async def _reconcile(
    ctx: AppContext,
    adapter: ExchangeAdapter,
    conn: ExecutionConnection,
    ours: Sequence[ExecutionPosition],
    venue: VenuePosition | None,
) -> list[int]:
    side = ours[0].direction
    if any(p.direction != side for p in ours):
        log.error("connection %s: open both ways in %s: not reconciled", conn.id, ours[0].symbol)
        return []
    mine = sum((p.quantity for p in ours), ZERO)
    theirs = venue.amount if venue is not None and venue.side == side else ZERO
    if theirs >= mine:
        return []
    if await protection_legs.settle_legs(ctx, adapter, conn, [p.id for p in ours]):
        protect_soon(ctx)  # the legs its fill left behind are cancelled
        return []  # a protective order of ours filled: booked as its own close; looked at anew
    symbol = ours[0].symbol
    since = min(p.opened_at for p in ours) - timedelta(seconds=1)
    async with ctx.session_factory() as session:
        mine_sent = await OrderRepository(session).venue_order_ids([p.id for p in ours])
    # Our own orders' fills (a partial exit) are booked already: only the others are news.
    closes = [c for c in await adapter.fetch_closes(symbol, since) if c.order_id not in mine_sent]
    fallback = ours[-1].current_price or ours[-1].entry_price
    booked_fees = sum((p.fees for p in ours), ZERO)
    found = venue_exit(closes, mine - theirs, side, booked_fees, fallback)
    return await _record(ctx, conn, ours, found)


async def _record(
    ctx: AppContext,
    conn: ExecutionConnection,
    ours: Sequence[ExecutionPosition],
    found: VenueExit,
) -> list[int]:
    """What went away, oldest position first, each as an exit of its own that was never sent:
    claimed, filled and booked in one transaction."""
    plan, left = [], found.amount
    for position in ours:
        take = min(position.quantity, left)
        if take > 0:
            plan.append((position, take))
            left -= take
    takes = [take for _, take in plan]
    pnls = split(found.pnl, takes) if found.pnl is not None else [None] * len(plan)
    fees = split(found.fee, takes)
    closed: list[int] = []
    async with ctx.session_factory() as session:
        ids = [p.id for p, _ in plan]
        rows = {p.id: p for p in await PositionRepository(session).lock_open(ids, skip_locked=True)}
        counts = await OrderRepository(session).exit_counts(ids)
        recording = Recording(max_refusals=ctx.settings.exit_max_refusals)
        fmt = ctx.adapters.capabilities(conn).client_ids
        for (position, take), pnl, fee in zip(plan, pnls, fees, strict=True):
            row = rows.get(position.id)
            if row is None or row.quantity != position.quantity:
                continue  # it changed meanwhile: the next sync looks again
            row.status = PositionStatus.closing
            n, full = counts.get(row.id, 0) + 1, take >= row.quantity
            entry = ExecutionLog(**exit_values(ctx, row, take, found.reason, n, full, fmt))
            entry.submitted_at = utcnow()
            session.add(entry)
            await session.flush()
            result = _result(entry.client_order_id, row, take, pnl, fee, found)
            await apply_result(session, entry, result, adapter=conn.adapter, recording=recording)
            closed.append(row.id)
            metrics.VENUE_CLOSES.labels(found.reason).inc()
        await recording.finish(session)
        await session.commit()
    for position_id in closed:
        log.warning("position %s: closed at the venue without us (%s)", position_id, found.reason)
    return closed


def _result(
    client_order_id: str,
    position: ExecutionPosition,
    quantity: Decimal,
    pnl: Decimal | None,
    fee: Decimal,
    found: VenueExit,
) -> OrderResult:
    quote = fills.quote_of(position.symbol)
    return OrderResult(
        order_id=found.order_id,
        client_order_id=client_order_id,
        symbol=position.symbol,
        side=exit_direction(position.direction),
        type=OrderType.market,
        status=OrderStatus.filled,
        amount=quantity,
        filled=quantity,
        average=found.price,
        fee=fee,
        fee_currency=quote,
        timestamp=found.at,
        raw={**found.raw, "reconciled": f"closed at the venue without us ({found.reason})"},
        fees={quote: fee} if fee else {},
        close_reason=found.reason,
        realized_pnl=pnl,
    )
