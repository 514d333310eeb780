"""A signal on its target connections: resolve, size, check (`decide`), record `pending`
(the caller, for all targets in one commit), send, record the outcomes (`send_all`).

Every failure on one connection ends as that connection's `rejected` (or `pending`, when the
outcome is unknown) execution log; it never reaches the other connections of the signal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service import metrics, observability
from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import utcnow
from execution_service.enums import Direction, MarketType, OrderType, SizeMode
from execution_service.exchanges.base import (
    ExchangeAdapter,
    ExchangeError,
    NoPrice,
    OrderRequest,
    OrderResult,
    Quotes,
    TemporaryError,
)
from execution_service.exchanges.capabilities import VenueCapabilities
from execution_service.exchanges.registry import AdapterRegistry
from execution_service.logs import service as logs
from execution_service.models import ExecutionConnection, ExecutionLog, TradingPreset
from execution_service.signals.repository import AccountRepository
from execution_service.signals.schemas import SignalCreate
from execution_service.signals.sizing import (
    AccountState,
    Limits,
    MarketRules,
    Rejection,
    SizeRule,
    check_order,
    check_stops,
    default_stop,
    size_quantity,
)

log = logging.getLogger(__name__)


@dataclass
class Order:
    """What has been decided so far for this connection (kept on the log even when refused)."""

    quantity: Decimal = Decimal(0)
    price: Decimal | None = None
    plan: dict[str, Any] | None = None


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@dataclass
class Target:
    """One connection of the signal, from its decision to its recorded outcome."""

    conn: ExecutionConnection
    preset: TradingPreset | None
    order: Order
    caps: VenueCapabilities
    refusal: Rejection | None = None
    adapter: ExchangeAdapter | None = None
    entry: ExecutionLog | None = None


@dataclass
class AccountInputs:
    """What the database says about every target, loaded once per signal."""

    open_counts: dict[int, tuple[int, int]] = field(default_factory=dict)
    realized: dict[int, Decimal] = field(default_factory=dict)
    # Simulated accounts' quotes, read for all of them at once.
    simulated: dict[int, Quotes] = field(default_factory=dict)


async def load_inputs(
    session: AsyncSession,
    adapters: AdapterRegistry,
    targets: Sequence[Target],
    symbol: str,
    received_at: datetime,
) -> AccountInputs:
    """A few queries for all targets; counts and today's PnL only where a preset limits them."""
    accounts = AccountRepository(session)
    inputs = AccountInputs()
    counted = [
        t.conn.id
        for t in targets
        if t.preset is not None
        and (t.preset.max_positions is not None or t.preset.max_positions_per_symbol is not None)
    ]
    inputs.open_counts = await accounts.open_counts(counted, symbol)
    midnight = datetime.combine(received_at.date(), time.min, tzinfo=received_at.tzinfo)
    limited = [
        t.conn.id
        for t in targets
        if t.preset is not None and t.preset.max_daily_loss_percent is not None
    ]
    inputs.realized = await accounts.realized_since(limited, midnight)
    simulated = [t.conn for t in targets if t.caps.simulated]
    inputs.simulated = await adapters.simulated_quotes(session, simulated, symbol)
    return inputs


async def decide(
    ctx: AppContext, body: SignalCreate, target: Target, inputs: AccountInputs
) -> None:
    """Size and check one target: its order, and its refusal or the adapter to send with."""
    try:
        target.adapter = await _prepare(ctx, body, target, inputs, target.order)
    except Rejection as refusal:
        target.refusal = refusal


def entry_log(
    ctx: AppContext, signal_id: int, body: SignalCreate, target: Target, received_at: datetime
) -> ExecutionLog:
    """The target's entry log, `pending` (the caller records a refusal once it has an id)."""
    conn, order = target.conn, target.order
    return ExecutionLog(
        user_id=conn.user_id,
        admin_id=conn.admin_id,
        execution_connection_id=conn.id,
        signal_id=signal_id,
        purpose="entry",
        client_order_id=logs.entry_client_order_id(
            ctx.settings.client_order_prefix, signal_id, conn.id
        ),
        symbol=body.symbol,
        direction=body.direction.value,
        order_type=body.order_type.value,
        quantity=order.quantity,
        price=order.price,
        status="pending",
        plan=order.plan,
        received_at=received_at,
    )


async def send_all(ctx: AppContext, targets: Sequence[Target], received_at: datetime) -> None:
    """Send every committed `pending` order and record the outcomes (`target.entry` becomes the
    log as recorded). Paper orders go as one batch when there are several; the others each
    through their own adapter, `signal_concurrency` at a time, bounded per account as well."""
    pending = [t for t in targets if t.entry is not None and t.entry.status == "pending"]
    papers = [t for t in pending if t.caps.simulated]
    singles = [t for t in pending if not t.caps.simulated or len(papers) < 2]
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)
    answered: asyncio.Queue[tuple[Target, logs.Outcome] | None] = asyncio.Queue()

    async def one(t: Target) -> None:
        assert t.entry is not None
        observability.connection_id.set(t.conn.id)
        async with bound:
            adapter = t.adapter or await ctx.adapters.for_connection(t.conn)
            send_by = logs.send_deadline(ctx, t.entry)
            outcome = await logs.submit(
                adapter, t.entry, t.conn.adapter, received_at, send_by=send_by
            )
            answered.put_nowait((t, outcome))

    async def recorder() -> None:
        """Records the outcomes as they come, all that arrived meanwhile in one transaction."""
        done = False
        while not done:
            batch = [await answered.get()]
            while not answered.empty():
                batch.append(answered.get_nowait())
            done = batch[-1] is None
            arrived = [item for item in batch if item is not None]
            if arrived:
                recorded = await logs.record_outcomes(ctx, [o for _, o in arrived])
                for (t, _), entry in zip(arrived, recorded, strict=True):
                    t.entry = entry

    async def sends() -> None:
        try:
            await asyncio.gather(*(one(t) for t in singles))
        finally:
            answered.put_nowait(None)

    jobs = [asyncio.ensure_future(sends()), asyncio.ensure_future(recorder())]
    if len(papers) >= 2:
        jobs.append(asyncio.ensure_future(_send_paper_batch(ctx, papers, received_at)))
    try:
        await asyncio.gather(*jobs)
    except BaseException:
        # The outcomes can no longer be recorded here (the database failed, or the request was
        # cancelled): send nothing more. Every row is committed `pending`; an order cut off in
        # flight is reconciled by client order id, one never sent is rejected after the grace.
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        raise


async def _send_paper_batch(
    ctx: AppContext, targets: Sequence[Target], received_at: datetime
) -> None:
    orders = []
    for t in targets:
        entry = t.entry
        assert entry is not None
        price = entry.price if entry.order_type == OrderType.limit else None
        request = OrderRequest(
            entry.symbol,
            entry.direction,
            entry.order_type,
            entry.quantity,
            price,
            entry.client_order_id,
        )
        orders.append((t.conn, request))
    submitted_at = utcnow()
    answers: list[OrderResult | ExchangeError]
    try:
        answers = await ctx.adapters.create_orders_batch(orders)
    except Exception as exc:  # unknown outcome: every order stays pending, never resent
        log.exception("batch of %d orders: unexpected error", len(orders))
        answers = [TemporaryError(f"unexpected {type(exc).__name__}")] * len(orders)
    acknowledged_at = utcnow()
    for answer in answers:
        if isinstance(answer, ExchangeError):  # as BoundedAdapter counts a single call's
            metrics.EXCHANGE_ERRORS.labels(answer.code, "create_order").inc()
    outcomes = [
        logs.Outcome(t.entry.id, answer, t.conn.adapter, submitted_at, acknowledged_at, received_at)
        for t, answer in zip(targets, answers, strict=True)
        if t.entry is not None
    ]
    recorded = await logs.record_outcomes(ctx, outcomes)
    for t, entry in zip(targets, recorded, strict=True):
        t.entry = entry


async def _prepare(
    ctx: AppContext,
    body: SignalCreate,
    target: Target,
    inputs: AccountInputs,
    order: Order,
) -> ExchangeAdapter | None:
    """Size and check one target's order; raises `Rejection`. Returns the adapter to send with
    (None for paper: its quotes come from `inputs`, its orders go out in a batch)."""
    conn, preset = target.conn, target.preset
    direction = Direction(body.direction)
    if not conn.is_active or conn.status != "active":
        raise Rejection("connection_inactive", f"connection {conn.id} is {conn.status}")
    if preset is None and body.quantity is None:
        raise Rejection("no_preset", "the connection has no preset and the signal no quantity")
    try:
        adapter: Quotes
        if target.caps.simulated:
            sender = None
            adapter = inputs.simulated[conn.id]
        else:
            sender = adapter = await ctx.adapters.for_connection(conn)
        market = await adapter.market(body.symbol)
        if body.order_type == "limit" and body.entry_price is not None:
            price = body.entry_price
        else:
            price = (await adapter.fetch_ticker(body.symbol)).price
        order.price = price
        sl = body.sl_price or default_stop(
            direction, price, preset.default_sl_percent if preset else None, take_profit=False
        )
        tp = body.tp_price
        if tp is None and not body.take_profits:
            tp = default_stop(
                direction, price, preset.default_tp_percent if preset else None, take_profit=True
            )
        order.plan = {
            "sl_price": _str(sl),
            "tp_price": _str(tp),
            "take_profits": body.plan_take_profits(),
            "trailing_stop_percent": _str(preset.trailing_stop_percent if preset else None),
            "break_even_trigger_rr": _str(preset.break_even_trigger_rr if preset else None),
        }
        if body.entry_price is None:  # the entry is known only now: stops may already be crossed
            check_stops(direction, price, sl, tp)
        rule = SizeRule(
            SizeMode(preset.position_size_mode) if preset else None,
            preset.position_size_value if preset else None,
            preset.max_position_notional if preset else None,
        )
        if rule.mode is SizeMode.risk_percent and sl is None and body.quantity is None:
            raise Rejection("missing_stop_loss", "risk_percent sizing needs a stop loss")
        balances = await adapter.fetch_balance()
        value = await adapter.valuation(body.symbol)
        unit_value, account = value.unit_value, value.currency
        if value.contract_size is not None:
            order.plan["contract_size"] = _str(value.contract_size)
    except CredentialsError as exc:
        raise Rejection("credentials_error", str(exc)) from None
    except NoPrice as exc:
        raise Rejection("no_price", exc.message) from None
    except ExchangeError as exc:
        raise Rejection(exc.code, exc.message) from None
    quote = balances.get(account)
    free = quote.free if quote else Decimal(0)
    equity = quote.total if quote else Decimal(0)
    leverage = preset.leverage if preset else Decimal(1)
    if target.caps.margin_checked_by_venue:
        # The broker checks margin itself (its refusal is `insufficient_funds`): its leverage
        # and margin rules are not ours to guess.
        free = Decimal("Infinity")
    elif not target.caps.leverage_on_spot and conn.market_type == MarketType.spot:
        # A real spot account borrows nothing: a buy spends quote, a sell spends the base held.
        leverage = Decimal(1)
        if direction is Direction.sell:
            base = balances.get(market.base)
            free = (base.free if base else Decimal(0)) * price
    order.quantity = size_quantity(
        rule,
        price=price,
        stop_loss=sl,
        equity=equity,
        override=body.quantity,
        amount_step=market.amount_step,
        unit_value=unit_value,
        max_amount=market.max_amount,
    )
    total, for_symbol = inputs.open_counts.get(conn.id, (0, 0))
    realized = inputs.realized.get(conn.id, Decimal(0))
    limits = Limits(
        preset.max_positions if preset else None,
        preset.max_positions_per_symbol if preset else None,
        preset.max_daily_loss_percent if preset else None,
        leverage,
    )
    state = AccountState(total, for_symbol, realized, equity, free)
    check_order(
        limits, state, MarketRules(market.min_amount, market.min_cost), order.quantity, price
    )
    return sender
