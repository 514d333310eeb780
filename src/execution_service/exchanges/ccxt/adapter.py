"""`CcxtAdapter`: one ccxt client for one account (markets, reads, writes)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt

from execution_service.enums import Direction, MarketType, OrderStatus, OrderType
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
    UnknownSymbol,
    Valuation,
    VenueClose,
    VenuePosition,
)
from execution_service.exchanges.budget import BudgetSpec
from execution_service.exchanges.cache import Expiring, SharedMarkets, TickerBook
from execution_service.exchanges.capabilities import VenueCapabilities
from execution_service.exchanges.ccxt.calling import CcxtCalls
from execution_service.exchanges.ccxt.capabilities import capabilities_of
from execution_service.exchanges.ccxt.client import build_client
from execution_service.exchanges.ccxt.derivatives import Derivatives
from execution_service.exchanges.ccxt.fees import add_trade_fees, price_fees
from execution_service.exchanges.ccxt.parsing import (
    booking,
    cost_of,
    info_of,
    of_type,
    to_balances,
    to_market,
    to_order,
    to_ticker,
)
from execution_service.exchanges.ccxt.protection import ProtectionCalls, Protective
from execution_service.exchanges.ccxt.streams import Streams
from execution_service.exchanges.ccxt.symbols import resolve
from execution_service.exchanges.ccxt.venues import order_params, order_ref, venue_of
from execution_service.exchanges.values import plain, to_decimal
from execution_service.outbound.egress import Egress
from execution_service.outbound.policy import OPEN, OutboundPolicy

log = logging.getLogger(__name__)


class CcxtAdapter(CcxtCalls, ProtectionCalls):
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
        balance_kept: float = 0,
        on_balance: Callable[[dict[str, BalanceEntry], float], None] | None = None,
        tickers: TickerBook | None = None,
        shared_markets: SharedMarkets | None = None,
        outbound: OutboundPolicy = OPEN,
        budget: BudgetSpec | None = None,
        egress: Egress | None = None,
    ) -> None:
        if exchange_id not in ccxt.exchanges:
            raise ExchangeError(f"unknown ccxt exchange id {exchange_id!r}")
        self.exchange_id = exchange_id
        self.market_type = MarketType(market_type).value  # a plain str, as ccxt reads it
        self._read_retries = read_retries
        self._retry_base_delay = retry_base_delay
        self._markets_ttl = markets_ttl_seconds
        self._markets: dict[str, Market] = {}
        self._markets_loaded_at: float | None = None
        # Other clients of the same venue (exchange, URL, sandbox, market type) share these.
        self._shared = shared_markets
        self._tickers = tickers or TickerBook(0)
        self._balances: Expiring[dict[str, BalanceEntry]]
        self._balances = Expiring(balance_ttl, kept_for=balance_kept, on_load=on_balance)
        # Never echo these in error messages (ccxt's text can carry request URLs and bodies).
        self._secrets = [v for v in credentials.values() if v and len(v) >= 4]
        self._secrets += [egress.proxy_url] if egress else []
        client: dict[str, Any] = dict(sandbox=sandbox, api_base_url=api_base_url, egress=egress)
        client |= dict(market_type=market_type, timeout_ms=timeout_ms, outbound=outbound)
        self._ex: Any = build_client(
            exchange_id, credentials, self._secrets, enable_rate_limit=enable_rate_limit,
            budget=budget, **client
        )  # fmt: skip
        self._capabilities = capabilities_of(exchange_id, self._ex.has, market_type)
        # Its pushed order updates and tickers: websocket clients, opened when first asked.
        self._streams = Streams(exchange_id, self._capabilities, credentials, self._secrets, client)
        self._venue = venue_of(exchange_id)
        self._derivatives = Derivatives(self, self._venue, self._read, self._call)
        self._protective = Protective(self, self._venue, self._call)

    @property
    def capabilities(self) -> VenueCapabilities:
        return self._capabilities

    @property
    def client(self) -> Any:
        return self._ex

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
        mode, kind = self._ex.precisionMode, self.market_type
        # The connection's market type only (where the venue could not be asked for it alone).
        self._markets = {s: to_market(m, mode) for s, m in raw.items() if of_type(m, kind)}
        self._markets_loaded_at = time.monotonic()
        return self._markets

    async def venue_symbol(self, symbol: str) -> str:
        """The venue's name for `symbol` in this connection's market type (`symbols.resolve`)."""
        return resolve(symbol, await self.load_markets(), self.market_type, self.exchange_id)

    async def market(self, symbol: str) -> Market:
        markets = await self.load_markets()
        return markets[resolve(symbol, markets, self.market_type, self.exchange_id)]

    # --- reads ---------------------------------------------------------------------------------

    async def fetch_balance(self) -> dict[str, BalanceEntry]:
        """The account's balances, at most `balance_ttl` seconds old (`balance_kept` when the
        venue's request budget is short), with our own fills since then booked in."""
        return await self._balances.get_or_kept(self._fetch_balance)

    async def read_balance(self) -> dict[str, BalanceEntry]:
        return await self._balances.refresh(self._fetch_balance)

    def keep_balance(self, balances: dict[str, BalanceEntry], age: float) -> None:
        """A copy read `age` seconds ago, by any process (`exchanges.kept`)."""
        self._balances.keep(balances, age)

    async def _fetch_balance(self) -> dict[str, BalanceEntry]:
        # ccxt loads markets itself before a balance: the venue's shared copy first, else every
        # account's first balance (its activation) costs another exchangeInfo (Binance: 20).
        await self.load_markets()
        return to_balances(await self._read(lambda: self._ex.fetch_balance()))

    async def valuation(self, symbol: str) -> Valuation:
        """In the quote; where an amount is in contracts, one is `contract_size` of the base."""
        market = await self.market(symbol)
        size = market.contract_size
        return Valuation(market.quote, size or Decimal(1), size)

    async def fetch_ticker(self, symbol: str) -> Ticker:
        """The last price, at most the ticker book's TTL old (sizing market orders)."""
        venue = await self.venue_symbol(symbol)
        cached = self._tickers.get(venue)
        if cached is not None:
            return cached
        # Concurrent misses (a fan-out sizing 1,000 accounts) share one request.
        raw = await self._tickers.once(
            [venue], self._read, lambda: self._ex.fetch_ticker(venue), kind="ticker"
        )
        ticker = to_ticker(raw, venue)
        if ticker is None:
            raise NoPrice(f"{self.exchange_id} has no price for {symbol}")
        self._tickers.put({venue: ticker})
        return ticker

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        """Keyed by the symbols asked for; one the venue has no market for is left out."""
        names = await self._venue_names(symbols)
        if not names:
            return {}
        venues = sorted(set(names.values()))
        raw = await self._tickers.once(venues, self._read, lambda: self._ex.fetch_tickers(venues))
        tickers = {v: to_ticker(raw[v], v) for v in venues if v in raw}
        found = {v: t for v, t in tickers.items() if t is not None}
        self._tickers.put(found)  # the prices worker's ticks keep the venue's book warm
        return {s: found[v] for s, v in names.items() if v in found}

    async def _venue_names(self, symbols: list[str]) -> dict[str, str]:
        names: dict[str, str] = {}
        for symbol in symbols:
            with contextlib.suppress(UnknownSymbol, NotSupported):
                names[symbol] = await self.venue_symbol(symbol)
        return names

    async def fetch_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        trigger: bool = False,
    ) -> OrderResult:
        venue = await self.venue_symbol(symbol)
        ref, params = order_ref(self._venue, order_id, client_order_id, lookup=True)
        params.update(self._protective.lookup_params(trigger))
        raw = await self._read(lambda: self._ex.fetch_order(ref, venue, params))
        fired = self._protective.fired_order_id(raw) if trigger else None
        if fired is not None:  # a trigger order that fired: the order it placed says the rest
            raw = await self._read(lambda: self._ex.fetch_order(fired, venue, {}))
        order = to_order(raw, symbol, client_order_id=client_order_id)
        order.client_order_id = client_order_id or order.client_order_id
        if order.filled > 0 or order.status == OrderStatus.cancelled:
            self._balances.forget()  # a resting order filled or released its funds
        await self._complete(order, symbol, venue)
        return order

    async def _complete(self, order: OrderResult, symbol: str, venue: str) -> None:
        """Our symbol on it; missing fees from its trades; a third currency's priced."""
        order.symbol = symbol
        if order.filled > 0 and order.fee_currency is None and order.order_id:
            await add_trade_fees(self._ex, self._venue, self._read, order, venue)
        await price_fees(order, self._markets[venue], self.fetch_ticker)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        venue = await self.venue_symbol(symbol) if symbol else None
        await self.load_markets()  # the shared copy (as for balances)
        raw = await self._read(lambda: self._ex.fetch_open_orders(venue))
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
        venue = await self.venue_symbol(symbol)  # loads/refreshes markets; unknown -> refused
        market = self._markets[venue]
        # Round here, as strings, so what reaches the exchange is exactly what we report.
        qty = self._sync(lambda: self._ex.amount_to_precision(venue, plain(amount)))
        limit_price = None
        if type == OrderType.limit:
            if price is None or not price.is_finite() or price <= 0:
                raise InvalidOrder("a limit order needs a positive price")
            limit_price = self._sync(lambda: self._ex.price_to_precision(venue, plain(price)))
        # A market order is sent without a price on purpose: given one, ccxt turns a Binance
        # market order into a quoteOrderQty (amount x price) order instead of this quantity.
        params = order_params(self._venue, self.market_type, client_order_id, reduce_only)
        self._balances.hold()
        fill = None  # refused (the copy may have been wrong), unknown or cancelled: drop it
        try:
            raw = await self._call(
                lambda: self._ex.create_order(venue, type, side, qty, limit_price, params),
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
            if self._capabilities.ids_only_answers or raw.get("status") is None:
                order = await self._read_back(order, symbol)
            fill = booking(market, order, cost_of(raw, info_of(raw)), self.market_type)
        finally:
            self._balances.release(fill)
        await self._complete(order, symbol, venue)
        return order

    async def _read_back(self, sent: OrderResult, symbol: str) -> OrderResult:
        """The venue answered with ids only: the order's state is read, never guessed. If that
        read fails, the order stays `pending` (known to the venue, state unknown) for the order
        tracker, which looks it up by our client order id."""
        try:
            return await self.fetch_order(
                symbol, order_id=sent.order_id or None, client_order_id=sent.client_order_id
            )
        except ExchangeError as exc:
            log.warning("order %s: sent, its state unread: %s", sent.client_order_id, exc.message)
            sent.status = OrderStatus.pending
            return sent

    async def cancel_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        trigger: bool = False,
    ) -> OrderResult:
        venue = await self.venue_symbol(symbol)
        ref, params = order_ref(self._venue, order_id, client_order_id)
        params.update(self._protective.cancel_params(trigger))
        raw = await self._call(lambda: self._ex.cancel_order(ref, venue, params))
        self._balances.forget()  # the order's locked funds are free again
        order = to_order(raw, symbol, client_order_id=client_order_id)
        if not (self._capabilities.ids_only_answers or raw.get("status") is None):
            return order
        try:  # ids only: what the order became (cancelled, or filled first) is read back
            ids = {"order_id": order.order_id or order_id, "client_order_id": client_order_id}
            return await self.fetch_order(symbol, **ids, trigger=trigger)
        except ExchangeError as exc:
            message = f"cancel accepted; the order's state unread: {exc.message}"
            raise TemporaryError(message) from None

    # --- derivatives (`derivatives.py`) -------------------------------------------------------

    async def set_leverage(self, symbol: str, leverage: Decimal) -> None:
        await self._derivatives.set_leverage(symbol, leverage)

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[VenuePosition]:
        return await self._derivatives.positions(symbols)

    async def fetch_funding(self, symbol: str, since: datetime) -> list[FundingPayment]:
        return await self._derivatives.funding(symbol, since)

    async def fetch_closes(self, symbol: str, since: datetime) -> list[VenueClose]:
        return await self._derivatives.closes(symbol, since)

    async def hedge_mode(self) -> bool:
        return await self._derivatives.hedge_mode()

    async def close_position(
        self, symbol: str, position_ref: str, amount: Decimal, client_order_id: str
    ) -> OrderResult:
        raise NotSupported(f"{self.exchange_id}: positions are closed by opposite orders")

    async def amend_stops(
        self, symbol: str, position_ref: str, *, sl: Decimal | None, tp: Decimal | None
    ) -> OrderResult:
        raise NotSupported(f"{self.exchange_id}: no stops are held with the position")

    async def watch_order_changes(self) -> list[str]:
        await self.load_markets()  # shared and metered: the stream's client takes this copy
        return await self._streams.order_changes(self._ex)

    async def watch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        # Keyed like fetch_tickers'; the stream's client shares this one's loaded markets.
        return await self._streams.tickers(await self._venue_names(symbols), self._ex)

    async def close(self) -> None:
        await self._streams.close()
        await self._ex.close()
