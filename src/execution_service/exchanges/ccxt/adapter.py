"""`CcxtAdapter`: one ccxt client for one account (markets, reads, writes)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import ccxt.async_support as ccxt

from execution_service.enums import Direction, OrderStatus, OrderType
from execution_service.exchanges.base import (
    BalanceEntry,
    ExchangeError,
    FundingPayment,
    InvalidOrder,
    Market,
    NoPrice,
    NotSupported,
    OrderResult,
    Stops,
    TemporaryError,
    Ticker,
    Valuation,
    VenuePosition,
)
from execution_service.exchanges.cache import Expiring, SharedMarkets, TickerBook
from execution_service.exchanges.capabilities import VenueCapabilities
from execution_service.exchanges.ccxt.capabilities import capabilities_of
from execution_service.exchanges.ccxt.client import build_client, is_binance
from execution_service.exchanges.ccxt.errors import translate
from execution_service.exchanges.ccxt.parsing import (
    booking,
    cost_of,
    first_fee,
    info_of,
    to_balances,
    to_market,
    to_order,
    to_ticker,
    trade_fees,
)
from execution_service.exchanges.retry import retry_read
from execution_service.exchanges.values import plain, to_decimal

T = TypeVar("T")
log = logging.getLogger(__name__)


class CcxtAdapter:
    """One ccxt client for one account. Create it once per connection and `close()` it."""

    def __init__(
        self,
        exchange_id: str,
        credentials: dict[str, str],
        *,
        sandbox: bool = False,
        api_base_url: str | None = None,
        market_type: str = "spot",
        timeout_ms: int = 10000,
        markets_ttl_seconds: float = 3600,
        read_retries: int = 3,
        retry_base_delay: float = 0.2,
        enable_rate_limit: bool = True,
        balance_ttl: float = 0,
        tickers: TickerBook | None = None,
        shared_markets: SharedMarkets | None = None,
    ) -> None:
        if exchange_id not in ccxt.exchanges:
            raise ExchangeError(f"unknown ccxt exchange id {exchange_id!r}")
        self.exchange_id = exchange_id
        self.market_type = market_type
        self._read_retries = read_retries
        self._retry_base_delay = retry_base_delay
        self._markets_ttl = markets_ttl_seconds
        self._markets: dict[str, Market] = {}
        self._markets_loaded_at: float | None = None
        # Other clients of the same venue (exchange, URL, sandbox, market type) share these.
        self._shared = shared_markets
        self._tickers = tickers or TickerBook(0)
        self._balances: Expiring[dict[str, BalanceEntry]] = Expiring(balance_ttl)
        # Never echo these in error messages (ccxt's text can carry request URLs and bodies).
        self._secrets = [v for v in credentials.values() if v and len(v) >= 4]
        self._ex: Any = build_client(
            exchange_id,
            credentials,
            self._secrets,
            sandbox=sandbox,
            api_base_url=api_base_url,
            market_type=market_type,
            timeout_ms=timeout_ms,
            enable_rate_limit=enable_rate_limit,
        )
        self._capabilities = capabilities_of(exchange_id, self._ex.has, market_type)
        # Binance takes the client id we gave as `origClientOrderId` on lookups and cancels.
        self._cid_param = "origClientOrderId" if is_binance(exchange_id) else "clientOrderId"

    @property
    def capabilities(self) -> VenueCapabilities:
        return self._capabilities

    # --- markets -------------------------------------------------------------------------------

    async def load_markets(self, reload: bool = False) -> dict[str, Market]:
        fresh = self._markets_loaded_at is not None and (
            time.monotonic() - self._markets_loaded_at < self._markets_ttl
        )
        if fresh and not reload:
            return self._markets
        if self._shared is None:
            return await self._load_markets(reload)
        async with self._shared.lock:  # one client loads them, the others of the venue copy
            shared = self._shared
            fresh = shared.loaded_at is not None and (
                time.monotonic() - shared.loaded_at < self._markets_ttl
            )
            if not fresh or reload:
                await self._load_markets(reload)
                shared.source, shared.markets = self._ex, self._markets
                shared.loaded_at = self._markets_loaded_at
            elif shared.source is not self._ex:
                self._ex.set_markets_from_exchange(shared.source)
                self._markets, self._markets_loaded_at = shared.markets, shared.loaded_at
            return self._markets

    async def _load_markets(self, reload: bool) -> dict[str, Market]:
        refresh = reload or self._markets_loaded_at is not None
        try:
            raw = await self._read(lambda: self._ex.load_markets(refresh))
        except TemporaryError:
            if reload or not self._markets:
                raise
            return self._markets  # a routine refresh failed: an hour-old copy still serves
        mode = self._ex.precisionMode
        self._markets = {symbol: to_market(m, mode) for symbol, m in raw.items()}
        self._markets_loaded_at = time.monotonic()
        return self._markets

    async def market(self, symbol: str) -> Market:
        markets = await self.load_markets()
        if symbol not in markets:
            raise InvalidOrder(f"unknown symbol {symbol!r} on {self.exchange_id}")
        return markets[symbol]

    # --- reads ---------------------------------------------------------------------------------

    async def fetch_balance(self) -> dict[str, BalanceEntry]:
        """The account's balances, at most `balance_ttl` seconds old, with our own fills since
        then booked in."""
        return await self._balances.get(self._fetch_balance)

    def forget_balance(self) -> None:
        self._balances.forget()

    async def _fetch_balance(self) -> dict[str, BalanceEntry]:
        return to_balances(await self._read(lambda: self._ex.fetch_balance()))

    async def valuation(self, symbol: str) -> Valuation:
        return Valuation((await self.market(symbol)).quote)

    async def fetch_ticker(self, symbol: str) -> Ticker:
        """The last price, at most the ticker book's TTL old: for sizing market orders only (the
        monitor's SL/TP decisions read the prices the prices worker stores)."""
        cached = self._tickers.get(symbol)
        if cached is not None:
            return cached
        await self.load_markets()
        raw = await self._read(lambda: self._ex.fetch_ticker(symbol))
        ticker = to_ticker(raw, symbol)
        if ticker is None:
            raise NoPrice(f"{self.exchange_id} has no price for {symbol}")
        self._tickers.put({symbol: ticker})
        return ticker

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        if not symbols:
            return {}
        await self.load_markets()
        raw = await self._read(lambda: self._ex.fetch_tickers(symbols))
        tickers = {s: to_ticker(raw[s], s) for s in symbols if s in raw}
        found = {s: t for s, t in tickers.items() if t is not None}
        self._tickers.put(found)  # the prices worker's ticks keep the venue's book warm
        return found

    async def fetch_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderResult:
        await self.load_markets()
        ref, params = self._order_ref(order_id, client_order_id)
        raw = await self._read(lambda: self._ex.fetch_order(ref, symbol, params))
        order = to_order(raw, symbol, client_order_id=client_order_id)
        if order.filled > 0 or order.status == OrderStatus.cancelled:
            self._balances.forget()  # a resting order filled or released its funds
        if order.filled > 0 and order.fee_currency is None and order.order_id:
            await self._add_trade_fees(order, symbol)
        await self._price_fees(order, await self.market(symbol))
        return order

    async def _price_fees(self, order: OrderResult, market: Market) -> None:
        """A fee paid in a third asset (BNB) is worth its FEE/QUOTE price now, at the fill: the
        book counts it in the quote currency. Without a price it is booked at 0, and said."""
        for currency in order.fees:
            if currency in (market.base, market.quote) or currency in order.fee_prices:
                continue
            pair = f"{currency}/{market.quote}"
            try:
                order.fee_prices[currency] = (await self.fetch_ticker(pair)).price
            except ExchangeError as exc:
                log.warning("a fee in %s has no %s price: %s", currency, pair, exc.message)

    async def _add_trade_fees(self, order: OrderResult, symbol: str) -> None:
        """An order's status (Binance `GET /api/v3/order`) carries no fills, so no fee: a fill
        found by reconciliation takes its fee from the order's trades (`GET myTrades`). Without
        them the fee stays unknown (0) rather than failing the reconciliation."""
        if not self._ex.has.get("fetchOrderTrades"):
            return
        try:
            trades = await self._read(lambda: self._ex.fetch_order_trades(order.order_id, symbol))
        except ExchangeError as exc:
            log.warning("order %s: its trades could not be read: %s", order.order_id, exc.message)
            return
        order.fees = trade_fees(trades)
        order.fee, order.fee_currency = first_fee(order.fees)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        await self.load_markets()
        raw = await self._read(lambda: self._ex.fetch_open_orders(symbol))
        return [to_order(o, symbol or "") for o in raw]

    # --- writes (never retried) ---------------------------------------------------------------

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
        if stops is not None:
            raise NotSupported(f"{self.exchange_id}: stops do not travel with the entry here")
        if side not in set(Direction) or type not in set(OrderType):
            raise InvalidOrder(f"unsupported order {side!r} {type!r}")
        if not amount.is_finite() or amount <= 0:
            raise InvalidOrder(f"order amount must be positive, got {amount}")
        market = await self.market(symbol)  # loads/refreshes markets; unknown -> InvalidOrder
        # Round here, as strings, so what reaches the exchange is exactly what we report.
        qty = self._sync(lambda: self._ex.amount_to_precision(symbol, plain(amount)))
        limit_price = None
        if type == OrderType.limit:
            if price is None or not price.is_finite() or price <= 0:
                raise InvalidOrder("a limit order needs a positive price")
            limit_price = self._sync(lambda: self._ex.price_to_precision(symbol, plain(price)))
        # A market order is sent without a price on purpose: given one, ccxt turns a Binance
        # market order into a quoteOrderQty (amount x price) order instead of this quantity.
        params = {"clientOrderId": client_order_id}
        self._balances.hold()
        fill = None  # refused (the copy may have been wrong), unknown or cancelled: drop it
        try:
            raw = await self._call(
                lambda: self._ex.create_order(symbol, type, side, qty, limit_price, params),
                unknown_outcome=True,
            )
            order = to_order(
                raw,
                symbol,
                side=side,
                type=type,
                client_order_id=client_order_id,
                amount=to_decimal(qty),
            )
            fill = booking(market, order, cost_of(raw, info_of(raw)), self.market_type)
        finally:
            self._balances.release(fill)
        await self._price_fees(order, market)
        return order

    async def set_leverage(self, symbol: str, leverage: Decimal) -> None:
        return None  # derivatives are not handled yet on ccxt venues

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[VenuePosition]:
        return []  # derivatives are not handled yet on ccxt venues

    async def fetch_funding(self, symbol: str, since: datetime) -> list[FundingPayment]:
        return []  # derivatives are not handled yet on ccxt venues

    async def close_position(
        self, symbol: str, position_ref: str, amount: Decimal, client_order_id: str
    ) -> OrderResult:
        raise NotSupported(f"{self.exchange_id}: positions are closed by opposite orders")

    async def amend_stops(
        self, symbol: str, position_ref: str, *, sl: Decimal | None, tp: Decimal | None
    ) -> OrderResult:
        raise NotSupported(f"{self.exchange_id}: no stops are held with the position")

    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderResult:
        await self.load_markets()
        ref, params = self._order_ref(order_id, client_order_id)
        raw = await self._call(lambda: self._ex.cancel_order(ref, symbol, params))
        self._balances.forget()  # the order's locked funds are free again
        return to_order(raw, symbol, client_order_id=client_order_id)

    async def close(self) -> None:
        await self._ex.close()

    def _order_ref(
        self, order_id: str | None, client_order_id: str | None
    ) -> tuple[str, dict[str, str]]:
        if order_id:
            return str(order_id), {}
        if client_order_id:
            return "", {self._cid_param: client_order_id}
        raise InvalidOrder("order_id or client_order_id is required")

    # --- calling ccxt --------------------------------------------------------------------------

    async def _read(self, call: Callable[[], Awaitable[T]]) -> T:
        return await retry_read(
            lambda: self._call(call), retries=self._read_retries, base_delay=self._retry_base_delay
        )

    async def _call(self, call: Callable[[], Awaitable[T]], *, unknown_outcome: bool = False) -> T:
        try:
            return await call()
        except ccxt.BaseError as e:
            raise self._translate(e) from None
        except Exception as e:
            # Not a ccxt error (a parsing bug, an unwrapped transport error): after a write the
            # order may exist, so the caller must treat it as unknown and reconcile.
            error = TemporaryError if unknown_outcome else ExchangeError
            raise error(f"{type(e).__name__} from ccxt {self.exchange_id}") from None

    def _sync(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except ccxt.BaseError as e:
            raise self._translate(e) from None

    def _translate(self, e: Exception) -> ExchangeError:
        # ccxt keeps the headers of the last answer; on a 429/418 that is the one that failed.
        return translate(e, self._secrets, self._ex.last_response_headers)
