"""Position monitor: one tick fetches one price per (source, symbol), has the book mark every
open position to it and say what its rules close (`positions.watch`), and sends those exits
(`orders.exits`). A close is claimed `open -> closing` under `FOR UPDATE SKIP LOCKED` together
with the exit order's `pending` row, so with several worker processes on PostgreSQL each
position is closed by exactly one of them.

A tick woken by prices that just arrived judges only the positions those prices belong to; the
whole book is marked once an interval (`Monitor`).
"""

from __future__ import annotations

import logging
import time

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.market_data.prices import fetch_prices
from execution_service.market_data.sources import Quote, Source
from execution_service.models import ExecutionConnection
from execution_service.orders import exits, lifecycle
from execution_service.positions import watch
from execution_service.positions.shares import ShareKeeper

log = logging.getLogger(__name__)


class Monitor:
    """The monitor loop's tick, over this worker's shares of the book (`positions.shares`): all
    of them when the interval has passed since the last whole tick, else (woken by prices) only
    the (data connection, symbol) pairs that arrived. A price pushed or streamed for one symbol
    then costs its own positions, not every open one."""

    def __init__(self, keeper: ShareKeeper | None = None) -> None:
        self.keeper = keeper or ShareKeeper()
        self._whole_at = float("-inf")  # not money

    async def tick(self, ctx: AppContext) -> None:
        arrived = ctx.take_arrived_prices()
        shares = await self.keeper.refresh(ctx)
        started = time.monotonic()
        if arrived and started - self._whole_at < ctx.settings.monitor_interval_seconds:
            await monitor_tick(ctx, watch.Scope(shares, arrived))
            return
        self._whole_at = started
        await monitor_tick(ctx, watch.Scope(shares))

    async def close(self, ctx: AppContext) -> None:
        await self.keeper.leave(ctx)


async def monitor_tick(ctx: AppContext, scope: watch.Scope | None = None) -> watch.TickReport:
    """One pass over the open positions in `scope` (by default every one)."""
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
    requests = await exits.not_cooling_down(ctx, requests, now)
    if requests:
        wanted = {r.position_id for r in requests}
        positions = {p.id: p for p, _ in closes if p.id in wanted}
        report.closes, days = await exits.close_many(ctx, requests, positions)
        await lifecycle.refresh_analytics(ctx, days)
    return report.done()
