"""What one process holds for its whole life: settings, database, key ring, exchange clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from execution_service.crypto import KeyRing, load_key_ring
from execution_service.db import create_engine, create_read_engine, create_session_factory
from execution_service.exchanges.registry import AdapterRegistry
from execution_service.limits import FailedAuthLimiter, TokenBucket
from execution_service.settings import Settings


@dataclass
class FailureStreak:
    """Order lookups on one connection that failed in a row, and the kinds of failure already
    logged (each once, until a lookup succeeds)."""

    count: int = 0
    logged: set[str] = field(default_factory=set)


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    keyring: KeyRing
    adapters: AdapterRegistry
    auth_limiter: FailedAuthLimiter
    signal_limiter: TokenBucket
    # Set when prices arrive (pushed through the API, fetched or streamed by a feed): the monitor
    # in this process ticks at once instead of at its next interval (a stop reacts in
    # milliseconds, not up to a second). `arrived_prices` says which (data connection, symbol):
    # a woken tick judges only their positions (`prices_arrived`, `take_arrived_prices`).
    prices_changed: asyncio.Event = field(default_factory=asyncio.Event)
    arrived_prices: set[tuple[int, str]] = field(default_factory=set)
    # Autocommit engine for single-statement API reads (`db.create_read_engine`); None: `engine`.
    read_engine: AsyncEngine | None = None
    # Per connection: the `last_used_at` this process last committed (`logs.record_outcomes`
    # writes it again only once it is LAST_USED_PRECISION old).
    last_used_written: dict[int, datetime] = field(default_factory=dict)
    # Per connection: the order tracker's failed lookups in a row (`orders.tracker`).
    lookup_failures: dict[int, FailureStreak] = field(default_factory=dict)
    # Per price source: its ticker fetch still in flight after a monitor tick stopped waiting
    # for it (`market_data.prices`): the next tick takes its answer instead of asking again.
    ticker_fetches: dict[Any, asyncio.Task[Any]] = field(default_factory=dict)
    # Per venue whose public prices the monitor reads: when it last answered (monotonic), and
    # those that have not answered for the monitor's maximum price age (`market_data.prices`).
    venue_prices_at: dict[str, float] = field(default_factory=dict)
    stale_price_venues: list[str] = field(default_factory=list)
    # The monitor's shares in this process: (held, of, workers splitting them) once it ran
    # (`positions.shares`).
    monitor_shares: tuple[int, int, int] | None = None
    # Protection held at the venue (`orders.protection`): its first pass ran (start-up
    # reconciliation, before ready), and how many positions it could not protect there.
    protection_checked: bool = False
    unprotected_positions: int = 0
    # The pass started right after entries fill (`orders.protection.protect_soon`), and whether
    # another was asked for while it ran.
    protection_task: asyncio.Task[None] | None = None
    protection_again: bool = False

    def prices_arrived(self, data_connection_id: int, symbols: Iterable[str]) -> None:
        """New prices of these symbols from this data connection: wake the monitor for them."""
        self.arrived_prices.update((data_connection_id, symbol) for symbol in symbols)
        self.prices_changed.set()

    def take_arrived_prices(self) -> set[tuple[int, str]]:
        """What arrived since the last call (the monitor's woken tick judges those)."""
        arrived, self.arrived_prices = self.arrived_prices, set()
        return arrived

    @property
    def reader(self) -> AsyncEngine:
        return self.read_engine or self.engine

    @classmethod
    def create(cls, settings: Settings, keyring: KeyRing) -> AppContext:
        pool: dict[str, int] = {}
        if not settings.database_url.startswith("sqlite"):
            pool = {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow}
        engine = create_engine(settings.database_url, **pool)
        factory = create_session_factory(engine)
        adapters = AdapterRegistry(
            settings=settings,
            session_factory=factory,
            keyring=keyring,
            reload_keyring=lambda: load_key_ring(settings),
        )
        return cls(
            settings,
            engine,
            factory,
            keyring,
            adapters,
            FailedAuthLimiter(settings.auth_max_failures, settings.auth_failure_window_seconds),
            TokenBucket(settings.signal_rate_per_minute / 60, settings.signal_rate_burst),
            read_engine=create_read_engine(
                settings.database_url, engine, settings.db_read_pool_size
            ),
        )

    async def aclose(self) -> None:
        for task in self.ticker_fetches.values():
            task.cancel()
        if self.protection_task is not None:
            self.protection_task.cancel()
            with contextlib.suppress(BaseException):
                await self.protection_task
        await self.adapters.close_all()
        if self.read_engine is not None and self.read_engine is not self.engine:
            await self.read_engine.dispose()
        await self.engine.dispose()
