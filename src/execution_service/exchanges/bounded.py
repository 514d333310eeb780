"""A bound on concurrent calls toward one account: one connection's storm of orders queues on its
own semaphore and never takes every slot, so other connections are not starved.

Every adapter call passes through here, so this is also where adapter errors are counted (by
error code and operation) for Prometheus, once per failed call after the adapter's own retries."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal

from execution_service import metrics
from execution_service.enums import OrderType
from execution_service.exchanges.base import (
    BalanceEntry,
    ExchangeAdapter,
    ExchangeBusy,
    ExchangeError,
    FundingPayment,
    Market,
    OrderResult,
    ProtectiveLeg,
    Stops,
    Ticker,
    Valuation,
    VenueClose,
    VenuePosition,
)
from execution_service.exchanges.budget import Priority, calling, current_call
from execution_service.exchanges.capabilities import VenueCapabilities

# Operations that protect or close a position: first in line for the venue's request budget.
_EXITS = frozenset(
    {"close_position", "amend_stops", "cancel_order", "place_protection", "amend_protection"}
)


class BoundedAdapter:
    def __init__(
        self,
        inner: ExchangeAdapter,
        bound: asyncio.Semaphore,
        order_slot_timeout: float | None = None,
    ) -> None:
        self.inner = inner
        self._bound = bound
        # An order waits at most this long for a slot; then it is refused unsent. A pending order
        # queued for longer could meet another process's tracker, which would reject it as never
        # seen by the exchange (after EXEC_PENDING_GRACE_SECONDS) just before it went out.
        self._order_slot_timeout = order_slot_timeout

    @property
    def capabilities(self) -> VenueCapabilities:
        return self.inner.capabilities

    async def read_balance(self) -> dict[str, BalanceEntry]:
        async with self._call("fetch_balance"):
            return await self.inner.read_balance()

    @contextlib.asynccontextmanager
    async def _call(self, operation: str, *, bounded: bool = True) -> AsyncIterator[None]:
        # A read is at the read priority unless its caller chose one (a health check's
        # background, a batch of exits' bounded wait): the caller's context stands.
        exit_call = operation in _EXITS
        chosen = contextlib.nullcontext() if current_call() is not None and not exit_call else None
        try:
            with chosen or calling(Priority.EXIT if exit_call else Priority.READ):
                if bounded:
                    async with self._bound:
                        yield
                else:
                    yield
        except ExchangeError as exc:
            metrics.EXCHANGE_ERRORS.labels(exc.code, operation).inc()
            raise

    async def load_markets(self, reload: bool = False) -> dict[str, Market]:
        async with self._call("load_markets"):
            return await self.inner.load_markets(reload)

    async def market(self, symbol: str) -> Market:
        async with self._call("market", bounded=False):  # cached after the first load_markets
            return await self.inner.market(symbol)

    async def fetch_balance(self) -> dict[str, BalanceEntry]:
        async with self._call("fetch_balance"):
            return await self.inner.fetch_balance()

    async def valuation(self, symbol: str) -> Valuation:
        async with self._call("valuation"):
            return await self.inner.valuation(symbol)

    async def fetch_ticker(self, symbol: str) -> Ticker:
        async with self._call("fetch_ticker"):
            return await self.inner.fetch_ticker(symbol)

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        async with self._call("fetch_tickers"):
            return await self.inner.fetch_tickers(symbols)

    async def create_order(
        self,
        symbol: str,
        side: str,
        type: str,
        amount: Decimal,
        price: Decimal | None,
        client_order_id: str,
        stops: Stops | None = None,
        *,
        reduce_only: bool = False,
    ) -> OrderResult:
        # Its request budget waits no longer than its slot may: both end at the same deadline.
        priority = Priority.EXIT if reduce_only else Priority.ENTRY
        with calling(priority, within=self._order_slot_timeout):
            return await self._create_order(
                symbol, side, type, amount, price, client_order_id, stops, reduce_only
            )

    async def _create_order(
        self,
        symbol: str,
        side: str,
        type: str,
        amount: Decimal,
        price: Decimal | None,
        client_order_id: str,
        stops: Stops | None,
        reduce_only: bool,
    ) -> OrderResult:
        try:
            async with asyncio.timeout(self._order_slot_timeout):
                await self._bound.acquire()
        except TimeoutError:
            raise ExchangeBusy(
                f"no free slot toward this account within {self._order_slot_timeout} s: not sent"
            ) from None
        try:
            async with self._call("create_order", bounded=False):
                create = self.inner.create_order
                return await create(
                    symbol,
                    side,
                    type,
                    amount,
                    price,
                    client_order_id,
                    stops,
                    reduce_only=reduce_only,
                )
        finally:
            self._bound.release()

    async def set_leverage(self, symbol: str, leverage: Decimal) -> None:
        async with self._call("set_leverage"):
            await self.inner.set_leverage(symbol, leverage)

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[VenuePosition]:
        async with self._call("fetch_positions"):
            return await self.inner.fetch_positions(symbols)

    async def fetch_funding(self, symbol: str, since: datetime) -> list[FundingPayment]:
        async with self._call("fetch_funding"):
            return await self.inner.fetch_funding(symbol, since)

    async def fetch_closes(self, symbol: str, since: datetime) -> list[VenueClose]:
        async with self._call("fetch_closes"):
            return await self.inner.fetch_closes(symbol, since)

    async def hedge_mode(self) -> bool:
        async with self._call("hedge_mode"):
            return await self.inner.hedge_mode()

    async def close_position(
        self, symbol: str, position_ref: str, amount: Decimal, client_order_id: str
    ) -> OrderResult:
        async with self._call("close_position"):
            return await self.inner.close_position(symbol, position_ref, amount, client_order_id)

    async def amend_stops(
        self, symbol: str, position_ref: str, *, sl: Decimal | None, tp: Decimal | None
    ) -> OrderResult:
        async with self._call("amend_stops"):
            return await self.inner.amend_stops(symbol, position_ref, sl=sl, tp=tp)

    async def place_protection(
        self, symbol: str, side: str, amount: Decimal, legs: list[ProtectiveLeg], list_id: str
    ) -> list[OrderResult]:
        async with self._call("place_protection"):
            return await self.inner.place_protection(symbol, side, amount, legs, list_id)

    async def holds_alone(self, symbol: str, kind: OrderType) -> bool:
        return await self.inner.holds_alone(symbol, kind)  # markets, loaded once: no slot

    async def amend_protection(
        self, symbol: str, side: str, leg: ProtectiveLeg, order_id: str | None
    ) -> OrderResult:
        async with self._call("amend_protection"):
            return await self.inner.amend_protection(symbol, side, leg, order_id)

    async def watch_order_changes(self) -> list[str]:
        # A long-lived wait for pushed updates: no request budget, no call slot held.
        return await self.inner.watch_order_changes()

    async def watch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        return await self.inner.watch_tickers(symbols)  # a wait too: no slot held

    async def fetch_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        trigger: bool = False,
    ) -> OrderResult:
        async with self._call("fetch_order"):
            return await self.inner.fetch_order(
                symbol, order_id=order_id, client_order_id=client_order_id, trigger=trigger
            )

    async def cancel_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        trigger: bool = False,
    ) -> OrderResult:
        async with self._call("cancel_order"):
            return await self.inner.cancel_order(
                symbol, order_id=order_id, client_order_id=client_order_id, trigger=trigger
            )

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        async with self._call("fetch_open_orders"):
            return await self.inner.fetch_open_orders(symbol)

    async def close(self) -> None:
        await self.inner.close()
