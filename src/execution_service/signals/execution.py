"""One signal on one connection: resolve, size, check, record `pending`, send, record the outcome.

Every failure on one connection ends as that connection's `rejected` (or `pending`, when the
outcome is unknown) execution log; it never reaches the other connections of the signal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.enums import Direction, SizeMode
from execution_service.exchanges.base import ExchangeAdapter, ExchangeError, NoPrice
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


async def execute_on_connection(
    ctx: AppContext,
    signal_id: int,
    body: SignalCreate,
    conn: ExecutionConnection,
    preset: TradingPreset | None,
    received_at: datetime,
) -> int:
    """Returns the id of the connection's entry execution log."""
    order = Order(price=body.entry_price)
    adapter: ExchangeAdapter | None = None
    try:
        adapter = await _prepare(ctx, body, conn, preset, received_at, order)
    except Rejection as refusal:
        return await _record(ctx, signal_id, body, conn, received_at, order, refusal)
    log_id = await _record(ctx, signal_id, body, conn, received_at, order, None)
    entry = await logs.send(ctx, log_id, adapter, received_at)
    return entry.id


async def _prepare(
    ctx: AppContext,
    body: SignalCreate,
    conn: ExecutionConnection,
    preset: TradingPreset | None,
    received_at: datetime,
    order: Order,
) -> ExchangeAdapter:
    direction = Direction(body.direction)
    if not conn.is_active or conn.status != "active":
        raise Rejection("connection_inactive", f"connection {conn.id} is {conn.status}")
    if preset is None and body.quantity is None:
        raise Rejection("no_preset", "the connection has no preset and the signal no quantity")
    try:
        adapter = await ctx.adapters.for_connection(conn)
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
        unit_value, account = Decimal(1), market.quote
        if getattr(adapter, "ticket_positions", False):
            # Lots: each is a contract of `contract_size` units, its PnL in the symbol's quote
            # currency turned into the account's; SL/TP go to the broker with the order.
            account = await adapter.account_currency()  # type: ignore[attr-defined]
            rate = await adapter.quote_to_account_rate(body.symbol)  # type: ignore[attr-defined]
            unit_value = (market.contract_size or Decimal(1)) * rate
            order.plan["contract_size"] = _str(market.contract_size)
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
    if unit_value != 1 or conn.adapter == "mtapi":
        # The broker checks margin itself (its refusal is `insufficient_funds`): its leverage
        # and margin rules are not ours to guess.
        free = Decimal("Infinity")
    elif conn.adapter != "paper" and conn.market_type == "spot":
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
    midnight = datetime.combine(received_at.date(), time.min, tzinfo=received_at.tzinfo)
    async with ctx.session_factory() as session:
        accounts = AccountRepository(session)
        total, for_symbol = await accounts.open_counts(conn.id, body.symbol)
        realized = await accounts.realized_since(conn.id, midnight)
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
    return adapter


async def _record(
    ctx: AppContext,
    signal_id: int,
    body: SignalCreate,
    conn: ExecutionConnection,
    received_at: datetime,
    order: Order,
    refusal: Rejection | None,
) -> int:
    """Commit the entry log: `pending` before sending, or `rejected` with its code."""
    client_order_id = logs.entry_client_order_id(
        ctx.settings.client_order_prefix, signal_id, conn.id
    )
    entry = ExecutionLog(
        user_id=conn.user_id,
        admin_id=conn.admin_id,
        execution_connection_id=conn.id,
        signal_id=signal_id,
        purpose="entry",
        client_order_id=client_order_id,
        symbol=body.symbol,
        direction=body.direction.value,
        order_type=body.order_type.value,
        quantity=order.quantity,
        price=order.price,
        status="pending",
        plan=order.plan,
        received_at=received_at,
    )
    async with ctx.session_factory() as session:
        session.add(entry)
        try:
            await session.flush()
        except IntegrityError:  # this signal already has its order on this connection
            await session.rollback()
            existing = await session.scalar(
                select(ExecutionLog.id).where(ExecutionLog.client_order_id == client_order_id)
            )
            assert existing is not None
            return existing
        if refusal is not None:
            # After the flush: the refusal's `order.rejected` event names the log's id.
            logs.reject(entry, refusal.code, refusal.message, adapter=conn.adapter)
        await session.commit()
    return entry.id
