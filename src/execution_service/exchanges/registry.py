"""Which adapter serves a connection, and the cache of live exchange clients.

Paper is decided first, from the row alone: a paper connection never gets a real client. Real
clients are cached per connection and rebuilt when anything they were built from changes
(credentials, URL, sandbox, market type) or when they grow older than their lifetime.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execution_service.crypto import CredentialsError, KeyRing, owner_aad
from execution_service.enums import Adapter, DataSourceType
from execution_service.exchanges.base import (
    BalanceEntry,
    ExchangeAdapter,
    ExchangeError,
    OrderRequest,
    OrderResult,
    Quotes,
)
from execution_service.exchanges.bounded import BoundedAdapter
from execution_service.exchanges.budget import Budgets, BudgetSpec, Window
from execution_service.exchanges.cache import SharedMarkets, TickerBook
from execution_service.exchanges.capabilities import VenueCapabilities
from execution_service.exchanges.catalog import capabilities
from execution_service.exchanges.kept import KeptBalances
from execution_service.exchanges.paper import adapter as paper, batch as paper_batch
from execution_service.exchanges.paper.adapter import PaperAdapter
from execution_service.exchanges.paper.quotes import preload
from execution_service.models import DataConnection, ExecutionConnection
from execution_service.outbound.egress import Egress
from execution_service.settings import Settings

CLIENT_LIFETIME_SECONDS = 6 * 3600


class Encrypted(Protocol):
    """A row holding credentials: an execution connection, or a data connection's login."""

    user_id: Any
    admin_id: Any
    credentials_encrypted: Any
    credentials_key_id: Any


def decrypt_credentials(keyring: KeyRing, conn: Encrypted) -> dict[str, str]:
    if not conn.credentials_encrypted:
        raise CredentialsError("the connection has no credentials")
    return keyring.decrypt(conn.credentials_encrypted, owner_aad(conn.user_id, conn.admin_id))


Keep = Callable[[dict[str, BalanceEntry], float], None]  # (balances, age in seconds)


@dataclass
class _Cached:
    fingerprint: str
    adapter: ExchangeAdapter
    created: float
    keep: Keep | None = None  # takes a kept balance (ccxt clients)


class AdapterRegistry:
    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        reload_keyring: Callable[[], KeyRing] | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = session_factory
        self._keyring = keyring
        self._reload_keyring = reload_keyring
        self._clients: dict[int, _Cached] = {}
        self._bounds: dict[int, asyncio.Semaphore] = {}
        self._lock = asyncio.Lock()
        # Per venue (exchange, URL, sandbox, market type): accounts on the same venue see the
        # same markets and prices, so one load or one ticker serves them all.
        self._tickers: dict[str, TickerBook] = {}
        self._markets: dict[str, SharedMarkets] = {}
        self.kept = KeptBalances(session_factory)
        self._public: dict[str, ExchangeAdapter] = {}  # per `price_venue`: its public prices
        self._seeds: dict[int, tuple[dict[str, BalanceEntry], float]] = {}  # for clients to come
        # One request budget per (venue, egress), shared by every account (issue #19).
        self.budgets = (
            Budgets(redis_url=settings.redis_url, scale=settings.budget_limit_scale)
            if settings.budget_enabled
            else None
        )

    def _venue(
        self,
        exchange: str | None,
        url: str | None,
        sandbox: bool,
        market_type: str,
        egress: str | None = None,
    ) -> dict[str, Any]:
        key = f"{exchange}|{url}|{sandbox}|{market_type}"
        tickers = self._tickers.get(key)
        if tickers is None:
            tickers = self._tickers[key] = TickerBook(self._settings.ticker_cache_seconds)
        markets = self._markets.setdefault(key, SharedMarkets())
        budget = None
        if self.budgets is not None:
            window = self._settings.budget_weight_windows.get(exchange or "")
            weight = Window(window.limit, window.seconds, window.grace) if window else None
            budget = BudgetSpec(self.budgets, egress, weight=weight)
        return {"tickers": tickers, "shared_markets": markets, "budget": budget}

    def _bound(self, key: int, adapter: ExchangeAdapter) -> ExchangeAdapter:
        bound = self._bounds.get(key)
        if bound is None:
            bound = self._bounds[key] = asyncio.Semaphore(
                self._settings.exchange_concurrency_per_connection
            )
        return BoundedAdapter(adapter, bound, self._settings.exchange_timeout_ms / 1000)

    def capabilities(self, conn: ExecutionConnection) -> VenueCapabilities:
        return capabilities(conn.adapter, conn.exchange, conn.market_type)

    def paper(self, conn: ExecutionConnection) -> PaperAdapter:
        config = conn.paper_config or {}
        return PaperAdapter(
            conn.id,
            conn.data_connection_id,
            self._sessions,
            terms=paper.PaperTerms.of(conn.market_type, config),
        )

    async def simulated_quotes(
        self, session: AsyncSession, conns: Sequence[ExecutionConnection], symbol: str
    ) -> dict[int, Quotes]:
        """For connections on simulated venues: what sizing reads, for all of them in a few
        queries of `session` (a fan-out's reader), instead of a query per connection."""
        accounts = [
            (c.id, c.data_connection_id, paper.PaperTerms.of(c.market_type, c.paper_config))
            for c in conns
            if self.capabilities(c).simulated
        ]
        return dict(await preload(session, accounts, symbol))

    async def create_orders_batch(
        self, orders: Sequence[tuple[ExecutionConnection, OrderRequest]]
    ) -> list[OrderResult | ExchangeError]:
        """Orders on simulated venues (any accounts) in one transaction: each order's outcome
        is what sending it alone would give, in this order."""
        requests = [
            paper_batch.PaperOrderRequest(
                paper_batch.PaperAccount.of(conn.id, conn.data_connection_id, conn.paper_config),
                o.symbol,
                o.side,
                o.type,
                o.amount,
                o.price,
                o.client_order_id,
                o.trigger,
            )
            for conn, o in orders
        ]
        return await paper_batch.create_orders(self._sessions, requests)

    async def for_connection(self, conn: ExecutionConnection) -> ExchangeAdapter:
        """The adapter for a connection; raises CredentialsError if its secrets do not decrypt."""
        if conn.adapter == Adapter.paper:
            return self._bound(conn.id, self.paper(conn))
        fingerprint = _fingerprint(conn)
        async with self._lock:
            cached = self._clients.get(conn.id)
            if cached is not None:
                fresh = time.monotonic() - cached.created < CLIENT_LIFETIME_SECONDS
                if cached.fingerprint == fingerprint and fresh:
                    return cached.adapter
                del self._clients[conn.id]
                await cached.adapter.close()
            inner = self._build(conn)
            keep: Keep | None = getattr(inner, "keep_balance", None)
            adapter = self._bound(conn.id, inner)
            self._clients[conn.id] = _Cached(fingerprint, adapter, time.monotonic(), keep)
            if (seed := self._seeds.pop(conn.id, None)) is not None and keep is not None:
                keep(seed[0], time.monotonic() - seed[1])
            return adapter

    async def keep_balances(
        self, session: AsyncSession, conns: Sequence[ExecutionConnection]
    ) -> None:
        """These connections' clients get their kept balances (`exchanges.kept`), in one query:
        a fan-out's sizing falls back on them when the budget is short."""
        ids = [c.id for c in conns if c.adapter == Adapter.ccxt]
        for conn_id in ids:  # an earlier seed may be spent since: only this answer counts
            self._seeds.pop(conn_id, None)
        for conn_id, (balances, age) in (await self.kept.unspent(session, ids)).items():
            cached = self._clients.get(conn_id)
            if cached is not None and cached.keep is not None:
                cached.keep(balances, age)
            else:
                self._seeds[conn_id] = (balances, time.monotonic() - age)

    def _credentials(self, conn: Encrypted) -> dict[str, str]:
        try:
            return decrypt_credentials(self._keyring, conn)
        except CredentialsError:
            # `rotate-keys --new-key` run beside this process: the row may be under a key this
            # process has not loaded yet. Read the ring again once before calling it a failure.
            if self._reload_keyring is None or conn.credentials_key_id in self._keyring.key_ids:
                raise
            self._keyring = self._reload_keyring()
            return decrypt_credentials(self._keyring, conn)

    def _build(self, conn: ExecutionConnection) -> ExchangeAdapter:
        credentials = self._credentials(conn)
        if conn.adapter == Adapter.ccxt:
            from execution_service.exchanges.ccxt.adapter import CcxtAdapter

            return CcxtAdapter(
                conn.exchange or "",
                credentials,
                sandbox=conn.sandbox,
                api_base_url=conn.api_base_url,
                market_type=conn.market_type,
                timeout_ms=self._settings.exchange_timeout_ms,
                read_retries=self._settings.exchange_read_retries,
                retry_base_delay=self._settings.exchange_retry_base_delay,
                outbound=self._settings.outbound,
                enable_rate_limit=self._settings.env != "test",
                balance_ttl=self._settings.balance_cache_seconds,
                balance_kept=self._settings.balance_kept_seconds,
                on_balance=functools.partial(self.kept.note, conn.id),
                egress=self._egress(conn.egress),
                **self._venue(
                    conn.exchange, conn.api_base_url, conn.sandbox, conn.market_type, conn.egress
                ),
            )
        if conn.adapter == Adapter.mtapi:
            from execution_service.exchanges.mtapi.adapter import MtapiAdapter

            return MtapiAdapter(
                conn.api_base_url or "",
                credentials,
                timeout_ms=self._settings.exchange_timeout_ms,
                read_retries=self._settings.exchange_read_retries,
                retry_base_delay=self._settings.exchange_retry_base_delay,
                outbound=self._settings.outbound,
            )
        raise ExchangeError(f"adapter {conn.adapter!r} is not available in this build")

    def _egress(self, name: str | None) -> Egress | None:
        if name is None:
            return None
        egress = self._settings.egress.get(name)
        if egress is None:  # the operator removed the group: refuse, never go out directly
            raise ExchangeError(f"egress group {name!r} is not configured")
        return egress

    async def feed(self, data: DataConnection) -> ExchangeAdapter:
        """The client a fetching data connection reads prices through: a venue's public
        tickers (ccxt), or a gateway session under the data connection's own login (mtapi).
        Raises CredentialsError if that login does not decrypt."""
        if data.type != DataSourceType.mtapi:
            return await self.public(data)
        from execution_service.exchanges.mtapi.adapter import MtapiAdapter

        key = -data.id  # data connections share the cache, on negative ids
        parts = (data.type, data.api_base_url or "", data.credentials_encrypted or "")
        fingerprint = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
        async with self._lock:
            cached = self._clients.get(key)
            if cached is not None and cached.fingerprint == fingerprint:
                return cached.adapter
            credentials = self._credentials(data)
            if cached is not None:
                del self._clients[key]
                await cached.adapter.close()
            adapter = self._bound(
                key,
                MtapiAdapter(
                    data.api_base_url or "",
                    credentials,
                    timeout_ms=self._settings.exchange_timeout_ms,
                    read_retries=self._settings.exchange_read_retries,
                    retry_base_delay=self._settings.exchange_retry_base_delay,
                    outbound=self._settings.outbound,
                ),
            )
            self._clients[key] = _Cached(fingerprint, adapter, time.monotonic())
            return adapter

    async def public(self, data: DataConnection) -> ExchangeAdapter:
        """A credential-less client for a `ccxt` data connection's public tickers."""
        key = -data.id  # data connections share the cache, on negative ids
        fingerprint = f"{data.exchange}|{data.api_base_url}|{data.sandbox}|{data.market_type}"
        async with self._lock:
            cached = self._clients.get(key)
            if cached is not None and cached.fingerprint == fingerprint:
                return cached.adapter
            if cached is not None:
                await cached.adapter.close()
            # Bounded like an account's client, which also counts its errors for Prometheus.
            adapter = self._bound(key, self._public_client(data))
            self._clients[key] = _Cached(fingerprint, adapter, time.monotonic())
            return adapter

    def price_venue(self, conn: ExecutionConnection) -> str | None:
        """The venue whose public prices mark a connection's positions when it has no data
        connection: one request a tick serves every account on it (issue #20), by the egress
        they go out by. None: the account's prices are its own (a broker's quotes)."""
        if conn.adapter != Adapter.ccxt:
            return None
        venue = f"{conn.exchange}|{conn.api_base_url}|{conn.sandbox}|{conn.market_type}"
        return f"{venue}|{conn.egress or ''}"

    async def venue_prices(self, conn: ExecutionConnection) -> ExchangeAdapter:
        """The credential-less client of `price_venue(conn)`, shared by its accounts."""
        key = self.price_venue(conn) or ""
        async with self._lock:
            client = self._public.get(key)
            if client is None:
                timeout = self._settings.exchange_timeout_ms / 1000
                bound = asyncio.Semaphore(self._settings.exchange_concurrency_per_connection)
                public = self._public_client(conn, conn.egress)
                client = BoundedAdapter(public, bound, timeout)
                self._public[key] = client
            return client

    def _public_client(
        self, venue: DataConnection | ExecutionConnection, egress: str | None = None
    ) -> ExchangeAdapter:
        from execution_service.exchanges.ccxt.adapter import CcxtAdapter

        return CcxtAdapter(
            venue.exchange or "",
            {},
            sandbox=venue.sandbox,
            api_base_url=venue.api_base_url,
            market_type=venue.market_type,
            timeout_ms=self._settings.exchange_timeout_ms,
            enable_rate_limit=self._settings.env != "test",
            outbound=self._settings.outbound,
            egress=self._egress(egress),
            **self._venue(
                venue.exchange, venue.api_base_url, venue.sandbox, venue.market_type, egress
            ),
        )

    async def budget_states(self) -> list[dict[str, Any]]:
        """Each (venue, egress) request budget: used, limit, paused until (unix time, 0: not).
        Also refreshes the budget gauges (another process may have paused one, via Redis)."""
        budgets = self.budgets.all() if self.budgets is not None else []
        return [{"venue": b.venue, "egress": b.egress, **await b.state()} for b in budgets]

    def forget_prices(self) -> None:
        """Drop every venue's cached tickers (the next sizing asks the exchange)."""
        self._tickers.clear()

    async def evict(self, connection_id: int) -> None:
        async with self._lock:
            cached = self._clients.pop(connection_id, None)
        if cached is not None:
            await cached.adapter.close()

    async def evict_feed(self, data_connection_id: int) -> None:
        """Close a data connection's client (deleted, or its endpoint or login changed)."""
        await self.evict(-data_connection_id)

    async def close_all(self) -> None:
        async with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            public, self._public = list(self._public.values()), {}
        for adapter in [c.adapter for c in clients] + public:
            await adapter.close()
        await self.kept.close()
        if self.budgets is not None:
            await self.budgets.close()


def _fingerprint(conn: ExecutionConnection) -> str:
    parts = (
        conn.adapter,
        conn.exchange or "",
        conn.credentials_encrypted or "",
        conn.api_base_url or "",
        str(conn.sandbox),
        conn.market_type,
        conn.egress or "",
    )
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()
