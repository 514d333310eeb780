"""Connection health: a periodic balance check of every active connection; past
`max_consecutive_failures` in a row the connection is deactivated, with the reason."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from execution_service.connections.service import probe, record_check
from execution_service.context import AppContext
from execution_service.models import ExecutionConnection


async def health_tick(ctx: AppContext) -> list[int]:
    """Returns the ids of the connections this tick deactivated."""
    async with ctx.session_factory() as session:
        conns = (
            await session.scalars(
                select(ExecutionConnection).where(ExecutionConnection.is_active.is_(True))
            )
        ).all()
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)
    deactivated: list[int] = []

    async def check(conn: ExecutionConnection) -> None:
        async with bound:
            result = await probe(ctx, conn)
        async with ctx.session_factory() as session:
            row = await session.get(ExecutionConnection, conn.id)
            if row is None:
                return
            record_check(row, result)
            limit = ctx.settings.max_consecutive_failures
            if row.is_active and row.consecutive_failures >= limit:
                row.is_active, row.status = False, "error"
                row.last_error = (
                    f"deactivated after {row.consecutive_failures} failed checks: {result.error}"
                )
                deactivated.append(row.id)
            await session.commit()

    await asyncio.gather(*(check(c) for c in conns))
    return deactivated
