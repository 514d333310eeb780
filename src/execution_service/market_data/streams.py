"""Prices pushed by the venues (issue #18): a `ccxt` data connection whose venue streams tickers
(a declared `Stream.tickers`) is streamed by one worker process, which stores each batch of
tickers through the one write path (`store`, as polled ticks are) and wakes the monitor. The
poll loop (`feeds.Feeder`) fetches it only while its stream is down or silent.

- **One streamer per connection, across processes.** A worker claims a connection by its lease
  (`streamed_until`, under `FOR UPDATE SKIP LOCKED`), renews it while its task lives (the update
  names the lease it holds, so a worker whose lease lapsed and was taken over stops), and gives
  it up when the connection no longer streams or the worker stops. A killed worker's lease
  lapses after `LEASE_SECONDS`, and another process takes the connection over.
- **Streaming or polling.** While the stream delivers, `mode` is `streaming` and the poll claim
  (`next_fetch_at`) is held at the lease: no process polls it. Refused, dropped, or silent for
  `SILENCE_SECONDS`, it is `polling` and due at once: the feed loop polls it as before, while the
  stream reconnects with backoff (1 s, doubling to a minute). Its next batch makes it
  `streaming` again.
- **What is watched** is the symbols of the open positions it prices plus its `symbols`, read at
  every tick of the feed loop; a changed set is a new subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from execution_service import metrics
from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import utcnow
from execution_service.enums import FeedMode
from execution_service.exchanges.base import ExchangeError, Ticker
from execution_service.market_data.feeds import FETCHING, can_stream
from execution_service.market_data.repository import DataConnectionRepository
from execution_service.market_data.store import Point, store
from execution_service.models import DataConnection

log = logging.getLogger(__name__)

BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0  # seconds between reconnections, doubling
SILENCE_SECONDS = 15.0  # a stream that pushed nothing for this long is polled meanwhile
LEASE_SECONDS = 15.0  # a worker holds a connection's stream this long past its last renewal
RENEW_SECONDS = 5.0  # how often the leases are renewed


@dataclass
class _Stream:
    row: DataConnection
    lease: datetime  # the `streamed_until` this worker wrote last
    symbols: list[str] = field(default_factory=list)
    healthy: bool | None = None  # None: not known yet (neither mode recorded by this worker)
    received_at: float = field(default_factory=time.monotonic)
    renewed_at: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None


class StreamFeeds:
    """This worker's price streams, one task per connection it holds."""

    def __init__(
        self,
        *,
        silence: float = SILENCE_SECONDS,
        backoff: tuple[float, float] = (BACKOFF_FIRST, BACKOFF_MAX),
        lease: float = LEASE_SECONDS,
        renew: float = RENEW_SECONDS,
    ) -> None:
        self.silence, self.backoff = silence, backoff
        self.lease, self.renew = timedelta(seconds=lease), renew
        self.streams: dict[int, _Stream] = {}
        self._ctx: AppContext | None = None

    async def tick(self, ctx: AppContext, only: Collection[int] | None = None) -> None:
        """Claim what this worker can stream (`only`: of these, as tests do), renew what it
        holds, give up what no longer streams, and hand each stream its symbols."""
        self._ctx = ctx
        now, clock = utcnow(), time.monotonic()
        async with ctx.session_factory() as session:
            repo = DataConnectionRepository(session)
            rows = await repo.active_of_types(FETCHING)
            wanted = {
                d.id: d
                for d in rows
                if can_stream(d, ctx.settings) and (only is None or d.id in only)
            }
            gone = [i for i in self.streams if i not in wanted or self._ended(i)]
            lost = []
            for data_id, stream in self.streams.items():
                if data_id in gone or clock - stream.renewed_at < self.renew:
                    continue
                if await self._renew(repo, stream, now):
                    stream.renewed_at = clock
                else:
                    lost.append(data_id)
            free = [i for i in wanted if i not in self.streams]
            claimed = await repo.claim_streams(free, now, now + self.lease)
            held = [i for i in self.streams if i not in gone and i not in lost]
            symbols = await repo.position_symbols(held + [d.id for d in claimed])
            await session.commit()
        for data_id in lost:  # another worker holds it now: nothing of ours to give back
            await self._stop(data_id)
        for data_id in gone:
            task = self.streams[data_id].task
            if task is not None and task.done() and not task.cancelled():
                error = task.exception()
                log.error("data connection %s: its stream broke", data_id, exc_info=error)
            await self._release(ctx, data_id)
        for row in claimed:
            stream = self.streams[row.id] = _Stream(row, now + self.lease)
            stream.task = asyncio.create_task(self._run(ctx, stream), name=f"stream:{row.id}")
        for data_id, stream in self.streams.items():
            stream.row = wanted.get(data_id, stream.row)
            stream.symbols = sorted(symbols.get(data_id, set()) | set(stream.row.symbols or []))

    async def close(self) -> None:
        """Stop every stream and give each connection back (polled at once, or streamed by
        another worker)."""
        for data_id in list(self.streams):
            if self._ctx is None:
                await self._stop(data_id)
            else:
                await self._release(self._ctx, data_id)

    def _ended(self, data_id: int) -> bool:
        task = self.streams[data_id].task
        return task is not None and task.done()

    async def _renew(self, repo: DataConnectionRepository, stream: _Stream, now: datetime) -> bool:
        until = now + self.lease
        values: dict[str, Any] = {"streamed_until": until}
        if stream.healthy:  # the poll stays held off; the feed is fresh
            values |= {"next_fetch_at": until, "last_fetched_at": now}
        if not await repo.hold_stream(stream.row.id, stream.lease, **values):
            return False
        stream.lease = until
        return True

    async def _stop(self, data_id: int) -> None:
        stream = self.streams.pop(data_id)
        if stream.task is not None:
            stream.task.cancel()
            with contextlib.suppress(BaseException):
                await stream.task

    async def _release(self, ctx: AppContext, data_id: int) -> None:
        lease = self.streams[data_id].lease
        await self._stop(data_id)
        now = utcnow()
        with contextlib.suppress(Exception):  # not given back: its lease lapses instead
            async with ctx.session_factory() as session:
                values = {"streamed_until": None, "mode": FeedMode.polling, "next_fetch_at": now}
                await DataConnectionRepository(session).hold_stream(data_id, lease, **values)
                await session.commit()

    # --- one connection's stream -----------------------------------------------------------

    async def _run(self, ctx: AppContext, stream: _Stream) -> None:
        first, most = self.backoff
        delay = first
        while True:
            if not stream.symbols:  # nothing to watch is a healthy stream, as a poll of nothing
                if stream.healthy is not True:
                    await self._mode(ctx, stream, healthy=True)
                stream.received_at = time.monotonic()
                await asyncio.sleep(min(1.0, self.silence))
                continue
            try:
                adapter = await ctx.adapters.feed(stream.row)
                tickers = await adapter.watch_tickers(stream.symbols)
            except (CredentialsError, ExchangeError) as exc:
                if stream.healthy is not False:
                    log.warning("data connection %s: its stream failed: %s", stream.row.id, exc)
                    await self._mode(ctx, stream, healthy=False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, most)
                continue
            delay = first
            silent = time.monotonic() - stream.received_at > self.silence
            if tickers:
                stream.received_at = time.monotonic()
                if stream.healthy is not True:
                    await self._mode(ctx, stream, healthy=True)
                await self._store(ctx, stream, tickers)
            elif silent and stream.healthy is not False:
                log.warning("data connection %s: its stream is silent", stream.row.id)
                await self._mode(ctx, stream, healthy=False)

    async def _mode(self, ctx: AppContext, stream: _Stream, *, healthy: bool) -> None:
        """Record the stream's mode: streaming holds the polls off; polling makes one due now."""
        now = utcnow()
        values: dict[str, Any]
        if healthy:
            values = {"mode": FeedMode.streaming, "next_fetch_at": stream.lease}
            values |= {"last_fetched_at": now, "last_error": None, "consecutive_failures": 0}
        else:
            values = {"mode": FeedMode.polling, "next_fetch_at": now}
        async with ctx.session_factory() as session:
            held = await DataConnectionRepository(session).hold_stream(
                stream.row.id, stream.lease, **values
            )
            await session.commit()
        if held:
            stream.healthy = healthy

    async def _store(self, ctx: AppContext, stream: _Stream, tickers: dict[str, Ticker]) -> None:
        """One batch: what the venue pushed while the last batch was stored."""
        now = utcnow()
        points = [Point.tick(s, t.timestamp or now, t.price) for s, t in tickers.items()]
        async with ctx.session_factory() as session:
            await store(session, stream.row.id, points, now)
            await session.commit()
        metrics.MARKET_DATA_POINTS.labels("streamed").inc(len(points))
        ctx.prices_arrived(stream.row.id, tickers)  # this process's monitor judges them now
