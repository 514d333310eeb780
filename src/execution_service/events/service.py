"""The outbox: one `events` row per change other services hear about, added to the session of the
transaction that makes the change. Committed together or not at all, so a reported fill is always
a recorded fill, and a rolled-back one is never reported.

Payloads carry ids and key figures, decimals as strings; never credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, object_session

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.decimals import to_str
from execution_service.enums import EventType
from execution_service.models import Event, ExecutionConnection, ExecutionLog, ExecutionPosition


class Owner(Protocol):
    user_id: int | None
    admin_id: int | None


def record(
    session: AsyncSession | Session, type: EventType, owner: Owner, payload: dict[str, Any]
) -> Event:
    """Add the event to the caller's transaction (no I/O: it is written with the change)."""
    event = Event(user_id=owner.user_id, admin_id=owner.admin_id, type=type.value, payload=payload)
    session.add(event)
    return event


def row(type: EventType, owner: Owner, payload: dict[str, Any]) -> dict[str, Any]:
    """The event as a row for a batch's one INSERT (`EventRepository.insert_rows`): what `record`
    adds, for thousands at once."""
    return dict(
        user_id=owner.user_id,
        admin_id=owner.admin_id,
        type=type.value,
        payload=payload,
        created_at=utcnow(),
        dispatched_at=None,
    )


def session_of(row: object) -> Session:
    """The session a row belongs to, for helpers that change rows without being handed one."""
    session = object_session(row)
    if session is None:
        raise RuntimeError("the row must belong to the session whose transaction records it")
    return session


def as_json(event: Event) -> dict[str, Any]:
    """What webhooks receive as the body and the live stream as `data`."""
    return {
        "id": event.id,
        "type": event.type,
        "created_at": _time(event.created_at),
        "user_id": event.user_id,
        "admin_id": event.admin_id,
        "data": event.payload,
    }


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else to_str(value)


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def order_payload(entry: ExecutionLog) -> dict[str, Any]:
    return {
        "execution_log_id": entry.id,
        "connection_id": entry.execution_connection_id,
        "signal_id": entry.signal_id,
        "position_id": entry.position_id,
        "purpose": entry.purpose,
        "client_order_id": entry.client_order_id,
        "order_id": entry.order_id,
        "symbol": entry.symbol,
        "direction": entry.direction,
        "order_type": entry.order_type,
        "status": entry.status,
        "quantity": _dec(entry.quantity),
        "price": _dec(entry.price),
        "filled_quantity": _dec(entry.filled_quantity),
        "average_price": _dec(entry.average_price),
        "fee": _dec(entry.fee),
        "fee_currency": entry.fee_currency,
        "error_code": entry.error_code,
        "error_message": entry.error_message,
        "executed_at": _time(entry.executed_at),
    }


def position_payload(position: ExecutionPosition | Mapping[str, Any]) -> dict[str, Any]:
    """Of the row, or of the values a batch inserted it with (`orders.bulk`: with its `id`;
    absent columns are None)."""
    get: Callable[[str], Any] = (
        position.get if isinstance(position, Mapping) else partial(getattr, position)
    )
    return {
        "position_id": get("id"),
        "connection_id": get("execution_connection_id"),
        "signal_id": get("signal_id"),
        "execution_log_id": get("execution_log_id"),
        "symbol": get("symbol"),
        "direction": get("direction"),
        "status": get("status"),
        "quantity": _dec(get("quantity")),
        "initial_quantity": _dec(get("initial_quantity")),
        "entry_price": _dec(get("entry_price")),
        "sl_price": _dec(get("sl_price")),
        "tp_price": _dec(get("tp_price")),
        "close_price": _dec(get("close_price")),
        "closed_reason": get("closed_reason"),
        "pnl": _dec(get("pnl")),
        "pnl_percentage": _dec(get("pnl_percentage")),
        "realized_pnl": _dec(get("realized_pnl")),
        "fees": _dec(get("fees")),
        "opened_at": _time(get("opened_at")),
        "closed_at": _time(get("closed_at")),
    }


def connection_payload(conn: ExecutionConnection) -> dict[str, Any]:
    # last_error is built from exchange error messages, which never carry our credentials.
    return {
        "connection_id": conn.id,
        "name": conn.name,
        "adapter": conn.adapter,
        "exchange": conn.exchange,
        "status": conn.status,
        "is_active": conn.is_active,
        "last_error": conn.last_error,
        "consecutive_failures": conn.consecutive_failures,
    }


@dataclass
class _Nobody:
    user_id: int | None = None
    admin_id: int | None = None


def announce_venue_pauses(ctx: AppContext) -> None:
    """Record each new pause of a venue's request budget in this process as a `venue.paused`
    event of no owner (admins and platform webhooks hear it)."""
    budgets = ctx.adapters.budgets
    if budgets is None:
        return

    async def paused(pause: dict[str, Any]) -> None:
        until = datetime.fromtimestamp(pause["until"], tz=UTC)
        payload = {**pause, "until": _time(until)}
        async with ctx.session_factory() as session:
            record(session, EventType.venue_paused, _Nobody(), payload)
            await session.commit()

    budgets.on_pause = paused
