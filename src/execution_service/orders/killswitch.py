"""Kill switches: cancel every resting order of some accounts and close every position they
hold, now. Idempotent: what is already cancelled, closed or closing is left as it is, so a second
call starts nothing more. Each account closed out is an event with its counts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.context import AppContext
from execution_service.enums import CloseReason, EventType
from execution_service.errors import BadGateway, Forbidden, NotFound, Unprocessable
from execution_service.events import service as events
from execution_service.models import ExecutionConnection, ExecutionLog
from execution_service.orders.exit_venues import look_up
from execution_service.orders.exits import ExitRequest, claim, send_all
from execution_service.orders.repository import OrderRepository
from execution_service.orders.service import cancel_resting
from execution_service.positions.repository import PositionRepository
from execution_service.principal import Principal

log = logging.getLogger(__name__)


@dataclass
class ClosedOut:
    """What a kill switch started: the cancels and exits, as recorded."""

    connections: int = 0
    cancelled: list[ExecutionLog] = field(default_factory=list)
    exits: list[ExecutionLog] = field(default_factory=list)
    failed: int = 0  # cancels the venue could not be asked for (retried by the next call)


async def close_connection(
    session: AsyncSession, ctx: AppContext, principal: Principal, connection_id: int
) -> ClosedOut:
    """`POST /connections/{id}/close-all`. Another owner's connection is a 404."""
    stmt = principal.scope(select(ExecutionConnection), ExecutionConnection).where(
        ExecutionConnection.id == connection_id
    )
    if (await session.scalars(stmt)).first() is None:
        raise NotFound(f"connection {connection_id} not found")
    await session.commit()
    return await close_out(ctx, [connection_id])


async def close_everything(
    session: AsyncSession, ctx: AppContext, principal: Principal, user_id: int | None
) -> ClosedOut:
    """`POST /close-all`: every connection the caller owns; an admin key may name a `user_id`
    (else every owner's)."""
    stmt = principal.scope(select(ExecutionConnection.id), ExecutionConnection)
    if user_id is not None:
        stmt = stmt.where(ExecutionConnection.user_id == user_id)
    ids = list(await session.scalars(stmt.order_by(ExecutionConnection.id)))
    await session.commit()
    return await close_out(ctx, ids)


def owner_to_close(principal: Principal, user_id: int | None, every_owner: bool) -> int | None:
    """Whose accounts `/close-all` closes: a user key its own (naming another is a 403); a
    privileged key must say, one `user_id` or `every_owner`, never by default."""
    if principal.is_user:
        if every_owner or (user_id is not None and user_id != principal.user_id):
            raise Forbidden("a user key closes its own accounts only")
        return principal.user_id
    if user_id is None and not every_owner:
        raise Unprocessable(
            "name a user_id, or every_owner: true to close every owner's accounts",
            code="close_all_scope",
        )
    if user_id is not None and every_owner:
        raise Unprocessable("a user_id or every_owner, not both", code="close_all_scope")
    return user_id


async def close_out(
    ctx: AppContext, connection_ids: Sequence[int], reason: str = "kill_switch"
) -> ClosedOut:
    """Cancel the accounts' resting orders, then close what they hold."""
    out = ClosedOut(connections=len(connection_ids))
    async with ctx.session_factory() as session:
        orders = OrderRepository(session)
        conns = await orders.connections(connection_ids)
        for entry in await orders.resting(connection_ids):
            try:
                out.cancelled.append(
                    await cancel_resting(session, ctx, conns[entry.execution_connection_id], entry)
                )
            except BadGateway as exc:
                out.failed += 1
                log.warning("close-all: order %s not cancelled: %s", entry.id, exc.detail)
        positions = await PositionRepository(session).open_of(connection_ids)
        await session.commit()
    if positions:
        adapters, venues = await look_up(ctx, positions, conns)
        requests = [ExitRequest(p.id, CloseReason.close_all, None, True) for p in positions]
        claimed = await claim(ctx, requests, venues, skip_locked=False)
        out.exits = await send_all(ctx, claimed, dict(adapters), conns)
    await _announce(ctx, conns, out, reason)
    return out


async def _announce(
    ctx: AppContext, conns: dict[int, ExecutionConnection], out: ClosedOut, reason: str
) -> None:
    async with ctx.session_factory() as session:
        for conn in conns.values():
            payload = {
                "connection_id": conn.id,
                "reason": reason,
                "cancelled": sum(1 for e in out.cancelled if e.execution_connection_id == conn.id),
                "closing": sum(1 for e in out.exits if e.execution_connection_id == conn.id),
            }
            events.record(session, EventType.connection_closed_out, conn, payload)
        await session.commit()
