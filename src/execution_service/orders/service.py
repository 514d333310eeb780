"""What the API does with orders: read execution logs, cancel a resting order, close a position,
and amend a position's stops (where the venue holds them, there first)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.decimals import round_down
from execution_service.enums import CloseReason, OrderStatus, OrderType, PositionStatus
from execution_service.errors import BadGateway, Conflict, NotFound, Unprocessable
from execution_service.exchanges.base import (
    ExchangeAdapter,
    ExchangeError,
    OrderNotFound,
    OrderResult,
)
from execution_service.models import ExecutionConnection, ExecutionLog, ExecutionPosition
from execution_service.orders import protection_amend
from execution_service.orders.exit_venues import ExitVenue, spot_held
from execution_service.orders.exits import ExitRequest, claim, send_exit
from execution_service.orders.lifecycle import Recording, apply_result
from execution_service.orders.repository import RESTING, OrderRepository
from execution_service.positions import service as positions
from execution_service.principal import Principal


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
    purpose: str | None = None,
) -> tuple[Sequence[ExecutionLog], int]:
    filters = dict(
        connection_id=connection_id,
        status=status,
        signal_id=signal_id,
        symbol=symbol,
        since=since,
        until=until,
        purpose=purpose,
    )
    return await OrderRepository(session).list(
        principal, filters=filters, limit=limit, offset=offset
    )


async def get_log(session: AsyncSession, principal: Principal, log_id: int) -> ExecutionLog:
    entry = await OrderRepository(session).get(principal, log_id)
    if entry is None:
        raise NotFound(f"execution log {log_id} not found")
    return entry


async def cancel(
    session: AsyncSession, ctx: AppContext, principal: Principal, log_id: int
) -> ExecutionLog:
    entry = await get_log(session, principal, log_id)
    if entry.status not in RESTING:
        raise Conflict(
            f"execution log {log_id} is {entry.status}: only a resting order can be cancelled",
            code="not_cancellable",
        )
    conn = await OrderRepository(session).connection(entry.execution_connection_id)
    assert conn is not None
    return await cancel_resting(session, ctx, conn, entry)


async def cancel_resting(
    session: AsyncSession, ctx: AppContext, conn: ExecutionConnection, entry: ExecutionLog
) -> ExecutionLog:
    """Cancel a resting order at its venue and record what the venue says (a cancel the venue
    refuses as unknown is reconciled by a look-up). `BadGateway` if the venue cannot be asked."""
    log_id = entry.id
    await session.commit()  # no transaction while the exchange answers
    try:
        adapter = await ctx.adapters.for_connection(conn)
        try:
            result = await adapter.cancel_order(
                entry.symbol, order_id=entry.order_id, client_order_id=entry.client_order_id
            )
        except OrderNotFound:
            result = await _look_up(adapter, entry)
    except (CredentialsError, ExchangeError) as exc:
        code = exc.code if isinstance(exc, ExchangeError) else "credentials_error"
        raise BadGateway(f"cancel failed: {exc}", code=code) from None
    locked = await OrderRepository(session).lock(log_id)
    assert locked is not None
    recording = Recording(max_refusals=ctx.settings.exit_max_refusals)
    await apply_result(session, locked, result, adapter=conn.adapter, recording=recording)
    await recording.finish(session)
    await session.commit()
    return locked


async def _look_up(adapter: ExchangeAdapter, entry: ExecutionLog) -> OrderResult:
    """The venue would not cancel the order: it is no longer resting. It says what became of it
    (filled, cancelled); a venue that no longer knows the order at all (purged) cannot have it
    resting either: it is recorded cancelled, with what had filled."""
    try:
        return await adapter.fetch_order(entry.symbol, client_order_id=entry.client_order_id)
    except OrderNotFound:
        pass
    if entry.order_id:
        try:
            return await adapter.fetch_order(entry.symbol, order_id=entry.order_id)
        except OrderNotFound:
            pass
    return OrderResult(
        order_id=entry.order_id or "",
        client_order_id=entry.client_order_id,
        symbol=entry.symbol,
        side=entry.direction,
        type=entry.order_type,
        status=OrderStatus.cancelled,
        amount=entry.quantity,
        filled=entry.filled_quantity,
        average=entry.average_price,
        fee=entry.fee,
        fee_currency=entry.fee_currency,
        raw={"reconciled": "the venue no longer knows this order"},
    )


async def close_position(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    position_id: int,
    quantity: Decimal | None,
) -> ExecutionLog:
    """Close all of a position, or `quantity` of it, with an exit order now."""
    position = await _open_position(session, principal, position_id)
    if quantity is not None and quantity > position.quantity:
        raise Unprocessable(
            f"quantity {quantity} exceeds the open quantity {position.quantity}",
            code="quantity_too_large",
        )
    conn = await OrderRepository(session).connection(position.execution_connection_id)
    assert conn is not None
    await session.commit()  # no transaction while the exchange answers
    try:
        adapter = await ctx.adapters.for_connection(conn)
        market = await adapter.market(position.symbol)
        held = await spot_held(adapter, conn, market)
    except (CredentialsError, ExchangeError) as exc:
        raise BadGateway(f"cannot reach the exchange: {exc}", code="exchange_unavailable") from None
    wanted = position.quantity if quantity is None else min(quantity, position.quantity)
    if round_down(wanted, market.amount_step) <= 0:
        raise Unprocessable(
            "the quantity rounds down to nothing at the market's step", code="below_minimum"
        )
    request = ExitRequest(position.id, CloseReason.manual, wanted, wanted >= position.quantity)
    venue = ExitVenue(market, held, ctx.adapters.capabilities(conn).client_ids)
    claimed = await claim(ctx, [request], {(conn.id, position.symbol): venue}, skip_locked=False)
    if not claimed:
        raise Conflict(f"position {position_id} is already being closed", code="position_not_open")
    return await send_exit(ctx, claimed[0], adapter, conn)


async def amend_position(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    position_id: int,
    changes: dict[str, Any],
) -> ExecutionPosition:
    """New SL, TP or trailing stop. Where the venue holds the stops (a broker's with the position,
    `amends_stops`; orders of their own, `protection`), they are amended there first: if it
    refuses, nothing changes here either."""
    position = await _open_position(session, principal, position_id)
    positions.check_stops(position, changes)
    conn = await OrderRepository(session).connection(position.execution_connection_id)
    moves = protection_amend.held_changes(position, changes)
    held: dict[OrderType, Decimal | None] = {}
    if moves and conn is not None:
        session.expunge(position)  # kept as read: the venue's work needs them, not the session
        session.expunge(conn)
        await session.rollback()  # no transaction of ours is held while the venue answers
        try:
            adapter = await ctx.adapters.for_connection(conn)
            held = await protection_amend.replace_legs(ctx, adapter, conn, position, moves)
        except (CredentialsError, protection_amend.VenueRefused) as exc:
            raise BadGateway(
                f"the venue did not take the new level: {exc}", code="venue_refused"
            ) from None
        position = await _open_position(session, principal, position_id)
    positions.amend_stops(position, changes)
    if OrderType.stop in held:
        position.held_sl_price = held[OrderType.stop]
    if OrderType.target in held:
        position.held_tp_price = held[OrderType.target]
    if OrderType.trailing in held:
        position.held_trailing_percent = held[OrderType.trailing]
    stops_changed = bool({"sl_price", "tp_price"} & changes.keys())
    if stops_changed and conn is not None and ctx.adapters.capabilities(conn).amends_stops:
        ticket = await OrderRepository(session).entry_ticket(position.id)
        try:
            adapter = await ctx.adapters.for_connection(conn)
            await adapter.amend_stops(
                position.symbol, ticket or "", sl=position.sl_price, tp=position.tp_price
            )
        except (CredentialsError, ExchangeError) as exc:
            await session.rollback()
            raise BadGateway(
                f"the broker did not amend the stops: {exc}", code="broker_refused"
            ) from None
    await session.commit()
    return position


async def _open_position(
    session: AsyncSession, principal: Principal, position_id: int
) -> ExecutionPosition:
    position = await positions.get_position(session, principal, position_id)
    if position.status != PositionStatus.open:
        raise Conflict(f"position {position_id} is {position.status}", code="position_not_open")
    return position
