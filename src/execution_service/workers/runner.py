"""One runner for every background loop: started inside `serve`, or alone by `worker`.

Each loop runs its tick, records a heartbeat (read by /health/ready), then sleeps its interval.
Stopping lets the tick in hand finish. Every tick opens its own sessions: none crosses tasks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.health.repository import HeartbeatRepository
from execution_service.orders.protection import protect_positions
from execution_service.orders.stopout import guard_tick
from execution_service.orders.tracker import track_orders
from execution_service.orders.venue_sync import sync_venues
from execution_service.workers.analytics import analytics_tick
from execution_service.workers.health import health_tick
from execution_service.workers.market_data import feeds, retention_tick
from execution_service.workers.monitor import Monitor
from execution_service.workers.order_streams import OrderStreams
from execution_service.workers.webhooks import webhook_tick

log = logging.getLogger(__name__)
# How often the accounts with live orders are checked for an order stream to start or stop.
ORDER_STREAMS_CHECK_SECONDS = 1.0
# How long a stopping runner waits for the ticks in flight before it cancels them.
STOP_GRACE_SECONDS = 10.0

Tick = Callable[[AppContext], Awaitable[None]]


@dataclass(frozen=True)
class Loop:
    name: str
    interval: float
    tick: Tick
    wake: asyncio.Event | None = None  # ticks early when set
    close: Callable[[], Awaitable[None]] | None = None  # what its ticks started, stopped


async def _orders(ctx: AppContext) -> None:
    await track_orders(ctx, starting=not ctx.protection_checked)
    # After the orders are known (a leg that filled while we were down closed its position):
    # cancel what outlived its position, and rest at the venue what a position lacks.
    await protect_positions(ctx)
    # Ready from here (start-up reconciliation done): not from a pass another loop started, nor
    # from the heartbeats a killed process left behind.
    ctx.protection_checked = True


async def _venues(ctx: AppContext) -> None:
    await sync_venues(ctx)


async def _health(ctx: AppContext) -> None:
    await health_tick(ctx, 0.8 * ctx.settings.health_interval_seconds)


async def _analytics(ctx: AppContext) -> None:
    await analytics_tick(ctx)


async def _webhooks(ctx: AppContext) -> None:
    await webhook_tick(ctx)


async def _guard(ctx: AppContext) -> None:
    await guard_tick(ctx, utcnow())


async def _retention(ctx: AppContext) -> None:
    await retention_tick(ctx)


def default_loops(ctx: AppContext) -> list[Loop]:
    s = ctx.settings
    streams, prices, monitor = OrderStreams(), feeds(), Monitor()
    return [
        # Over this worker's shares of the book (several workers split them on PostgreSQL).
        Loop(
            "position_monitor",
            s.monitor_interval_seconds,
            monitor.tick,
            ctx.prices_changed,
            close=lambda: monitor.close(ctx),
        ),
        # Runs at once on start: orders whose outcome a crash lost are reconciled first thing.
        Loop("order_tracker", s.order_tracker_interval_seconds, _orders),
        # Runs at once on start too: positions the venue closed while we were down are closed.
        Loop("venue_sync", s.venue_sync_interval_seconds, _venues),
        # Accounts whose venue pushes order updates: one stream each while orders are live.
        Loop("order_streams", ORDER_STREAMS_CHECK_SECONDS, streams.tick, close=streams.close),
        Loop("connection_health", s.health_interval_seconds, _health),
        Loop("analytics", s.analytics_interval_seconds, _analytics),
        Loop("webhook_delivery", s.webhook_interval_seconds, _webhooks),
        Loop("drawdown_guard", s.guard_interval_seconds, _guard),
        # Fetching data connections (ccxt, mtapi) store what their venue pushes (one stream
        # each, where it can) or what they fetch; the monitor reads it.
        Loop("market_data_feeds", s.market_data_poll_seconds, prices.tick, close=prices.close),
        Loop("market_data_retention", s.market_data_prune_interval_seconds, _retention),
    ]


class WorkerRunner:
    def __init__(self, ctx: AppContext, loops: list[Loop] | None = None) -> None:
        self.ctx = ctx
        self.loops = loops if loops is not None else default_loops(ctx)
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(self._run(loop), name=f"worker:{loop.name}") for loop in self.loops
        ]
        log.info("workers started: %s", ", ".join(loop.name for loop in self.loops))

    async def stop(self) -> None:
        """Each loop ends after its current tick; a tick still running after STOP_GRACE_SECONDS
        (the health checks spread over their interval sleep inside the tick) is cancelled, so a
        SIGTERM never ends in the SIGKILL that follows a shutdown that hangs."""
        self._stop.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=STOP_GRACE_SECONDS)
            for task in late:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for loop in self.loops:
            if loop.close is not None:
                await loop.close()

    async def wait(self) -> None:
        await self._stop.wait()
        await self.stop()

    async def _run(self, loop: Loop) -> None:
        while not self._stop.is_set():
            if loop.wake is not None:
                loop.wake.clear()  # prices that arrive during this tick wake the next one
            try:
                await loop.tick(self.ctx)
                await self.heartbeat(loop.name)
            except Exception:
                log.exception("worker %s tick failed", loop.name)
            await self._sleep(loop)

    async def _sleep(self, loop: Loop) -> None:
        """Until the interval passes, the runner stops, or the loop is woken."""
        waits = [asyncio.ensure_future(self._stop.wait())]
        if loop.wake is not None:
            waits.append(asyncio.ensure_future(loop.wake.wait()))
        try:
            await asyncio.wait(waits, timeout=loop.interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def heartbeat(self, name: str) -> None:
        async with self.ctx.session_factory() as session:
            await HeartbeatRepository(session).beat(name, self.instance, utcnow())
            await session.commit()
