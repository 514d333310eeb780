"""Execution logs: one row per order. The row is committed `pending` before the exchange hears of
the order; `send` calls the adapter outside any transaction and records the outcome in a second.
An unknown outcome (timeout, network) leaves the row `pending` for reconciliation by client
order id — it is never resent."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from execution_service import metrics, observability
from execution_service.connections.service import mark_error
from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.decimals import ZERO, normalize
from execution_service.enums import EventType
from execution_service.errors import BadGateway, Conflict, NotFound
from execution_service.events import service as events
from execution_service.exchanges.base import (
    AuthFailed,
    ExchangeAdapter,
    ExchangeBusy,
    ExchangeError,
    OrderNotFound,
    OrderResult,
    TemporaryError,
)
from execution_service.logs import tickets
from execution_service.models import ExecutionConnection, ExecutionLog, ExecutionPosition
from execution_service.positions import fills
from execution_service.positions.pnl import fill_delta_price
from execution_service.principal import Principal
from execution_service.redact import scrub

log = logging.getLogger(__name__)


def entry_client_order_id(prefix: str, signal_id: int, connection_id: int) -> str:
    return f"{prefix}-{signal_id}-{connection_id}-e"


def exit_client_order_id(prefix: str, position_id: int, n: int) -> str:
    return f"{prefix}-p{position_id}-x{n}"


def _count(entry: ExecutionLog, before: str, adapter: str) -> None:
    """Each order counts once per status it reaches: re-applying what is already recorded (the
    tracker polls a resting order every tick) counts nothing."""
    if entry.status != before:
        metrics.ORDERS.labels(entry.status, adapter).inc()


def _announce(session: AsyncSession | Session, entry: ExecutionLog, before: str) -> None:
    """`order.filled` / `order.rejected`, once: on the move into that status, in the transaction
    that records it. Re-applying a known outcome (the tracker polls every tick) says nothing."""
    if entry.status != before and entry.status in ("filled", "rejected"):
        kind = EventType.order_filled if entry.status == "filled" else EventType.order_rejected
        events.record(session, kind, entry, events.order_payload(entry))


async def apply_result(
    session: AsyncSession,
    entry: ExecutionLog,
    result: OrderResult,
    *,
    adapter: str,
    defer: bool = False,
) -> dict[str, Any] | None:
    """Record what the exchange says about an order, and what its new fills do to positions.

    `defer`: a fill that opens a new position returns it unsaved, and the caller opens it with
    `fills.open_positions` (many in one INSERT), then counts and announces the order."""
    before = entry.status
    old_filled, old_avg, old_fee = entry.filled_quantity or ZERO, entry.average_price, entry.fee
    entry.order_id = result.order_id or entry.order_id
    entry.status = result.status
    entry.filled_quantity = max(result.filled, old_filled)
    if result.average is not None:
        entry.average_price = result.average
    entry.fee = max(result.fee, old_fee or ZERO)
    entry.fee_currency = result.fee_currency or entry.fee_currency
    entry.response_data = scrub(result.raw)
    if entry.purpose == "exit" and result.close_reason is not None:
        entry.close_reason = result.close_reason  # the broker closed it, and why
    entry.error_code = entry.error_message = None
    if result.status == "rejected":
        entry.error_code = "exchange_rejected"
    delta = entry.filled_quantity - old_filled
    if delta > 0:
        entry.executed_at = result.timestamp or utcnow()
        price = fill_delta_price(old_filled, old_avg, entry.filled_quantity, result.average or ZERO)
        quantity, fee = position_terms(
            entry.symbol, delta, price, normalize(entry.fee - (old_fee or ZERO)), entry.fee_currency
        )
        if entry.purpose == "entry" and entry.position_id is None and defer:
            return fills.new_position(entry, quantity, price, fee)
        if entry.purpose == "entry":
            await fills.apply_entry_fill(session, entry, quantity, price, fee)
        else:
            await fills.apply_exit_fill(session, entry, delta, price, fee, result.realized_pnl)
    if entry.purpose == "exit" and result.status in ("filled", "cancelled", "rejected"):
        await fills.release_exit(session, entry)
    _count(entry, before, adapter)
    _announce(session, entry, before)  # last: the payload names the position the fill opened
    return None


def position_terms(
    symbol: str, filled: Decimal, price: Decimal, fee: Decimal, fee_currency: str | None
) -> tuple[Decimal, Decimal]:
    """What a fill adds to a position: the quantity actually held and the fee in quote currency.

    A spot exchange that takes its fee from the bought base asset (Binance does) leaves us holding
    less than filled; that fee is worth fee * price in quote. A fee in a third currency (BNB) has
    no price here: it stays on the execution log and is not booked against the position.
    """
    base, _, rest = symbol.partition("/")
    quote = rest.split(":", 1)[0]
    if fee_currency is None or fee_currency == quote:
        return filled, fee
    if fee_currency == base:
        return normalize(filled - fee), normalize(fee * price)
    return filled, ZERO


def reject(entry: ExecutionLog, code: str, message: str, *, adapter: str) -> None:
    before = entry.status
    entry.status = "rejected"
    entry.error_code = code
    entry.error_message = message[:1000]
    _count(entry, before, adapter)
    # The entry belongs to the session whose transaction records the refusal (it must be
    # flushed, so the event can name its id).
    _announce(events.session_of(entry), entry, before)


async def send(
    ctx: AppContext,
    log_id: int,
    adapter: ExchangeAdapter,
    received_at: datetime | None = None,
    *,
    entry: ExecutionLog | None = None,
    adapter_name: str | None = None,
) -> ExecutionLog:
    """Send a committed `pending` order and record the outcome. Returns the log as recorded.

    A caller that has just committed the log (`entry`) and knows its connection's adapter
    (`adapter_name`) passes them: they are not read again."""
    ticket = None
    if entry is None or adapter_name is None:
        async with ctx.session_factory() as session:
            entry = await session.get(ExecutionLog, log_id)
            assert entry is not None
            conn = await session.get(ExecutionConnection, entry.execution_connection_id)
            adapter_name = conn.adapter if conn is not None else "unknown"
    assert entry.status == "pending"
    if entry.purpose == "exit" and adapter.capabilities.positions_are_tickets:
        async with ctx.session_factory() as session:
            ticket = await session.scalar(
                select(ExecutionLog.order_id)
                .join(ExecutionPosition, ExecutionPosition.execution_log_id == ExecutionLog.id)
                .where(ExecutionPosition.id == entry.position_id)
            )
    send_by = send_deadline(ctx, entry)
    outcome = await submit(adapter, entry, adapter_name, received_at, ticket, send_by=send_by)
    (recorded,) = await record_outcomes(ctx, [outcome])
    return recorded


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
    Past `send_by` (`send_deadline`) the order is not sent: its outcome is `exchange_busy`."""
    observability.connection_id.set(entry.execution_connection_id)
    observability.client_order_id.set(entry.client_order_id)
    submitted_at = utcnow()
    answer: OrderResult | ExchangeError
    try:
        if send_by is not None and submitted_at > send_by:
            answer = ExchangeBusy("waited too long for its turn to be sent: not sent")
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
                entry.price if entry.order_type == "limit" else None,
                entry.client_order_id,
                tickets.stops(adapter, entry),
            )
    except ExchangeError as exc:
        answer = exc
    except Exception as exc:  # unknown outcome: keep pending, never resend
        log.exception("order %s: unexpected error while sending", entry.client_order_id)
        answer = TemporaryError(f"unexpected {type(exc).__name__}")
    return Outcome(entry.id, answer, adapter_name, submitted_at, utcnow(), received_at)


@dataclass(frozen=True)
class Outcome:
    """What the exchange said about one sent order (an OrderResult, or the error it raised)."""

    log_id: int
    answer: OrderResult | ExchangeError
    adapter: str  # the connection's adapter kind, for the metrics' labels
    submitted_at: datetime
    acknowledged_at: datetime
    received_at: datetime | None = None


# `last_used_at` is a connection's "recently used" mark, not an audit trail (the execution logs
# are): a process writes it at most once per this interval per connection (`ctx.last_used_written`),
# which saves the hot path an UPDATE per order. It lags the latest order by less than this.
LAST_USED_PRECISION = timedelta(seconds=60)


def stale_last_used(
    used: Sequence[tuple[int, datetime]], written: dict[int, datetime]
) -> dict[datetime, set[int]]:
    """The `last_used_at` writes due, grouped by value (one UPDATE each; one for a whole batch):
    a connection's latest use, unless `written` has one less than LAST_USED_PRECISION before it."""
    latest: dict[int, datetime] = {}
    for conn_id, at in used:
        if conn_id not in latest or at > latest[conn_id]:
            latest[conn_id] = at
    due: dict[datetime, set[int]] = {}
    for conn_id, at in latest.items():
        last = written.get(conn_id)
        if last is None or at - last >= LAST_USED_PRECISION:
            due.setdefault(at, set()).add(conn_id)
    return due


async def record_outcomes(ctx: AppContext, outcomes: Sequence[Outcome]) -> list[ExecutionLog]:
    """Record sent orders' outcomes (any connections) in one transaction:
    each log exactly as `send` records a single one, the new positions in one multi-row INSERT.
    Returns the logs as recorded, in the order given."""
    async with ctx.session_factory() as session:
        rows = await session.scalars(
            select(ExecutionLog)
            .where(ExecutionLog.id.in_([o.log_id for o in outcomes]))
            .order_by(ExecutionLog.id)
            .with_for_update()
        )
        by_id = {entry.id: entry for entry in rows}
        opened: list[tuple[ExecutionLog, dict[str, Any], str, str]] = []
        for outcome in outcomes:
            entry = by_id[outcome.log_id]
            before = entry.status
            answer, adapter_name = outcome.answer, outcome.adapter
            entry.submitted_at = outcome.submitted_at
            start = outcome.received_at or entry.received_at or outcome.submitted_at
            entry.latency_ms = int((outcome.acknowledged_at - start).total_seconds() * 1000)
            if entry.status != "pending":
                # Reconciliation got there first and recorded the truth, unless it called the
                # order lost while it was in fact filled (the send deadline exists to prevent
                # that): say so loudly rather than drop a fill without a word.
                filled = isinstance(answer, OrderResult) and answer.filled > 0
                if entry.status == "rejected" and filled:
                    log.error(
                        "order %s filled after it was recorded %s: reconcile by hand",
                        entry.client_order_id,
                        entry.error_code,
                    )
            elif isinstance(answer, OrderResult):
                # A new position is inserted with the others below; the order's event names it,
                # so that order is counted and announced after.
                position = await apply_result(
                    session, entry, answer, adapter=adapter_name, defer=True
                )
                if position is not None:
                    opened.append((entry, position, before, adapter_name))
            elif isinstance(answer, TemporaryError):
                entry.error_message = f"outcome unknown, to reconcile: {answer.message}"[:1000]
            else:
                reject(entry, answer.code, answer.message, adapter=adapter_name)
                if entry.purpose == "exit":
                    await fills.release_exit(session, entry)
                if isinstance(answer, AuthFailed):
                    conn = await session.get(ExecutionConnection, entry.execution_connection_id)
                    if conn is not None:
                        mark_error(conn, answer.message)
        await fills.open_positions(session, [(entry, position) for entry, position, *_ in opened])
        for entry, _, before, adapter_name in opened:
            _count(entry, before, adapter_name)
            _announce(session, entry, before)
        used = stale_last_used(
            [(by_id[o.log_id].execution_connection_id, o.acknowledged_at) for o in outcomes],
            ctx.last_used_written,
        )
        for at, conn_ids in used.items():  # one UPDATE per answer time: one for a whole batch
            await session.execute(
                update(ExecutionConnection)
                .where(ExecutionConnection.id.in_(sorted(conn_ids)))
                .values(last_used_at=at)
                .execution_options(synchronize_session=False)
            )
        await session.commit()
    for at, conn_ids in used.items():  # written: the next write is due LAST_USED_PRECISION on
        ctx.last_used_written.update(dict.fromkeys(conn_ids, at))
    recorded = [by_id[o.log_id] for o in outcomes]
    for outcome, entry in zip(outcomes, recorded, strict=True):
        if not isinstance(outcome.answer, TemporaryError):  # the exchange answered: latency
            metrics.ORDER_LATENCY.labels(entry.purpose).observe((entry.latency_ms or 0) / 1000)
        # The ids of the order this line is about (a batch records many in one task).
        observability.connection_id.set(entry.execution_connection_id)
        observability.client_order_id.set(entry.client_order_id)
        log.info(
            "order %s %s",
            entry.client_order_id,
            entry.status,
            extra={
                "status": entry.status,
                "latency_ms": entry.latency_ms,
                "error": entry.error_code,
            },
        )
    return recorded


# --- API ------------------------------------------------------------------------------------


async def list_logs(
    session: AsyncSession,
    principal: Principal,
    *,
    connection_id: int | None,
    status: str | None,
    signal_id: int | None,
    symbol: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[ExecutionLog], int]:
    stmt = principal.scope(select(ExecutionLog), ExecutionLog)
    if connection_id is not None:
        stmt = stmt.where(ExecutionLog.execution_connection_id == connection_id)
    if status is not None:
        stmt = stmt.where(ExecutionLog.status == status)
    if signal_id is not None:
        stmt = stmt.where(ExecutionLog.signal_id == signal_id)
    if symbol is not None:
        stmt = stmt.where(ExecutionLog.symbol == symbol)
    if since is not None:
        stmt = stmt.where(ExecutionLog.created_at >= since)
    if until is not None:
        stmt = stmt.where(ExecutionLog.created_at < until)
    rows = await session.scalars(stmt.order_by(ExecutionLog.id.desc()).limit(limit).offset(offset))
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    return rows.all(), total or 0


async def get_log(session: AsyncSession, principal: Principal, log_id: int) -> ExecutionLog:
    stmt = principal.scope(select(ExecutionLog), ExecutionLog).where(ExecutionLog.id == log_id)
    entry = (await session.scalars(stmt)).first()
    if entry is None:
        raise NotFound(f"execution log {log_id} not found")
    return entry


async def cancel(
    session: AsyncSession, ctx: AppContext, principal: Principal, log_id: int
) -> ExecutionLog:
    entry = await get_log(session, principal, log_id)
    if entry.status not in ("open", "partially_filled"):
        raise Conflict(
            f"execution log {log_id} is {entry.status}: only a resting order can be cancelled",
            code="not_cancellable",
        )
    conn = await session.get(ExecutionConnection, entry.execution_connection_id)
    assert conn is not None
    await session.commit()  # no transaction while the exchange answers
    adapter = await ctx.adapters.for_connection(conn)
    try:
        result = await adapter.cancel_order(
            entry.symbol, order_id=entry.order_id, client_order_id=entry.client_order_id
        )
    except OrderNotFound:
        result = await adapter.fetch_order(entry.symbol, client_order_id=entry.client_order_id)
    except ExchangeError as exc:
        raise BadGateway(f"cancel failed: {exc.message}", code=exc.code) from None
    entry = await session.get(ExecutionLog, log_id, with_for_update=True)  # type: ignore[assignment]
    assert entry is not None
    await apply_result(session, entry, result, adapter=conn.adapter)
    await session.commit()
    return entry


def as_decimal(value: Decimal | None) -> Decimal:
    return value if value is not None else ZERO
