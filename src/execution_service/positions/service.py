"""Positions, the book beneath the orders: the API's reads and the rules for amending stops.
Closing a position is an order (`orders.exits`); so is amending stops a venue holds."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from execution_service.errors import NotFound, Unprocessable
from execution_service.models import ExecutionPosition
from execution_service.positions.pnl import sign
from execution_service.positions.repository import PositionRepository
from execution_service.positions.repository.listing import PositionListing
from execution_service.principal import Principal


async def list_positions(
    conn: AsyncConnection,
    principal: Principal,
    *,
    status: str | None,
    connection_id: int | None,
    symbol: str | None,
    limit: int,
    offset: int,
) -> bytes:
    """One page, newest first, as the JSON of `Page[PositionRead]` (see `repository.listing`)."""
    filters = {"status": status, "connection_id": connection_id, "symbol": symbol}
    return await PositionListing(conn).page(principal, filters, limit, offset)


async def get_position(
    session: AsyncSession, principal: Principal, position_id: int
) -> ExecutionPosition:
    position = await PositionRepository(session).get(principal, position_id)
    if position is None:
        raise NotFound(f"position {position_id} not found")
    return position


def check_stops(position: ExecutionPosition, changes: dict[str, Any]) -> None:
    """New SL and TP each on the right side of the current price; `invalid_stops` otherwise."""
    reference = position.current_price or position.entry_price
    direction = sign(position.direction)
    sl, tp = changes.get("sl_price"), changes.get("tp_price")
    if sl is not None and (reference - sl) * direction <= 0:
        raise Unprocessable(
            f"sl_price {sl} is on the wrong side of the current price {reference}",
            code="invalid_stops",
        )
    if tp is not None and (tp - reference) * direction <= 0:
        raise Unprocessable(
            f"tp_price {tp} is on the wrong side of the current price {reference}",
            code="invalid_stops",
        )


def amend_stops(position: ExecutionPosition, changes: dict[str, Any]) -> None:
    """New SL, TP or trailing stop on an open position (`check_stops` first). The caller
    (`orders.service`) amends venue-held stops and commits."""
    check_stops(position, changes)
    reference = position.current_price or position.entry_price
    for field, value in changes.items():
        setattr(position, field, value)
    if "trailing_stop_percent" in changes:
        position.best_price = reference
