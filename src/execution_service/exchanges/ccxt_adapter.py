"""`ExchangeAdapter` over ccxt's async clients, for any ccxt exchange id.

ccxt stays inside this module: its exceptions are translated into base.py's hierarchy at the
boundary, and its floats are turned into Decimal via `str()` (or, better, read from the
exchange's raw strings in `info`) so no binary noise reaches the service's money columns.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt.async_support as ccxt
from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE

from execution_service.decimals import ratio
from execution_service.enums import Direction, MarketType, OrderStatus, OrderType
from execution_service.exchanges.base import (
    AuthFailed,
    BalanceEntry,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    Market,
    NoPrice,
    NotSupported,
    OrderNotFound,
    OrderResult,
    Stops,
    TemporaryError,
    Ticker,
    Valuation,
)
from execution_service.exchanges.cache import (
    Expiring,
    SharedMarkets,
    TickerBook,
    balances_after_fill,
)
from execution_service.exchanges.capabilities import Stream, VenueCapabilities
from execution_service.exchanges.retry import retry_read
from execution_service.exchanges.values import first, plain, retry_after_seconds, to_decimal

T = TypeVar("T")
log = logging.getLogger(__name__)

# ccxt unified order status -> execution-log vocabulary ("open" is refined by the filled amount).
_STATUS = {
    "closed": OrderStatus.filled,
    "canceled": OrderStatus.cancelled,
    "cancelled": OrderStatus.cancelled,
    "expired": OrderStatus.cancelled,
    "rejected": OrderStatus.rejected,
}
_URL = re.compile(r"https?://\S+")


def rewrite_urls(urls: Any, base_url: str) -> Any:
    """Point every URL in ccxt's nested `urls['api']` at `base_url`, keeping each path."""
    if isinstance(urls, dict):
        return {key: rewrite_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str) and "://" in urls:
        parts = urlsplit(urls)
        return base_url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    return urls


@functools.cache
def _streams(exchange_id: str) -> frozenset[Stream]:
    """The push feeds ccxt's websocket layer (`ccxt.pro`, inside the ccxt package) has for it."""
    import ccxt.pro as pro

    cls = getattr(pro, exchange_id, None)
    if cls is None:
        return frozenset()
    has = cls().has  # describing the class opens nothing
    wanted = {Stream.tickers: "watchTickers", Stream.orders: "watchOrders"}
    return frozenset(stream for stream, flag in wanted.items() if has.get(flag))


def capabilities_of(exchange_id: str, has: dict[str, Any], market_type: str) -> VenueCapabilities:
    """A ccxt venue's capabilities, from ccxt's own `has` flags for it."""
    derivatives = market_type != MarketType.spot
    types = {t for t in MarketType if has.get(t.value)}
    return VenueCapabilities(
        stop_orders=bool(has.get("createStopMarketOrder") or has.get("createStopLossOrder")),
        take_profit_orders=bool(has.get("createTakeProfitOrder")),
        trailing_stops=bool(has.get("createTrailingPercentOrder")),
        reduce_only=derivatives and bool(has.get("createReduceOnlyOrder")),
        market_types=frozenset(types),
        streams=_streams(exchange_id),
    )


@functools.cache
def venue_capabilities(exchange_id: str, market_type: MarketType) -> VenueCapabilities:
    """`capabilities_of` without a client of our own (one is described once per venue)."""
    if exchange_id not in ccxt.exchanges:
        return VenueCapabilities()
    return capabilities_of(exchange_id, getattr(ccxt, exchange_id)().has, market_type)


_AUTH_CODES = re.compile(r'"code"\s*:\s*-(2015|2014|1022)\b')


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
        cls = getattr(ccxt, exchange_id)
        is_binance = issubclass(cls, ccxt.binance)
        config: dict[str, Any] = {
            "apiKey": credentials.get("api_key"),
            "secret": credentials.get("api_secret"),
            "enableRateLimit": enable_rate_limit,
            "timeout": timeout_ms,
            "options": self._options(market_type, is_binance),
        }
        if credentials.get("passphrase"):
            config["password"] = credentials["passphrase"]
        self._ex: Any = cls(config)
        self._capabilities = capabilities_of(exchange_id, self._ex.has, market_type)
        # Binance takes the client id we gave as `origClientOrderId` on lookups and cancels.
        self._cid_param = "origClientOrderId" if is_binance else "clientOrderId"
        try:
            if sandbox:
                self._ex.set_sandbox_mode(True)
        except ccxt.BaseError as e:
            raise self._translate(e) from None
        if api_base_url:
            # `hostname` alone is not enough: most exchanges spell out full URLs per API group.
            self._ex.urls["api"] = rewrite_urls(self._ex.urls["api"], api_base_url)
            if api_base_url.startswith("http://"):
                # The 250 ms sleep on close() lets TLS sessions wind down; plain HTTP has none.
                self._ex.timeout_on_exit = 0

    @property
    def capabilities(self) -> VenueCapabilities:
        return self._capabilities

    @staticmethod
    def _options(market_type: str, is_binance: bool) -> dict[str, Any]:
        options: dict[str, Any] = {"defaultType": market_type}
        if is_binance:
            # load_markets() is then exactly one request (exchangeInfo of the one market type):
            # no currencies/margin-pairs endpoints, which also need keys and extra weight.
            options["fetchMarkets"] = {
                "types": ["linear" if market_type == MarketType.swap else "spot"]
            }
            options["fetchCurrencies"] = False
            options["fetchMargins"] = False
            # Otherwise fetch_open_orders() without a symbol raises a rate-limit "warning".
            options["warnOnFetchOpenOrdersWithoutSymbol"] = False
        return options

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
        self._markets = {symbol: self._to_market(m) for symbol, m in raw.items()}
        self._markets_loaded_at = time.monotonic()
        return self._markets

    async def market(self, symbol: str) -> Market:
        markets = await self.load_markets()
        if symbol not in markets:
            raise InvalidOrder(f"unknown symbol {symbol!r} on {self.exchange_id}")
        return markets[symbol]

    def _to_market(self, m: dict[str, Any]) -> Market:
        precision = m.get("precision") or {}
        limits = m.get("limits") or {}
        return Market(
            symbol=m["symbol"],
            base=m["base"],
            quote=m["quote"],
            amount_step=self._step(precision.get("amount")),
            price_tick=self._step(precision.get("price")),
            min_amount=to_decimal((limits.get("amount") or {}).get("min")),
            min_cost=to_decimal((limits.get("cost") or {}).get("min")),
        )

    def _step(self, precision: Any) -> Decimal | None:
        value = to_decimal(precision)
        if value is None:
            return None
        if self._ex.precisionMode == TICK_SIZE:  # binance and most others: already the step
            return value
        if self._ex.precisionMode == DECIMAL_PLACES:
            return Decimal(1).scaleb(-int(value))
        return None  # SIGNIFICANT_DIGITS: no fixed step exists

    # --- reads ---------------------------------------------------------------------------------

    async def fetch_balance(self) -> dict[str, BalanceEntry]:
        """The account's balances, at most `balance_ttl` seconds old, with our own fills since
        then booked in."""
        return await self._balances.get(self._fetch_balance)

    def forget_balance(self) -> None:
        self._balances.forget()

    async def _fetch_balance(self) -> dict[str, BalanceEntry]:
        raw = await self._read(lambda: self._ex.fetch_balance())
        info = raw.get("info")
        out: dict[str, BalanceEntry] = {}
        rows: list[tuple[Any, Decimal | None, Decimal | None, Decimal | None]]
        if isinstance(info, dict) and isinstance(info.get("balances"), list):
            # Binance spot: the exchange's exact strings rather than ccxt's floats.
            rows = [
                (b.get("asset"), to_decimal(b.get("free")), to_decimal(b.get("locked")), None)
                for b in info["balances"]
            ]
        else:
            skip = {"info", "free", "used", "total", "timestamp", "datetime", "debt"}
            rows = [
                (
                    cur,
                    to_decimal(e.get("free")),
                    to_decimal(e.get("used")),
                    to_decimal(e.get("total")),
                )
                for cur, e in raw.items()
                if cur not in skip and isinstance(e, dict)
            ]
        for currency, free, used, total in rows:
            free, used = free or Decimal(0), used or Decimal(0)
            total = total if total is not None else free + used
            if currency and (free or used or total):
                out[str(currency)] = BalanceEntry(free=free, used=used, total=total)
        return out

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
        ticker = self._to_ticker(raw, symbol)
        if ticker is None:
            raise NoPrice(f"{self.exchange_id} has no price for {symbol}")
        self._tickers.put({symbol: ticker})
        return ticker

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        if not symbols:
            return {}
        await self.load_markets()
        raw = await self._read(lambda: self._ex.fetch_tickers(symbols))
        tickers = {s: self._to_ticker(raw[s], s) for s in symbols if s in raw}
        found = {s: t for s, t in tickers.items() if t is not None}
        self._tickers.put(found)  # the prices worker's ticks keep the venue's book warm
        return found

    def _to_ticker(self, t: dict[str, Any], symbol: str) -> Ticker | None:
        info = _info(t)
        price = first(
            to_decimal(info.get("lastPrice")), to_decimal(t.get("last")), to_decimal(t.get("close"))
        )
        if price is None or price <= 0:
            return None
        return Ticker(symbol=t.get("symbol") or symbol, price=price, timestamp=_ts(t))

    async def fetch_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderResult:
        await self.load_markets()
        ref, params = self._order_ref(order_id, client_order_id)
        raw = await self._read(lambda: self._ex.fetch_order(ref, symbol, params))
        order = self._to_order(raw, symbol, client_order_id=client_order_id)
        if order.filled > 0 or order.status == OrderStatus.cancelled:
            self._balances.forget()  # a resting order filled or released its funds
        if order.filled > 0 and order.fee_currency is None and order.order_id:
            await self._add_trade_fees(order, symbol)
        return order

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
        fills = []
        for trade in trades:
            info = _info(trade)
            fee = trade.get("fee") or {}
            fills.append(
                {
                    "commission": info.get("commission", fee.get("cost")),
                    "commissionAsset": info.get("commissionAsset", fee.get("currency")),
                }
            )
        order.fee, order.fee_currency = _fee({}, {"fills": fills})

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        await self.load_markets()
        raw = await self._read(lambda: self._ex.fetch_open_orders(symbol))
        return [self._to_order(o, symbol or "") for o in raw]

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
        booking = None  # refused (the copy may have been wrong), unknown or cancelled: drop it
        try:
            raw = await self._call(
                lambda: self._ex.create_order(symbol, type, side, qty, limit_price, params),
                unknown_outcome=True,
            )
            order = self._to_order(
                raw,
                symbol,
                side=side,
                type=type,
                client_order_id=client_order_id,
                amount=to_decimal(qty),
            )
            booking = _booking(market, order, _cost(raw, _info(raw)), self.market_type)
        finally:
            self._balances.release(booking)
        return order

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
        return self._to_order(raw, symbol, client_order_id=client_order_id)

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

    # --- parsing ---------------------------------------------------------------------------------

    def _to_order(
        self,
        o: dict[str, Any],
        symbol: str,
        *,
        side: str | None = None,
        type: str | None = None,
        client_order_id: str | None = None,
        amount: Decimal | None = None,
    ) -> OrderResult:
        info = _info(o)
        # Exchange strings first (Binance: origQty/executedQty/cummulativeQuoteQty), ccxt after.
        qty = first(
            to_decimal(info.get("origQty")), to_decimal(o.get("amount")), amount
        ) or Decimal(0)
        filled = first(to_decimal(info.get("executedQty")), to_decimal(o.get("filled"))) or Decimal(
            0
        )
        cost = _cost(o, info)
        average = to_decimal(o.get("average"))
        if filled > 0 and cost is not None and cost > 0:
            average = ratio(cost, filled)
        price = first(to_decimal(info.get("price")), to_decimal(o.get("price")))
        fee, fee_currency = _fee(o, info)
        return OrderResult(
            order_id=str(o.get("id") or ""),
            # A Binance cancel answer's `clientOrderId` is the cancel request's own id.
            client_order_id=info.get("origClientOrderId")
            or o.get("clientOrderId")
            or client_order_id,
            symbol=o.get("symbol") or symbol,
            side=o.get("side") or side or "",
            type=o.get("type") or type or "",
            status=_status(o.get("status"), qty, filled),
            amount=qty,
            filled=filled,
            average=average,
            price=price if price else None,  # Binance reports market orders' price as 0
            fee=fee,
            fee_currency=fee_currency,
            timestamp=_ts(o),
            raw=info or {k: v for k, v in o.items() if k != "info"},
        )

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
        message = self._scrub(e)
        # Order matters: OrderNotFound subclasses InvalidOrder; PermissionDenied and
        # AccountSuspended subclass AuthenticationError; BadSymbol subclasses BadRequest.
        if isinstance(e, ccxt.OrderNotFound):
            return OrderNotFound(message)
        if isinstance(e, ccxt.InsufficientFunds):
            return InsufficientFunds(message)
        if isinstance(e, ccxt.AuthenticationError):
            return AuthFailed(message)
        if isinstance(e, ccxt.InvalidOrder | ccxt.BadRequest):
            return InvalidOrder(message)
        if isinstance(e, ccxt.DDoSProtection) and _AUTH_CODES.search(str(e)):
            # Binance answers a revoked or wrong key with -2015 (and -2014/-1022 for bad keys
            # and signatures); once a client has authenticated, ccxt files -2015 under
            # DDoSProtection (it also means a temporary IP ban). The exchange refused the request
            # before acting on it, so this is an auth failure, not an unknown outcome.
            return AuthFailed(message)
        if isinstance(e, ccxt.OperationFailed):
            # NetworkError (timeouts, 5xx, rate limits, DDoS bans) and "status unknown" answers
            # all live under OperationFailed, which in ccxt is NOT an ExchangeError subclass.
            return TemporaryError(message, retry_after=self._retry_after(e))
        return ExchangeError(message)

    def _retry_after(self, e: Exception) -> float | None:
        if not isinstance(e, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
            return None
        # ccxt keeps the headers of the last answer; on a 429/418 that is the one that failed.
        headers = self._ex.last_response_headers or {}
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        return retry_after_seconds(value)

    def _scrub(self, e: Exception) -> str:
        """Class name + the exchange's own message; no URLs, bodies or credentials."""
        text = str(e)
        start, end = text.find("{"), text.rfind("}")
        detail = None
        if 0 <= start < end:
            try:
                body = json.loads(text[start : end + 1])
            except ValueError:
                body = None
            if isinstance(body, dict):
                msg = body.get("msg") or body.get("message") or body.get("error")
                code = body.get("code")
                detail = f"{code} {msg}" if code is not None and msg else msg
        if not detail:
            detail = _URL.sub("<url>", text)
        for secret in self._secrets:
            detail = str(detail).replace(secret, "***")
        return f"{type(e).__name__}: {str(detail)[:200]}"


def _status(status: Any, amount: Decimal, filled: Decimal) -> OrderStatus:
    mapped = _STATUS.get(str(status)) if status else None
    if mapped:
        return mapped
    if status is None and amount > 0 and filled >= amount:
        return OrderStatus.filled  # some exchanges report no status; a complete fill says enough
    return OrderStatus.partially_filled if filled > 0 else OrderStatus.open


def _fee(o: dict[str, Any], info: dict[str, Any]) -> tuple[Decimal, str | None]:
    """Sum of the fees in the first fee currency: Binance `fills[].commission` strings when
    present, ccxt's fees otherwise. (A fee paid in another asset, e.g. BNB, stays in `raw`.)"""
    fills = info.get("fills")
    if isinstance(fills, list) and fills:
        items = [(f.get("commissionAsset"), to_decimal(f.get("commission"))) for f in fills]
    else:
        fees = o.get("fees") or ([o["fee"]] if o.get("fee") else [])
        items = [
            (f.get("currency"), to_decimal(f.get("cost"))) for f in fees if isinstance(f, dict)
        ]
    known = [(cur, cost) for cur, cost in items if cost is not None]
    if not known:
        return Decimal(0), None
    currency = known[0][0]
    return sum((c for cur, c in known if cur == currency), Decimal(0)), currency


def _booking(
    market: Market, order: OrderResult, cost: Decimal | None, market_type: str
) -> Callable[[dict[str, BalanceEntry]], dict[str, BalanceEntry] | None] | None:
    """What our own complete spot fill does to the account's balances; None for anything else (a
    resting or partial order, an unknown cost, a derivative, whose fill moves margin rather than
    assets): the next read asks the exchange."""
    if (
        market_type != MarketType.spot
        or order.status != OrderStatus.filled
        or order.filled <= 0
        or cost is None
    ):
        return None
    return lambda balances: balances_after_fill(
        balances,
        base=market.base,
        quote=market.quote,
        side=order.side,
        filled=order.filled,
        cost=cost,
        fee=order.fee,
        fee_currency=order.fee_currency,
    )


def _cost(o: dict[str, Any], info: dict[str, Any]) -> Decimal | None:
    """The quote spent or received so far: the exchange's string first, ccxt's float after."""
    return first(
        to_decimal(info.get("cummulativeQuoteQty")),
        to_decimal(info.get("cumQuote")),
        to_decimal(o.get("cost")),
    )


def _info(obj: dict[str, Any]) -> dict[str, Any]:
    """The exchange's raw answer ccxt keeps beside its parsed fields."""
    info = obj.get("info")
    return info if isinstance(info, dict) else {}


def _ts(obj: dict[str, Any]) -> datetime | None:
    ms = obj.get("timestamp")
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if isinstance(ms, int | float) else None
