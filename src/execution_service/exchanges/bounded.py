"""A bound on concurrent calls toward one account: one connection's storm of orders queues on its
own semaphore and never takes every slot, so other connections are not starved."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from execution_service.exchanges.base import (
    BalanceEntry,
    ExchangeAdapter,
    Market,
    OrderResult,
    Ticker,
)


class BoundedAdapter:
    def __init__(self, inner: ExchangeAdapter, bound: asyncio.Semaphore) -> None:
        self.inner = inner
        self._bound = bound

    def __getattr__(self, name: str) -> Any:  # adapter-specific extras pass straight through
        return getattr(self.inner, name)

    async def load_markets(self, reload: bool = False) -> dict[str, Market]:
        async with self._bound:
            return await self.inner.load_markets(reload)

    async def market(self, symbol: str) -> Market:
        return await self.inner.market(symbol)  # cached after the first load_markets

    async def fetch_balance(self) -> dict[str, BalanceEntry]:
        async with self._bound:
            return await self.inner.fetch_balance()

    async def fetch_ticker(self, symbol: str) -> Ticker:
        async with self._bound:
            return await self.inner.fetch_ticker(symbol)

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        async with self._bound:
            return await self.inner.fetch_tickers(symbols)

    async def create_order(
        self,
        symbol: str,
        side: str,
        type: str,
        amount: Decimal,
        price: Decimal | None,
        client_order_id: str,
        **extra: Any,
    ) -> OrderResult:
        async with self._bound:
            create = self.inner.create_order
            return await create(symbol, side, type, amount, price, client_order_id, **extra)

    # Broker-position operations (MetaTrader): bounded like the rest.
    async def close_position(self, *args: Any, **kwargs: Any) -> OrderResult:
        async with self._bound:
            result: OrderResult = await self.inner.close_position(*args, **kwargs)  # type: ignore[attr-defined]
            return result

    async def modify_order(self, *args: Any, **kwargs: Any) -> OrderResult:
        async with self._bound:
            result: OrderResult = await self.inner.modify_order(*args, **kwargs)  # type: ignore[attr-defined]
            return result

    async def fetch_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderResult:
        async with self._bound:
            return await self.inner.fetch_order(
                symbol, order_id=order_id, client_order_id=client_order_id
            )

    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderResult:
        async with self._bound:
            return await self.inner.cancel_order(
                symbol, order_id=order_id, client_order_id=client_order_id
            )

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        async with self._bound:
            return await self.inner.fetch_open_orders(symbol)

    async def close(self) -> None:
        await self.inner.close()
