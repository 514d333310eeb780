"""Position monitor: one tick fetches one price per (source, symbol), has the book mark every
open position to it and say what its rules close (`positions.watch`), and sends those exits
(`orders.exits`). A close is claimed `open -> closing` under `FOR UPDATE SKIP LOCKED` together
with the exit order's `pending` row, so with several worker processes on PostgreSQL each
position is closed by exactly one of them.

A tick woken by prices that just arrived judges only the positions those prices belong to; the
whole book is marked once an interval (`Monitor`). The worker's ticks wait for their exits only
briefly (`InFlight`): one account whose venue answers in seconds does not hold up every other
account's stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.market_data.prices import fetch_prices
from execution_service.market_data.sources import Quote, Source
from execution_service.models import ExecutionConnection
from execution_service.orders import exits, lifecycle
from execution_service.orders.closes import close_many, not_cooling_down
from execution_service.positions import watch
from execution_service.positions.repository import PositionLike
from execution_service.positions.shares import ShareKeeper

log = logging.getLogger(__name__)


# How long a worker's tick waits for the exits it sent before it moves on (they go on), and
# how long exits still under way get when the worker stops.
EXIT_WAIT_SECONDS = 0.1
EXIT_GRACE_SECONDS = 5.0


class InFlight:
    """Exits a tick sent and stopped waiting for after `wait` seconds (issue #20): they go on
    and record their outcomes as they land, their analytics after. Their positions are left
    out of later ticks' closes until then (claimed ones are `closing` anyway; the rest of a
    mass close is claimed by the task a group at a time)."""

    def __init__(self, wait: float | None = EXIT_WAIT_SECONDS) -> None:
        self.wait = wait  # None: until they have landed
        self.tasks: set[asyncio.Task[list[int]]] = set()
        self.positions: set[int] = set()

    async def run(self, closing: Coroutine[Any, Any, list[int]], positions: list[int]) -> list[int]:
        """The positions closed, if done within the wait (else [], still under way)."""
        task = asyncio.ensure_future(closing)
        self.tasks.add(task)
        self.positions.update(positions)

        def done(t: asyncio.Task[list[int]]) -> None:
            self.tasks.discard(t)
            self.positions.difference_update(positions)

        task.add_done_callback(done)
        finished, _ = await asyncio.wait({task}, timeout=self.wait)
        if task in finished:
            return task.result()  # a failure is the tick's, as without the wait
        task.add_done_callback(_log_failure)
        return []

    async def close(self, grace: float) -> None:
        """At shutdown: the exits under way get `grace` seconds, then are cancelled (a `pending`
        row left is reconciled by the order tracker, by its client order id)."""
        if self.tasks:
            _, late = await asyncio.wait(set(self.tasks), timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)


def _log_failure(task: asyncio.Task[list[int]]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("monitor exits failed after their tick", exc_info=exc)


class Monitor:
    """The monitor loop's tick, over this worker's shares of the book (`positions.shares`): all
    of them when the interval has passed since the last whole tick, else (woken by prices) only
    the (data connection, symbol) pairs that arrived. A price pushed or streamed for one symbol
    then costs its own positions, not every open one."""

    def __init__(
        self, keeper: ShareKeeper | None = None, exit_wait: float | None = EXIT_WAIT_SECONDS
    ) -> None:
        self.keeper = keeper or ShareKeeper()
        self._whole_at = float("-inf")  # not money
        self.exits = InFlight(exit_wait)

    async def tick(self, ctx: AppContext) -> None:
        arrived = ctx.take_arrived_prices()
        shares = await self.keeper.refresh(ctx)
        started = time.monotonic()
        keeping = asyncio.ensure_future(self._keep_leases(ctx))
        try:
            if arrived:  # first: their stops do not wait for a whole tick (marking, tickers)
                await monitor_tick(ctx, watch.Scope(shares, arrived), self.exits)
                if started - self._whole_at < ctx.settings.monitor_interval_seconds:
                    return
            self._whole_at = started
            await monitor_tick(ctx, watch.Scope(shares), self.exits)
        finally:
            keeping.cancel()

    async def _keep_leases(self, ctx: AppContext) -> None:
        """Renew this worker's leases every third of a lease for as long as its tick runs: a
        tick longer than the lease would otherwise lose its shares to another worker midway."""
        while True:
            await asyncio.sleep(self.keeper.lease.total_seconds() / 3)
            try:
                await self.keeper.extend(ctx)
            except Exception:  # the next tick's refresh tries again; the lease may lapse
                log.warning("monitor: renewing the shares' leases failed", exc_info=True)

    async def close(self, ctx: AppContext) -> None:
        await self.exits.close(EXIT_GRACE_SECONDS)
        await self.keeper.leave(ctx)


async def monitor_tick(
    ctx: AppContext, scope: watch.Scope | None = None, in_flight: InFlight | None = None
) -> watch.TickReport:
    """One pass over the open positions in `scope` (by default every one). With `in_flight`
    (the worker's), the exits are waited for only briefly and positions whose exits are still
    under way are not closed again; without, the tick ends when every exit has landed."""
    scope = scope or watch.Scope()
    report = watch.TickReport()
    now = utcnow()

    async def fetch(
        wanted: watch.Wanted, connections: dict[int, ExecutionConnection]
    ) -> dict[tuple[Source, str], Quote]:
        return await fetch_prices(ctx, wanted, connections)

    closes = await watch.mark(ctx, fetch, now, report, scope)
    # A flagged position (its exits refused too often) waits for an operator, not the next tick.
    requests = [
        exits.ExitRequest(p.id, c.reason, c.quantity, c.full, c.level)
        for p, c in closes
        if p.flagged_at is None
    ]
    if in_flight is not None:
        requests = [r for r in requests if r.position_id not in in_flight.positions]
    requests = await not_cooling_down(ctx, requests, now)
    if requests:
        wanted = {r.position_id for r in requests}
        positions = {p.id: p for p, _ in closes if p.id in wanted}
        closing = _close(ctx, requests, positions)
        if in_flight is None:
            report.closes = await closing
        else:
            report.closes = await in_flight.run(closing, sorted(wanted))
    return report.done()


async def _close(
    ctx: AppContext,
    requests: list[exits.ExitRequest],
    positions: dict[int, PositionLike],
) -> list[int]:
    closed, days = await close_many(ctx, requests, positions)
    await lifecycle.refresh_analytics(ctx, days)
    return closed
