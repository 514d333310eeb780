"""A new SL or TP level for a position whose level rests at the venue (`orders.protection`):
the venue is amended first, and the caller changes the position only once it accepted.

Where the venue amends a trigger order in place (`amends_triggers`: Bybit), the resting leg
takes the new level: the same order id, and the venue holds exactly one stop throughout. The
leg's row then carries the new level (`price`) and the levels it held before (`plan.amended`).

Binance USDⓈ-M cannot amend a trigger order in place: the new leg is placed first and the old
one cancelled after. Between the two answers the venue briefly holds both, each reduce-only
(the second to fire finds no position and expires); never none, which would leave the position
unprotected. An OCO list cannot be amended nor placed twice over the same coins: it is cancelled
and placed again at the new levels by the next pass (the monitor emulates the levels between).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.enums import CloseReason, OrderStatus, OrderType, Protection
from execution_service.exchanges.base import ExchangeAdapter, ExchangeError, ProtectiveLeg
from execution_service.models import ExecutionConnection, ExecutionLog, ExecutionPosition
from execution_service.orders import protection, protection_legs
from execution_service.orders.lifecycle import Recording, apply_result, reject
from execution_service.orders.repository import RESTING, OrderRepository
from execution_service.orders.repository.protection import ProtectionRepository

log = logging.getLogger(__name__)


class VenueRefused(Exception):
    def __init__(self, error: ExchangeError) -> None:
        super().__init__(error.message)
        self.error = error


def held_changes(
    position: ExecutionPosition, changes: dict[str, object]
) -> dict[OrderType, Decimal | None]:
    """The held legs a PATCH moves: {leg: its new level, None where the level is removed}."""
    out: dict[OrderType, Decimal | None] = {}
    for column, held, kind in (
        ("sl_price", position.held_sl_price, OrderType.stop),
        ("tp_price", position.held_tp_price, OrderType.target),
        ("trailing_stop_percent", position.held_trailing_percent, OrderType.trailing),
    ):
        if column in changes and held is not None and changes[column] != held:
            value = changes[column]
            out[kind] = value if isinstance(value, Decimal) else None
    return out


async def replace_legs(
    ctx: AppContext,
    adapter: ExchangeAdapter,
    conn: ExecutionConnection,
    position: ExecutionPosition,
    moves: dict[OrderType, Decimal | None],
) -> dict[OrderType, Decimal | None]:
    """Move the venue's legs; returns what the venue then holds per leg moved. Raises
    `VenueRefused` if a new leg was refused (the old one still rests: nothing changed)."""
    async with ctx.session_factory() as session:
        live = await ProtectionRepository(session).live_protection([position.id])
    held: dict[OrderType, Decimal | None] = {}
    if adapter.capabilities.protection == Protection.oco:
        for leg in live:
            if leg.status in RESTING:
                await protection_legs.cancel_leg(ctx, adapter, conn, leg, hold=False)
        protection.protect_soon(ctx)  # the list again, at the new levels
        return {OrderType.stop: None, OrderType.target: None}
    for kind, level in moves.items():
        old = [leg for leg in live if leg.order_type == kind]
        amendable = adapter.capabilities.amends_triggers and kind != OrderType.trailing
        if level is not None and amendable and len(old) == 1 and old[0].status in RESTING:
            await _amend(ctx, adapter, conn, old[0], level)
            held[kind] = level
            continue
        if level is not None:
            await _place(ctx, adapter, conn, position, kind, level)
        for leg in old:
            if leg.status in RESTING and not await protection_legs.cancel_leg(
                ctx, adapter, conn, leg, hold=False
            ):
                log.warning("position %s: the old %s leg was not cancelled", position.id, kind)
        held[kind] = level
    return held


async def _place(
    ctx: AppContext,
    adapter: ExchangeAdapter,
    conn: ExecutionConnection,
    position: ExecutionPosition,
    kind: OrderType,
    level: Decimal,
) -> None:
    async with ctx.session_factory() as session:
        n = (await ProtectionRepository(session).protect_counts([position.id])).get(position.id, 0)
        fmt = adapter.capabilities.client_ids
        row = protection_legs.leg_row(ctx, position, kind, level, n + 1, fmt)
        session.add(row)
        await session.commit()
    request = ProtectiveLeg(kind, level, row.client_order_id)
    try:
        (answer,) = await adapter.place_protection(
            position.symbol, row.direction, position.quantity, [request], ""
        )
    except ExchangeError as exc:
        async with ctx.session_factory() as session:
            current = await OrderRepository(session).lock(row.id)
            if current is not None and current.status == OrderStatus.pending:
                if exc.code != "exchange_unavailable":  # unknown: the tracker finds it
                    reject(current, exc.code, exc.message, adapter=conn.adapter)
                await session.commit()
        raise VenueRefused(exc) from None
    async with ctx.session_factory() as session:
        current = await OrderRepository(session).lock(row.id)
        assert current is not None
        recording = Recording(max_refusals=ctx.settings.exit_max_refusals)
        await apply_result(session, current, answer, adapter=conn.adapter, recording=recording)
        await recording.finish(session)
        await session.commit()


async def _amend(
    ctx: AppContext,
    adapter: ExchangeAdapter,
    conn: ExecutionConnection,
    leg: ExecutionLog,
    level: Decimal,
) -> None:
    """The resting leg takes `level` in place; its row records the new level once the venue
    took it (`VenueRefused` otherwise: the leg still rests at its old level)."""
    request = ProtectiveLeg(leg.order_type, level, leg.client_order_id)
    try:
        answer = await adapter.amend_protection(leg.symbol, leg.direction, request, leg.order_id)
    except ExchangeError as exc:
        raise VenueRefused(exc) from None
    async with ctx.session_factory() as session:
        row = await OrderRepository(session).lock(leg.id)
        if row is None:
            return
        plan = dict(row.plan or {})
        plan["amended"] = [
            *plan.get("amended", []),
            {"from": str(row.price), "to": str(level), "at": utcnow().isoformat()},
        ]
        row.plan, row.price = plan, level
        row.close_reason = CloseReason.sl if leg.order_type == OrderType.stop else CloseReason.tp
        if answer.status != OrderStatus.pending:  # the leg as read back (it may have fired)
            recording = Recording(max_refusals=ctx.settings.exit_max_refusals)
            await apply_result(session, row, answer, adapter=conn.adapter, recording=recording)
            await recording.finish(session)
        await session.commit()
