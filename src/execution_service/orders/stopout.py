"""Drawdown stop-out: an account whose equity falls a set percent from its peak, or a set amount
below the day's opening, is stopped: it goes close-only, or (as its preset says) is closed out
and paused. The stop is an event, and clears only by an explicit API call."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.decimals import HUNDRED, normalize
from execution_service.enums import ConnectionStatus, EventType, StopOutAction
from execution_service.events import service as events
from execution_service.exchanges.base import ExchangeError
from execution_service.models import ExecutionConnection, TradingPreset
from execution_service.orders.fills import quote_of
from execution_service.orders.killswitch import close_out
from execution_service.orders.repository import OrderRepository
from execution_service.positions.repository import PositionRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Breach:
    reason: str


def breach(
    preset: TradingPreset, equity: Decimal, peak: Decimal, day_open: Decimal
) -> Breach | None:
    """Pure: whether equity has fallen past the preset's stop-out rules."""
    percent, daily = preset.stop_out_drawdown_percent, preset.stop_out_daily_loss
    if percent is not None and peak > 0 and (peak - equity) * HUNDRED >= peak * percent:
        return Breach(f"equity {equity} is {percent}% or more below its peak {peak}")
    if daily is not None and day_open - equity >= daily:
        return Breach(f"equity {equity} is {daily} or more below the day's opening {day_open}")
    return None


async def guard_tick(ctx: AppContext, now: datetime) -> list[int]:
    """Check every active account with a stop-out rule; returns those stopped now."""
    async with ctx.session_factory() as session:
        guarded = await OrderRepository(session).guarded_connections()
    stopped: list[int] = []
    for conn, preset in guarded:
        try:
            equity = await _equity(ctx, conn)
        except (CredentialsError, ExchangeError) as exc:
            log.warning("drawdown guard: connection %s has no equity now: %s", conn.id, exc)
            continue
        if equity is not None and await _check(ctx, conn.id, preset, equity, now):
            stopped.append(conn.id)
    return stopped


async def _equity(ctx: AppContext, conn: ExecutionConnection) -> Decimal | None:
    """Cash in the account's currency plus what its open positions add (as sizing counts it)."""
    adapter = await ctx.adapters.for_connection(conn)
    balances = await adapter.fetch_balance()
    async with ctx.session_factory() as session:
        positions = await PositionRepository(session).open_of([conn.id])
        exposure = (await PositionRepository(session).exposure([conn.id])).get(conn.id)
    currency = quote_of(positions[0].symbol) if positions else ctx.settings.paper_default_currency
    cash = balances.get(currency)
    if cash is None:
        return None
    added = Decimal(0)
    if exposure is not None:
        coins = ctx.adapters.capabilities(conn).holds_coins(conn.market_type)
        added = exposure.value if coins else exposure.unrealized
    return normalize(cash.total + added)


async def _check(
    ctx: AppContext, connection_id: int, preset: TradingPreset, equity: Decimal, now: datetime
) -> bool:
    async with ctx.session_factory() as session:
        conn = await OrderRepository(session).lock_connection(connection_id)
        if conn is None or conn.stopped_out_at is not None:
            return False
        conn.peak_equity = max(conn.peak_equity or equity, equity)
        if conn.day_equity_on != now.date() or conn.day_equity is None:
            conn.day_equity, conn.day_equity_on = equity, now.date()
        found = breach(preset, equity, conn.peak_equity, conn.day_equity)
        if found is None:
            await session.commit()
            return False
        action = preset.stop_out_action or StopOutAction.close_only
        _stop(session, conn, found.reason, action, equity, now)
        await session.commit()
    if action is StopOutAction.close_and_pause:
        await close_out(ctx, [connection_id], reason="stop_out")
    return True


def _stop(
    session: AsyncSession,
    conn: ExecutionConnection,
    reason: str,
    action: StopOutAction,
    equity: Decimal,
    now: datetime,
) -> None:
    conn.stopped_out_at, conn.stop_out_reason, conn.close_only = now, reason[:200], True
    if action is StopOutAction.close_and_pause:
        conn.is_active, conn.status = False, ConnectionStatus.inactive
    payload = {
        "connection_id": conn.id,
        "action": action.value,
        "reason": reason,
        "equity": str(equity),
        "peak_equity": str(conn.peak_equity),
    }
    events.record(session, EventType.connection_stopped_out, conn, payload)
    log.warning("connection %s stopped out (%s): %s", conn.id, action.value, reason)
