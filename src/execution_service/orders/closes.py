"""The monitor's closes: many exits claimed and sent at once (a crash through thousands of
stops), in groups (`_groups`) so that none waits past its send deadline, the simulated venues'
in batches two at a time. Each exit is claimed and sent as `orders.exits` says."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, timedelta

from execution_service.context import AppContext
from execution_service.models import ExecutionConnection
from execution_service.orders import bulk
from execution_service.orders.exit_venues import look_up
from execution_service.orders.exits import ExitRequest, claim, send_all
from execution_service.orders.repository import OrderRepository
from execution_service.positions.repository import PositionLike

log = logging.getLogger(__name__)

# Exits claimed (committed `pending`) at a time: each group is sent before the next is claimed,
# so no exit waits in our queue past its send deadline (`lifecycle.send_deadline`) behind
# thousands of others committed at the same moment.
CLAIM_GROUP = 500
# ... on simulated venues (filled in moments): `bulk.GROUP` at a time, `bulk.LANES` at once.


async def not_cooling_down(
    ctx: AppContext, requests: list[ExitRequest], now: datetime
) -> list[ExitRequest]:
    """A position whose last exit was refused waits `exit_retry_seconds` before the next attempt:
    an exchange that is down gets one exit order per position per interval, not one per tick."""
    if not requests:
        return requests
    since = now - timedelta(seconds=ctx.settings.exit_retry_seconds)
    async with ctx.session_factory() as session:
        recent = await OrderRepository(session).refused_exits_since(
            [r.position_id for r in requests], since
        )
    return [r for r in requests if r.position_id not in recent]


async def close_many(
    ctx: AppContext, requests: list[ExitRequest], positions: dict[int, PositionLike]
) -> tuple[list[int], set[tuple[int, date]]]:
    """The monitor's closes: claimed and sent in groups (`_groups`), each sent concurrently
    under the configured bound. Returns the positions whose exits were sent and the
    (connection, day) analytics rows the closes touched, for the caller to refresh once, not
    once per close."""
    async with ctx.session_factory() as session:
        conns = await OrderRepository(session).connections(
            list({p.execution_connection_id for p in positions.values()})
        )
    adapters, venues = await look_up(ctx, list(positions.values()), conns)
    days: set[tuple[int, date]] = set()
    sent: list[int] = []

    async def one(group: list[ExitRequest]) -> None:
        claimed = await claim(ctx, group, venues, skip_locked=True)
        await send_all(ctx, claimed, dict(adapters), conns, analytics_days=days)
        sent.extend(e.position_id for e in claimed if e.position_id is not None)

    simulated, real = _groups(ctx, requests, positions, conns)
    # Groups of simulated exits go two at a time: one's statements run while the other's
    # Python books its fills. Their venue's rows are locked in one order: they wait, never
    # deadlock. Real venues' go one group at a time (`CLAIM_GROUP`), beside them: a real
    # account's stop does not wait for thousands of paper ones.
    lanes = asyncio.Semaphore(bulk.LANES)

    async def lane(group: list[ExitRequest]) -> None:
        async with lanes:
            await one(group)

    async def in_turn() -> None:
        for group in real:
            await one(group)

    results = await asyncio.gather(in_turn(), *(lane(g) for g in simulated), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures[1:]:  # the first is raised; each group's rows left are the tracker's
        log.error("monitor: a group of exits failed", exc_info=failure)
    if failures:
        raise failures[0]
    return sent, days


def _groups(
    ctx: AppContext,
    requests: list[ExitRequest],
    positions: dict[int, PositionLike],
    conns: dict[int, ExecutionConnection],
) -> tuple[list[list[ExitRequest]], list[list[ExitRequest]]]:
    """The requests in the groups they are claimed and sent in: those on simulated venues
    `bulk.GROUP` at a time, the others `CLAIM_GROUP` at a time."""

    def simulated(r: ExitRequest) -> bool:
        position = positions.get(r.position_id)
        conn = conns.get(position.execution_connection_id) if position is not None else None
        return conn is not None and ctx.adapters.capabilities(conn).simulated

    batched = [r for r in requests if simulated(r)]
    chosen = {id(r) for r in batched}
    others = [r for r in requests if id(r) not in chosen]
    return _split(batched, bulk.GROUP), _split(others, CLAIM_GROUP)


def _split(requests: list[ExitRequest], size: int) -> list[list[ExitRequest]]:
    return [requests[start : start + size] for start in range(0, len(requests), size)]
