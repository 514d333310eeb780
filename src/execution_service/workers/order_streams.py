"""Order updates pushed by the venues (`Stream.orders`): one task per account with orders live at
a venue that pushes them, handing each update to the order tracker at once (`track_now`). A
stream that fails reconnects with backoff; meanwhile the tracker's passes poll as before.

Each check (the loop's tick) starts the streams of accounts that now have live orders, and stops
those that have had none for `IDLE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import time

from execution_service import metrics
from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.exchanges.base import ExchangeError, NotSupported
from execution_service.exchanges.capabilities import Stream
from execution_service.models import ExecutionConnection
from execution_service.orders.repository import OrderRepository
from execution_service.orders.tracker import track_now

log = logging.getLogger(__name__)

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
# A stream outlives its account's last live order this long: the next order's update must not
# wait for a new connection (an update pushed before it is up is seen only by the tracker).
IDLE_SECONDS = 300.0
STOP_SECONDS = 2.0


class OrderStreams:
    def __init__(self) -> None:
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.retrying: set[int] = set()
        self.live_at: dict[int, float] = {}  # when each account last had a live order

    async def tick(self, ctx: AppContext) -> None:
        if not ctx.settings.order_streams:
            return
        async with ctx.session_factory() as session:
            conns = await OrderRepository(session).live_connections()
        wanted = {c.id: c for c in conns if Stream.orders in ctx.adapters.capabilities(c).streams}
        now = time.monotonic()
        self.live_at |= dict.fromkeys(wanted, now)
        idle = [i for i in self.tasks if now - self.live_at.get(i, now) > IDLE_SECONDS]
        for conn_id in [i for i in self.tasks if i in idle or self.tasks[i].done()]:
            self.live_at.pop(conn_id, None)
            await self._stop(conn_id)
        for conn_id, conn in wanted.items():
            if conn_id not in self.tasks:
                self.tasks[conn_id] = asyncio.create_task(self._run(ctx, conn))
        self._measure()

    async def close(self) -> None:
        for conn_id in list(self.tasks):
            await self._stop(conn_id)

    async def _stop(self, conn_id: int) -> None:
        task = self.tasks.pop(conn_id)
        task.cancel()
        # Bounded: a stream whose library swallowed the cancel still ends at its next turn
        # (`_run` checks), but a shutdown must not wait on it past that.
        await asyncio.wait({task}, timeout=STOP_SECONDS)
        if not task.done():
            log.warning("connection %s: its order stream did not stop in time", conn_id)
        self.retrying.discard(conn_id)

    def _measure(self) -> None:
        metrics.ORDER_STREAMS.labels("streaming").set(len(self.tasks) - len(self.retrying))
        metrics.ORDER_STREAMS.labels("retrying").set(len(self.retrying))

    async def _run(self, ctx: AppContext, conn: ExecutionConnection) -> None:
        delay = BACKOFF_FIRST
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():  # a cancel something below swallowed
                raise asyncio.CancelledError
            try:
                adapter = await ctx.adapters.for_connection(conn)
                changed = await adapter.watch_order_changes()
                if conn.id in self.retrying:  # back: the gauges say so at once
                    self.retrying.discard(conn.id)
                    self._measure()
                delay = BACKOFF_FIRST
                await track_now(ctx, conn, changed)
            except NotSupported:
                return
            except (CredentialsError, ExchangeError) as exc:
                if conn.id not in self.retrying:
                    log.warning("connection %s: its order stream failed: %s", conn.id, exc)
                self.retrying.add(conn.id)
                self._measure()
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("connection %s: its order stream broke", conn.id)
                self.retrying.add(conn.id)
                self._measure()
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
