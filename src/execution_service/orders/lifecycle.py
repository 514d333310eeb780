"""One order's life: recorded `pending` and committed before the venue hears of it, sent outside
any transaction (`submit`), and its outcome recorded in a second transaction (`apply_result`,
`reject`), with the fill applied to the position book in that same transaction.

An unknown outcome (timeout, network) leaves the row `pending` for reconciliation by client
order id (`orders.tracker`) — it is never resent. Every status is counted (metrics) and the
ones other services hear of (`order.filled`, `order.rejected`) announced, once each.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from execution_service import metrics, observability
from execution_service.analytics import service as analytics
from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.decimals import ZERO, normalize
from execution_service.enums import EventType, OrderStatus, OrderType, Purpose
from execution_service.events import service as events
from execution_service.exchanges.base import (
    ExchangeAdapter,
    ExchangeBusy,
    ExchangeError,
    LeverageNotSet,
    OrderResult,
    Stops,
    TemporaryError,
)
from execution_service.models import ExecutionLog
from execution_service.orders import fills
from execution_service.positions import book
from execution_service.positions.pnl import fill_delta_price
from execution_service.redact import scrub

log = logging.getLogger(__name__)

ENDED = (OrderStatus.filled, OrderStatus.cancelled, OrderStatus.rejected)


def count(entry: ExecutionLog, before: str, adapter: str) -> None:
    """Each order counts once per status it reaches: re-applying what is already recorded (the
    tracker polls a resting order every tick) counts nothing."""
    if entry.status != before:
        metrics.ORDERS.labels(entry.status, adapter).inc()


def announce(session: AsyncSession | Session, entry: ExecutionLog, before: str) -> None:
    """`order.filled` / `order.rejected`, once: on the move into that status, in the transaction
    that records it. Re-applying a known outcome (the tracker polls every tick) says nothing."""
    kind = announced(entry, before)
    if kind is not None:
        events.record(session, kind, entry, events.order_payload(entry))


def announced(entry: ExecutionLog, before: str) -> EventType | None:
    """The event `announce` records for this move, if any."""
    return _ANNOUNCED.get(entry.status) if entry.status != before else None


_ANNOUNCED = {
    OrderStatus.filled: EventType.order_filled,
    OrderStatus.rejected: EventType.order_rejected,
    OrderStatus.skipped: EventType.order_skipped,
}


@dataclass
class Recording:
    """What recording outcomes in one transaction still has to do before it commits: insert the
    positions the fills open (all in one statement), then count and announce those orders (their
    events name the positions), and refresh the analytics rows of the days fills realised PnL on
    (exits, partial ones too)."""

    opened: list[tuple[ExecutionLog, dict[str, Any], str, str]] = field(default_factory=list)
    closed_days: set[tuple[int, date]] = field(default_factory=set)
    max_refusals: int = fills.DEFAULT_MAX_REFUSALS  # exits refused in a row before a flag

    async def finish(
        self, session: AsyncSession, analytics_days: set[tuple[int, date]] | None = None
    ) -> None:
        """`analytics_days`: collect the closed days there for the caller to refresh once after
        a batch (the monitor's), instead of refreshing them in this transaction."""
        await fills.open_positions(session, [(entry, values) for entry, values, *_ in self.opened])
        for entry, _, before, adapter in self.opened:
            count(entry, before, adapter)
            announce(session, entry, before)
        self.opened = []
        if analytics_days is not None:
            analytics_days |= self.closed_days
        elif self.closed_days:  # a few statements for all of them, not a few per row
            await analytics.refresh_days(session, self.closed_days)
        self.closed_days = set()


async def refresh_analytics(ctx: AppContext, days: set[tuple[int, date]]) -> None:
    """Each connection's row for the day after closes committed, in a transaction of its own: a
    close is booked (and read `closed`) without waiting for its analytics. Should this fail, the
    analytics worker recomputes the rows on its next tick."""
    if not days:
        return
    try:
        async with ctx.session_factory() as session:
            await analytics.refresh_days(session, days)
            await session.commit()
    except Exception:
        log.exception("analytics: refreshing %d rows after the closes failed", len(days))


async def apply_result(
    session: AsyncSession,
    entry: ExecutionLog,
    result: OrderResult,
    *,
    adapter: str,
    recording: Recording,
) -> None:
    """Record what the venue says about an order, and what its new fills do to the book."""
    before = entry.status
    fill = settle(entry, result)
    if fill is not None:
        booked = await fills.apply_fill(session, entry, fill, result.realized_pnl)
        if booked.closed_day is not None:
            recording.closed_days.add(booked.closed_day)
        if booked.opens is not None:  # counted and announced once the position has its id
            recording.opened.append((entry, booked.opens, before, adapter))
            return
    if entry.purpose == Purpose.exit and result.status in ENDED:
        await fills.release_exit(session, entry, recording.max_refusals)
    count(entry, before, adapter)
    announce(session, entry, before)


def settle(entry: ExecutionLog, result: OrderResult) -> book.Fill | None:
    """What the venue says about an order, on its log (no I/O); the terms of its new fill, if
    it has one, for the caller to book (`fills.apply_fill`, or a batch's `orders.bulk`)."""
    old_filled, old_avg, old_fee = entry.filled_quantity or ZERO, entry.average_price, entry.fee
    quote = fills.quote_of(entry.symbol)
    old_fees = fills.fees_by_currency(entry.fees, old_fee, entry.fee_currency, quote)
    entry.order_id = result.order_id or entry.order_id
    entry.status = result.status
    entry.filled_quantity = max(result.filled, old_filled)
    if result.average is not None:
        entry.average_price = result.average
    entry.fee = max(result.fee, old_fee or ZERO)
    entry.fee_currency = result.fee_currency or entry.fee_currency
    new_fees = fills.fees_by_currency(result.fees, entry.fee, entry.fee_currency, quote)
    if len(new_fees) > 1 or entry.fees:
        entry.fees = {k: str(v) for k, v in new_fees.items()}
    entry.response_data = scrub(result.raw)
    if entry.purpose == Purpose.exit and result.close_reason is not None:
        entry.close_reason = result.close_reason  # the venue closed it, and says why
    entry.error_code = entry.error_message = None
    if result.status == OrderStatus.rejected:
        entry.error_code = "exchange_rejected"
    delta = entry.filled_quantity - old_filled
    if delta <= 0:
        return None
    entry.executed_at = result.timestamp or utcnow()
    price = fill_delta_price(old_filled, old_avg, entry.filled_quantity, result.average or ZERO)
    paid = {c: normalize(v - old_fees.get(c, ZERO)) for c, v in new_fees.items()}
    paid = {c: v for c, v in paid.items() if v > 0}
    fill = fills.position_terms(entry.symbol, delta, price, paid, result.fee_prices)
    entry.fee_in_quote = normalize((entry.fee_in_quote or ZERO) + fill.fee)
    return fill


def reject(
    entry: ExecutionLog,
    code: str,
    message: str,
    *,
    adapter: str,
    status: OrderStatus = OrderStatus.rejected,
) -> None:
    """The order is refused (by a check here, or by the venue), or `skipped` (a follower's
    rules excluded it): recorded with why. The entry belongs to the session whose transaction
    records the refusal (flushed, so the event can name its id)."""
    before = entry.status
    entry.status = status
    entry.error_code = code
    entry.error_message = message[:1000]
    count(entry, before, adapter)
    announce(events.session_of(entry), entry, before)


def send_deadline(ctx: AppContext, entry: ExecutionLog) -> datetime:
    """The last moment a committed `pending` order may still be sent. The order tracker calls a
    pending order the exchange does not know "never sent" once it is `EXEC_PENDING_GRACE_SECONDS`
    old; a send may wait one exchange timeout for a slot toward its account and take another to
    be answered. An order still queued here past this deadline (a large fan-out, a batch of stops
    behind a slow exchange) is refused unsent instead: sent later, its fill could arrive on a
    row the tracker has already rejected."""
    settings = ctx.settings
    budget = settings.pending_grace_seconds - 2 * settings.exchange_timeout_ms / 1000
    return (entry.created_at or utcnow()) + timedelta(seconds=budget)


@dataclass(frozen=True)
class Outcome:
    """What the exchange said about one sent order (an OrderResult, or the error it raised)."""

    log_id: int
    answer: OrderResult | ExchangeError
    adapter: str  # the connection's adapter kind, for the metrics' labels
    submitted_at: datetime
    acknowledged_at: datetime
    received_at: datetime | None = None


def _stops(adapter: ExchangeAdapter, entry: ExecutionLog) -> Stops | None:
    """An entry's SL/TP, where the venue holds them with the order (`stops_with_entry`)."""
    if entry.purpose != Purpose.entry or not adapter.capabilities.stops_with_entry:
        return None
    plan = entry.plan or {}
    sl, tp = plan.get("sl_price"), plan.get("tp_price")
    return Stops(Decimal(str(sl)) if sl else None, Decimal(str(tp)) if tp else None)


async def set_leverage(adapter: ExchangeAdapter, entry: ExecutionLog) -> ExchangeError | None:
    """An entry on a venue that takes a leverage per symbol (`venue_positions`) is sent only once
    the venue holds the one its plan was sized with (and the margin mode this service uses):
    the adapter sets it before the first order on a symbol and again whenever it changes. If
    the venue refuses, or its answer is lost, the entry is refused unsent (`leverage_not_set`)."""
    leverage = (entry.plan or {}).get("leverage")
    if entry.purpose != Purpose.entry or not leverage or not adapter.capabilities.venue_positions:
        return None
    try:
        await adapter.set_leverage(entry.symbol, Decimal(str(leverage)))
    except ExchangeError as exc:
        return LeverageNotSet(f"leverage {leverage} not set: {exc.message}")
    return None


async def submit(
    adapter: ExchangeAdapter,
    entry: ExecutionLog,
    adapter_name: str,
    received_at: datetime | None = None,
    ticket: str | None = None,
    *,
    send_by: datetime | None = None,
) -> Outcome:
    """Send a committed `pending` order; no database here. The caller records the outcome.
    `ticket`: an exit on a venue of broker tickets closes the ticket its entry opened. Past
    `send_by` (`send_deadline`) the order is not sent: its outcome is `exchange_busy`."""
    observability.connection_id.set(entry.execution_connection_id)
    observability.client_order_id.set(entry.client_order_id)
    submitted_at = utcnow()
    answer: OrderResult | ExchangeError
    try:
        late = send_by is not None and submitted_at > send_by
        refused = None if late or ticket is not None else await set_leverage(adapter, entry)
        if late:
            answer = ExchangeBusy("waited too long for its turn to be sent: not sent")
        elif refused is not None:
            answer = refused
        elif ticket is not None:
            answer = await adapter.close_position(
                entry.symbol, ticket, entry.quantity, entry.client_order_id
            )
        else:
            answer = await adapter.create_order(
                entry.symbol,
                entry.direction,
                entry.order_type,
                entry.quantity,
                entry.price if entry.order_type == OrderType.limit else None,
                entry.client_order_id,
                _stops(adapter, entry),
                # An exit only ever shrinks the position, where the venue can be told so.
                reduce_only=entry.purpose == Purpose.exit and adapter.capabilities.reduce_only,
            )
    except ExchangeError as exc:
        answer = exc
    except Exception as exc:  # unknown outcome: keep pending, never resend
        log.exception("order %s: unexpected error while sending", entry.client_order_id)
        answer = TemporaryError(f"unexpected {type(exc).__name__}")
    return Outcome(entry.id, answer, adapter_name, submitted_at, utcnow(), received_at)
