"""One protective leg at a time (`orders.protection`): cancel it and record what it became,
look the live ones up when the venue's position changed, and clear them before an exit of ours.
The position's held levels follow its legs (`hold_level`)."""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import utcnow
from execution_service.enums import (
    CloseReason,
    OrderStatus,
    OrderType,
    PositionStatus,
    Protection,
    Purpose,
)
from execution_service.exchanges.base import ExchangeAdapter, ExchangeError, OrderResult
from execution_service.exchanges.capabilities import ClientIdFormat
from execution_service.models import ExecutionConnection, ExecutionLog, ExecutionPosition
from execution_service.orders.ids import protect_client_order_id
from execution_service.orders.lifecycle import Recording, apply_result
from execution_service.orders.repository import RESTING, OrderRepository
from execution_service.orders.repository.protection import ProtectionRepository
from execution_service.positions.book import exit_direction
from execution_service.positions.repository import PositionRepository

log = logging.getLogger(__name__)


# Where a position shows what each kind of leg holds at the venue.
HELD_COLUMNS = {
    OrderType.stop: "held_sl_price",
    OrderType.target: "held_tp_price",
    OrderType.trailing: "held_trailing_percent",
}


def leg_level(leg: ExecutionLog) -> Decimal | None:
    """A leg's level: its price; a trailing leg's callback percent."""
    if leg.order_type == OrderType.trailing:
        percent = (leg.plan or {}).get("callback_percent")
        return Decimal(str(percent)) if percent is not None else None
    return leg.price


async def hold_level(session: AsyncSession, leg: ExecutionLog) -> None:
    """The position's held level follows its leg: set while the leg rests, cleared after."""
    if leg.position_id is None:
        return
    position = await PositionRepository(session).lock(leg.position_id)
    if position is None:
        return
    column = HELD_COLUMNS[leg.order_type]
    if leg.status in RESTING:
        setattr(position, column, leg_level(leg))
    elif getattr(position, column) == leg_level(leg):
        setattr(position, column, None)


async def cancel_leg(
    ctx: AppContext,
    adapter: ExchangeAdapter,
    conn: ExecutionConnection,
    leg: ExecutionLog,
    *,
    hold: bool = True,
) -> bool:
    """Cancel one resting leg and record what it became (cancelled, or filled first). An OCO's
    second leg is already gone with the first: its state is read instead. `hold`: clear the
    position's held level too (False: the caller, holding the position, sets it)."""
    result: OrderResult | None = None
    try:
        result = await adapter.cancel_order(
            leg.symbol, client_order_id=leg.client_order_id, trigger=True
        )
    except ExchangeError:
        try:
            result = await adapter.fetch_order(
                leg.symbol, client_order_id=leg.client_order_id, trigger=True
            )
        except ExchangeError as exc:
            log.warning("protective order %s: not cancelled: %s", leg.client_order_id, exc.message)
            return False
    async with ctx.session_factory() as session:
        row = await OrderRepository(session).lock_if_unchanged(leg.id, leg.status)
        if row is not None:
            recording = Recording(max_refusals=ctx.settings.exit_max_refusals)
            await apply_result(session, row, result, adapter=conn.adapter, recording=recording)
            if hold:
                await hold_level(session, row)
            await recording.finish(session)
            await session.commit()
    return result.status in (OrderStatus.cancelled, OrderStatus.filled)


async def settle_legs(
    ctx: AppContext, adapter: ExchangeAdapter, conn: ExecutionConnection, position_ids: list[int]
) -> bool:
    """The venue's position shrank or went away: first, whether a leg of ours did it (it fired
    while we were down, or between two tracker passes). Each live leg is looked up and recorded
    (a fill closes its position with its reason, price and fees). True if any leg changed."""
    if adapter.capabilities.protection == Protection.emulated:
        return False
    async with ctx.session_factory() as session:
        legs = await ProtectionRepository(session).live_protection(position_ids)
    changed = False
    for leg in legs:
        try:
            result = await adapter.fetch_order(
                leg.symbol, client_order_id=leg.client_order_id, trigger=True
            )
        except ExchangeError:
            continue  # not known there (yet): the tracker settles a pending leg
        async with ctx.session_factory() as session:
            row = await OrderRepository(session).lock_if_unchanged(leg.id, leg.status)
            if row is None:
                continue
            before = (row.status, row.filled_quantity)
            recording = Recording(max_refusals=ctx.settings.exit_max_refusals)
            await apply_result(session, row, result, adapter=conn.adapter, recording=recording)
            await hold_level(session, row)
            await recording.finish(session)
            await session.commit()
            changed = changed or (row.status, row.filled_quantity) != before
    return changed


async def release_for_exit(
    ctx: AppContext, adapter: ExchangeAdapter, conn: ExecutionConnection, exit_log: ExecutionLog
) -> bool:
    """Before an exit of ours is sent: the position's resting legs are cancelled (on spot they
    hold the very coins the exit sells; anywhere, they would outlive the position). True if a
    leg had filled first and closed the position: the exit must not be sent."""
    if adapter.capabilities.protection == Protection.emulated or exit_log.position_id is None:
        return False
    async with ctx.session_factory() as session:
        legs = await ProtectionRepository(session).live_protection([exit_log.position_id])
    resting = [leg for leg in legs if leg.status in RESTING]
    for leg in resting:
        await cancel_leg(ctx, adapter, conn, leg)
    if not resting:
        return False
    async with ctx.session_factory() as session:
        status = await PositionRepository(session).status_of(exit_log.position_id)
    return status == PositionStatus.closed


async def lone_stop_held(
    ctx: AppContext, conn: ExecutionConnection, symbol: str, known: dict[tuple[int, str], bool]
) -> bool:
    """Whether the venue can hold a position's SL alone (an OCO venue: where the market lists
    its stop type), asked once a pass per connection and symbol (`known`). Asked before a row
    is written: a leg the venue cannot hold is the monitor's, not a refusal logged every
    minute. A venue that cannot be asked says yes: the placement meets the same failure."""
    key = (conn.id, symbol)
    if key not in known:
        try:
            adapter = await ctx.adapters.for_connection(conn)
            known[key] = await adapter.holds_alone(symbol, OrderType.stop)
        except (CredentialsError, ExchangeError):
            known[key] = True
    return known[key]


_REASONS = {
    OrderType.stop: CloseReason.sl,
    OrderType.target: CloseReason.tp,
    OrderType.trailing: CloseReason.trailing_stop,
}


def leg_row(
    ctx: AppContext,
    position: ExecutionPosition,
    order_type: OrderType,
    level: Decimal,
    n: int,
    fmt: ClientIdFormat,
) -> ExecutionLog:
    """A leg's `pending` row; `level` is a trailing leg's callback percent."""
    trailing = order_type == OrderType.trailing
    return ExecutionLog(
        user_id=position.user_id,
        admin_id=position.admin_id,
        execution_connection_id=position.execution_connection_id,
        signal_id=position.signal_id,
        position_id=position.id,
        purpose=Purpose.protect,
        client_order_id=protect_client_order_id(
            ctx.settings.client_order_prefix, position.id, n, fmt
        ),
        symbol=position.symbol,
        direction=exit_direction(position.direction),
        order_type=order_type,
        quantity=position.quantity,
        price=None if trailing else level,
        status=OrderStatus.pending,
        close_reason=_REASONS[order_type],
        received_at=utcnow(),
        plan={"full_close": True} | ({"callback_percent": str(level)} if trailing else {}),
    )


def leg_rows(
    ctx: AppContext,
    position: ExecutionPosition,
    missing: dict[OrderType, Decimal],
    n: int,
    fmt: ClientIdFormat,
) -> tuple[list[ExecutionLog], str]:
    """The `pending` rows of the missing legs, numbered after the position's `n` earlier ones,
    and the client id of the list (OCO) that carries them."""
    rows = []
    for order_type, level in missing.items():
        n += 1
        row = leg_row(ctx, position, order_type, level, n, fmt)
        if order_type == OrderType.stop and level != position.sl_price:
            row.close_reason = CloseReason.trailing_stop  # the level it trails to
        rows.append(row)
    n += 1
    return rows, protect_client_order_id(ctx.settings.client_order_prefix, position.id, n, fmt)
