"""Recording what venues answered, many orders (any connections) in one transaction, and sending
committed orders: many on simulated venues at once (`fill_batch`; their outcomes are recorded
set-based by `orders.bulk`); those sent one by one have their outcomes recorded as they arrive
(`OutcomeRecorder`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

from execution_service import metrics, observability
from execution_service.connections.service import mark_error
from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.enums import OrderStatus, OrderType, Purpose
from execution_service.exchanges.base import (
    AuthFailed,
    ExchangeAdapter,
    ExchangeError,
    OrderRequest,
    OrderResult,
    TemporaryError,
)
from execution_service.models import ExecutionConnection, ExecutionLog
from execution_service.orders import fills
from execution_service.orders.lifecycle import (
    Outcome,
    Recording,
    apply_result,
    reject,
)
from execution_service.orders.repository import OrderRepository
from execution_service.positions.repository import PositionRepository

log = logging.getLogger(__name__)

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


async def record_outcomes(
    ctx: AppContext,
    outcomes: Sequence[Outcome],
    *,
    analytics_days: set[tuple[int, date]] | None = None,
) -> list[ExecutionLog]:
    """Record sent orders' outcomes in one transaction, each as `apply_result` / `reject` say,
    the new positions in one multi-row INSERT. Returns the logs as recorded, in the order given.
    `analytics_days`: see `Recording.finish`."""
    async with ctx.session_factory() as session:
        orders = OrderRepository(session)
        by_id = await orders.lock_many([o.log_id for o in outcomes])
        # The positions these fills book, locked in one statement rather than one each.
        await PositionRepository(session).lock_all(
            [e.position_id for e in by_id.values() if e.position_id is not None]
        )
        recording = Recording(max_refusals=ctx.settings.exit_max_refusals)
        for outcome in outcomes:
            entry = by_id[outcome.log_id]
            answer, adapter_name = outcome.answer, outcome.adapter
            entry.submitted_at = outcome.submitted_at
            start = outcome.received_at or entry.received_at or outcome.submitted_at
            entry.latency_ms = int((outcome.acknowledged_at - start).total_seconds() * 1000)
            if entry.status != OrderStatus.pending:
                _too_late(entry, answer)
            elif isinstance(answer, OrderResult):
                await apply_result(
                    session, entry, answer, adapter=adapter_name, recording=recording
                )
            elif isinstance(answer, TemporaryError):
                entry.error_message = f"outcome unknown, to reconcile: {answer.message}"[:1000]
            else:
                reject(entry, answer.code, answer.message, adapter=adapter_name)
                if entry.purpose == Purpose.exit:
                    await fills.release_exit(session, entry, recording.max_refusals)
                if isinstance(answer, AuthFailed):
                    conn = await orders.connection(entry.execution_connection_id)
                    if conn is not None:
                        mark_error(conn, answer.message)
        await recording.finish(session, analytics_days)
        used = stale_last_used(
            [(by_id[o.log_id].execution_connection_id, o.acknowledged_at) for o in outcomes],
            ctx.last_used_written,
        )
        for at, conn_ids in used.items():  # one UPDATE per answer time: one for a whole batch
            await orders.touch_last_used(list(conn_ids), at)
        await session.commit()
    for at, conn_ids in used.items():  # written: the next write is due LAST_USED_PRECISION on
        ctx.last_used_written.update(dict.fromkeys(conn_ids, at))
    recorded = [by_id[o.log_id] for o in outcomes]
    for outcome, entry in zip(outcomes, recorded, strict=True):
        observe(outcome, entry)
    return recorded


def _too_late(entry: ExecutionLog, answer: OrderResult | ExchangeError) -> None:
    """Reconciliation got there first and recorded the truth, unless it called the order lost
    while it was in fact filled (the send deadline exists to prevent that): say so loudly
    rather than drop a fill without a word."""
    filled = isinstance(answer, OrderResult) and answer.filled > 0
    if entry.status == OrderStatus.rejected and filled:
        log.error(
            "order %s filled after it was recorded %s: reconcile by hand",
            entry.client_order_id,
            entry.error_code,
        )


def observe(outcome: Outcome, entry: ExecutionLog) -> None:
    if not isinstance(outcome.answer, TemporaryError):  # the exchange answered: latency
        metrics.ORDER_LATENCY.labels(entry.purpose).observe((entry.latency_ms or 0) / 1000)
    # The ids of the order this line is about (a batch records many in one task).
    observability.connection_id.set(entry.execution_connection_id)
    observability.client_order_id.set(entry.client_order_id)
    log.info(
        "order %s %s",
        entry.client_order_id,
        entry.status,
        extra={"status": entry.status, "latency_ms": entry.latency_ms, "error": entry.error_code},
    )


class OutcomeRecorder:
    """Outcomes recorded as they arrive from orders sent concurrently: all that arrived while the
    last transaction ran go in the next one, not one transaction per order. `recorded[i]` is
    replaced by order i's log as recorded. `run` until `close`; it raises if recording fails."""

    def __init__(
        self,
        ctx: AppContext,
        recorded: list[ExecutionLog],
        analytics_days: set[tuple[int, date]] | None = None,
    ) -> None:
        self.ctx, self.recorded, self.analytics_days = ctx, recorded, analytics_days
        self._answered: asyncio.Queue[tuple[int, Outcome] | None] = asyncio.Queue()

    def put(self, i: int, outcome: Outcome) -> None:
        self._answered.put_nowait((i, outcome))

    def close(self) -> None:
        """Every order has been sent (or given up): `run` ends once their outcomes are in."""
        self._answered.put_nowait(None)

    async def run(self) -> None:
        done = False
        while not done:
            batch = [await self._answered.get()]
            while not self._answered.empty():
                batch.append(self._answered.get_nowait())
            done = batch[-1] is None
            arrived = [item for item in batch if item is not None]
            if arrived:
                logs = await record_outcomes(
                    self.ctx, [o for _, o in arrived], analytics_days=self.analytics_days
                )
                for (i, _), entry in zip(arrived, logs, strict=True):
                    self.recorded[i] = entry


async def ticket_of(ctx: AppContext, entry: ExecutionLog, adapter: ExchangeAdapter) -> str | None:
    """An exit on a venue of broker tickets closes the ticket its position's entry opened."""
    if entry.purpose != Purpose.exit or not adapter.capabilities.positions_are_tickets:
        return None
    async with ctx.session_factory() as session:
        return await OrderRepository(session).entry_ticket(entry.position_id)


def _level(entry: ExecutionLog) -> Decimal | None:
    level = (entry.plan or {}).get("level")
    return Decimal(str(level)) if level is not None else None


async def fill_batch(
    ctx: AppContext, orders: Sequence[tuple[ExecutionLog, ExecutionConnection]]
) -> list[Outcome]:
    """Committed `pending` orders on simulated venues, sent in one transaction of the venue's
    own: their outcomes, in the order given, for the caller to record."""
    requests = [
        (
            conn,
            OrderRequest(
                entry.symbol,
                entry.direction,
                entry.order_type,
                entry.quantity,
                entry.price if entry.order_type == OrderType.limit else None,
                entry.client_order_id,
                _level(entry),
            ),
        )
        for entry, conn in orders
    ]
    submitted_at = utcnow()
    answers: list[OrderResult | ExchangeError]
    try:
        answers = await ctx.adapters.create_orders_batch(requests)
    except Exception as exc:  # unknown outcome: every order stays pending, never resent
        log.exception("batch of %d orders: unexpected error", len(requests))
        answers = [TemporaryError(f"unexpected {type(exc).__name__}")] * len(requests)
    acknowledged_at = utcnow()
    for answer in answers:
        if isinstance(answer, ExchangeError):  # as BoundedAdapter counts a single call's
            metrics.EXCHANGE_ERRORS.labels(answer.code, "create_order").inc()
    return [
        Outcome(e.id, answer, c.adapter, submitted_at, acknowledged_at, e.received_at)
        for (e, c), answer in zip(orders, answers, strict=True)
    ]
