"""The one async interface every adapter implements, and the errors it may raise.

Adapters translate their library's exceptions into `ExchangeError` subclasses at the boundary
(freqtrade's pattern): nothing above `exchanges/` imports ccxt or httpx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol


class ExchangeError(Exception):
    """Base of every adapter error. `code` is the stable error code recorded on execution logs."""

    code = "exchange_error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class TemporaryError(ExchangeError):
    """Network, timeout, rate limit, exchange down: the outcome of a write is unknown."""

    code = "exchange_unavailable"


class AuthFailed(ExchangeError):
    code = "auth_failed"


class ExchangeBusy(ExchangeError):
    """The order waited too long for a free slot toward this account and was NOT sent: safe to
    refuse outright (no reconciliation needed)."""

    code = "exchange_busy"


class InsufficientFunds(ExchangeError):
    code = "insufficient_funds"


class InvalidOrder(ExchangeError):
    code = "invalid_order"


class OrderNotFound(ExchangeError):
    code = "order_not_found"


class NoPrice(ExchangeError):
    """No price is known for the symbol (paper accounts without market data)."""

    code = "no_price"


@dataclass(frozen=True)
class Market:
    """Precision and limits of one market, as the exchange states them."""

    symbol: str
    base: str
    quote: str
    amount_step: Decimal | None = None
    price_tick: Decimal | None = None
    min_amount: Decimal | None = None
    min_cost: Decimal | None = None
    # Lot-based venues (MetaTrader): `amount` is in lots, one lot is `contract_size` units of
    # the base; `pip_size` is the price move FX quotes "pips" in; `max_amount` the largest lot.
    max_amount: Decimal | None = None
    contract_size: Decimal | None = None
    pip_size: Decimal | None = None


@dataclass(frozen=True)
class BalanceEntry:
    free: Decimal
    used: Decimal
    total: Decimal


@dataclass(frozen=True)
class Ticker:
    symbol: str
    price: Decimal
    timestamp: datetime | None = None


@dataclass
class OrderResult:
    """An order as the exchange reports it. `status` uses the execution-log vocabulary:
    open, partially_filled, filled, cancelled, rejected."""

    order_id: str
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    status: str
    amount: Decimal
    filled: Decimal = Decimal(0)
    average: Decimal | None = None
    price: Decimal | None = None
    fee: Decimal = Decimal(0)
    fee_currency: str | None = None
    timestamp: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class ExchangeAdapter(Protocol):
    """What the service needs from a trading venue. All amounts and prices are Decimal."""

    async def load_markets(self, reload: bool = False) -> dict[str, Market]: ...

    async def market(self, symbol: str) -> Market: ...

    async def fetch_balance(self) -> dict[str, BalanceEntry]: ...

    async def fetch_ticker(self, symbol: str) -> Ticker: ...

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]: ...

    async def create_order(
        self,
        symbol: str,
        side: str,
        type: str,
        amount: Decimal,
        price: Decimal | None,
        client_order_id: str,
    ) -> OrderResult: ...

    async def fetch_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderResult: ...

    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderResult: ...

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderResult]: ...

    async def close(self) -> None: ...
