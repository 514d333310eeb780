"""Connection health: a periodic balance check of every active connection; past
`max_consecutive_failures` in a row the connection is deactivated, with the reason.

The checks are the lowest priority of the venues' request budgets (issue #19), and with many
connections they are spread over most of the interval instead of spent at once."""

from __future__ import annotations

import asyncio

from execution_service import metrics
from execution_service.connections.repository import ConnectionRepository
from execution_service.connections.service import mark_error, probe, record_check
from execution_service.context import AppContext
from execution_service.enums import ConnectionStatus
from execution_service.exchanges.budget import Priority, calling
from execution_service.models import ExecutionConnection

SPREAD_OVER = 50  # connections


async def health_tick(ctx: AppContext, spread_seconds: float = 0.0) -> list[int]:
    """Returns the ids of the connections this tick deactivated. With more than SPREAD_OVER
    connections, their checks start one after another over `spread_seconds` (the worker gives
    80 % of its interval) rather than all at once."""
    async with ctx.session_factory() as session:
        conns = await ConnectionRepository(session).active()
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)
    deactivated: list[int] = []
    step = spread_seconds / len(conns) if len(conns) > SPREAD_OVER else 0

    async def check(conn: ExecutionConnection, offset: float) -> None:
        await asyncio.sleep(offset)
        async with bound:
            with calling(Priority.BACKGROUND):
                result = await probe(ctx, conn)
        async with ctx.session_factory() as session:
            row = await ConnectionRepository(session).by_id(conn.id)
            if row is None:
                return
            record_check(row, result)
            limit = ctx.settings.max_consecutive_failures
            if row.is_active and row.consecutive_failures >= limit:
                mark_error(
                    row,
                    f"deactivated after {row.consecutive_failures} failed checks: {result.error}",
                )
                deactivated.append(row.id)
            await session.commit()

    await asyncio.gather(*(check(c, i * step) for i, c in enumerate(conns)))
    await _count_by_status(ctx)
    return deactivated


async def _count_by_status(ctx: AppContext) -> None:
    """The connections gauge: one series per status (zero included), never one per connection."""
    async with ctx.session_factory() as session:
        counts = await ConnectionRepository(session).count_by_status()
    for status in ConnectionStatus:
        metrics.CONNECTIONS.labels(status.value).set(counts.get(status.value, 0))
