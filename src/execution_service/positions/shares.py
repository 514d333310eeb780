"""The position monitor's work split among worker processes (issue #20).

Every (price source, symbol) pair hashes to one of `SHARES` shares; a worker judges the open
positions of the shares whose lease it holds, and only those. On PostgreSQL the shares are rows
(`monitor_shares`) leased for `LEASE`, renewed every `RENEW_SECONDS`; each living worker
(`monitor_workers`, alive as long as it renews) takes an even part: it gives back what it holds
over its part and claims free or lapsed shares up to it. A worker that joins is given shares
within a renewal or two; a killed one's lapse after `LEASE`, and the others take them.

A worker acts on its shares only while their lease has `MARGIN` left, so a lease it lost while
stalled is not acted on by two; and the close itself is claimed `open -> closing` under `FOR
UPDATE SKIP LOCKED`, so even a share judged twice closes each position once. SQLite serves one
process: it judges every share.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import zlib
from datetime import datetime, timedelta

from execution_service import metrics
from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.market_data.sources import Source
from execution_service.positions.repository.shares import ShareRepository

log = logging.getLogger(__name__)

SHARES = 64
LEASE = timedelta(seconds=3)
RENEW_SECONDS = 1.0
MARGIN = timedelta(seconds=1)  # a lease this close to its end is not acted on
EVERY = frozenset(range(SHARES))


def share_of(source: Source, symbol: str) -> int:
    """The share judging a (price source, symbol): the same in every process and release."""
    kind, source_id = source
    return zlib.crc32(f"{kind}:{source_id}:{symbol}".encode()) % SHARES


class ShareKeeper:
    """This process's shares of the monitor's work."""

    def __init__(
        self,
        instance: str | None = None,
        *,
        lease: timedelta = LEASE,
        renew_seconds: float = RENEW_SECONDS,
    ) -> None:
        self.instance = instance or f"{socket.gethostname()}:{os.getpid()}"
        self.lease, self.renew_seconds = lease, renew_seconds
        self.owned: frozenset[int] = frozenset()
        self.workers = 0
        self._until: datetime | None = None
        self._renewed_at = float("-inf")  # not money
        self._ensured = False

    def shares(self, now: datetime) -> frozenset[int]:
        """What this worker may judge now: its shares while their lease runs."""
        if self._until is None or self._until - now < min(MARGIN, self.lease / 3):
            return frozenset()
        return self.owned

    async def refresh(self, ctx: AppContext) -> frozenset[int]:
        """Renew, rebalance and return this worker's shares (every share on SQLite); the
        database is asked at most every `RENEW_SECONDS`."""
        if ctx.engine.dialect.name != "postgresql":
            metrics.MONITOR_SHARES.set(SHARES)
            return EVERY
        clock, now = time.monotonic(), utcnow()
        if clock - self._renewed_at < self.renew_seconds and self.shares(now):
            return self.owned
        until = now + self.lease
        async with ctx.session_factory() as session:
            repo = ShareRepository(session)
            if not self._ensured:
                await repo.ensure(SHARES)
            await repo.announce(self.instance, until)
            workers = max(1, await repo.living(now))
            part = math.ceil(SHARES / workers)
            mine = await repo.renew(self.instance, now, until)
            if len(mine) > part:
                await repo.release(self.instance, mine[part:])
                mine = mine[:part]
            mine += await repo.claim(self.instance, now, until, part - len(mine))
            await session.commit()
        self._ensured, self._renewed_at = True, clock
        changed = frozenset(mine) != self.owned
        self.owned, self._until, self.workers = frozenset(mine), until, workers
        if changed:
            log.info("monitor: %d of %d shares here, %d workers", len(mine), SHARES, workers)
        metrics.MONITOR_SHARES.set(len(mine))
        metrics.MONITOR_WORKERS.set(workers)
        ctx.monitor_shares = (len(mine), SHARES, workers)
        return self.shares(now)

    async def extend(self, ctx: AppContext) -> None:
        """While a tick runs longer than the lease (a million positions, a crash's closes): keep
        this worker alive and its leases running, so that no other worker takes its shares and
        judges them too. No rebalancing here: that waits for the next tick's `refresh`, so a
        share is never given away from under the tick judging it."""
        if ctx.engine.dialect.name != "postgresql" or not self._ensured:
            return
        now = utcnow()
        until = now + self.lease
        async with ctx.session_factory() as session:
            repo = ShareRepository(session)
            await repo.announce(self.instance, until)
            mine = await repo.renew(self.instance, now, until)
            await session.commit()
        self.owned, self._until = frozenset(mine), until

    async def leave(self, ctx: AppContext) -> None:
        """Give every share back at once (a stopping worker's are taken without waiting for
        their lease to lapse)."""
        if ctx.engine.dialect.name != "postgresql" or not self._ensured:
            return
        try:
            async with ctx.session_factory() as session:
                await ShareRepository(session).release(self.instance)
                await session.commit()
        except Exception:  # not given back: the leases lapse instead
            log.warning("monitor: shares not given back; they lapse in %s", LEASE)
        self.owned, self._until = frozenset(), None
