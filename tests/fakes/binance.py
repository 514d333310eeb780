"""A fake Binance spot exchange: a real HTTP server on loopback that real ccxt can talk to.

Answers are shaped on Binance's own (ccxt's static test data: exchangeInfo symbol entries, order,
account and ticker responses), signed requests are verified (key header + HMAC-SHA256 of the
query/body), and the fake keeps its own book (balances, orders, fills). Misbehaviour switches
(rejects, 429/418, down, accept-then-hang, latency, one account's latency, partial fills) are
reachable from Python and over `/_fake/...` so a fake in another process can be driven too
(e.g. `POST /_fake/key_latency {"api_key": "...", "ms": 2000}`: that account answers slowly).

    async with FakeBinance() as fake:          # in-process, in the running loop
        adapter = CcxtAdapter("binance", {...}, api_base_url=fake.base_url)

    python -m tests.fakes.binance --port 8765   # standalone; prints the base URL
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.binance_limits import BinanceLimits, Refusal, orders_in, weight_of
from tests.fakes.binance_oco import STOP_TYPES, OrderLists, OrderListView
from tests.fakes.binance_userdata import UserDataStreams
from tests.fakes.binance_ws import MarketStreams
from tests.fakes.server import LoopbackServer

D = Decimal
EIGHT = D("0.00000001")


class BinanceError(Exception):
    """An error answer: `{"code": code, "msg": msg}` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


# Messages Binance sends for the codes the fake uses (ccxt maps some by message, some by code).
ERROR_MESSAGES = {
    -1003: "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API.",
    -1013: "Filter failure: LOT_SIZE",
    -1021: "Timestamp for this request is outside of the recvWindow.",
    -1022: "Signature for this request is not valid.",
    -1102: "Mandatory parameter was not sent, was empty/null, or malformed.",
    -1111: "Parameter 'quantity' has too much precision.",
    -1116: "Invalid orderType.",
    -1121: "Invalid symbol.",
    -2010: "Account has insufficient balance for requested action.",
    -2011: "Unknown order sent.",
    -2013: "Order does not exist.",
    -2014: "API-key format invalid.",
    -2015: "Invalid API-key, IP, or permissions for action.",
}


def fmt(value: Decimal) -> str:
    """Binance prints every quantity with 8 decimals."""
    return f"{value.quantize(EIGHT, rounding=ROUND_DOWN):f}"


def now_ms() -> int:
    return int(time.time() * 1000)


# --- exchangeInfo: real Binance symbol entries (ccxt's static markets fixture, 2024) -----------

# One `symbols[]` entry as Binance sends it (the long TRD_GRP_* permission list trimmed); the
# per-pair numbers are filled in from PAIRS below.
_SYMBOL_TEMPLATE = """{
 "symbol": "%(base)s%(quote)s", "status": "TRADING", "baseAsset": "%(base)s",
 "baseAssetPrecision": 8, "quoteAsset": "%(quote)s", "quotePrecision": 8,
 "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
 "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
 "icebergAllowed": true, "ocoAllowed": true, "quoteOrderQtyMarketAllowed": true,
 "allowTrailingStop": true, "cancelReplaceAllowed": true, "isSpotTradingAllowed": true,
 "isMarginTradingAllowed": true,
 "filters": [
  {"filterType": "PRICE_FILTER", "minPrice": "%(min_price)s", "maxPrice": "%(max_price)s",
   "tickSize": "%(tick)s"},
  {"filterType": "LOT_SIZE", "minQty": "%(min_qty)s", "maxQty": "%(max_qty)s",
   "stepSize": "%(step)s"},
  {"filterType": "ICEBERG_PARTS", "limit": 10},
  {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "%(market_max_qty)s",
   "stepSize": "0.00000000"},
  {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
   "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
  {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
   "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
  {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": true,
   "maxNotional": "9000000.00000000", "applyMaxToMarket": false, "avgPriceMins": 5},
  {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
  {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5}
 ],
 "permissions": ["SPOT", "MARGIN"], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
 "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]
}"""
# base quote | PRICE_FILTER minPrice maxPrice tickSize | LOT_SIZE minQty maxQty stepSize |
# MARKET_LOT_SIZE maxQty -- Binance's own numbers for these pairs, trailing zeros dropped.
PAIRS = """
BTC USDT  0.01 1000000 0.01      0.00001 9000 0.00001        128.52621715
ETH USDT  0.01 1000000 0.01      0.0001 9000 0.0001          3277.54882761
LTC USDT  0.01 100000 0.01       0.001 90000 0.001           20716.23115062
XRP USDT  0.0001 10000 0.0001    1 9222449 1                 6858819.29288702
BNB USDT  0.01 100000 0.01       0.001 900000 0.001          8367.8315034
"""
_PAIR_FIELDS = ["min_price", "max_price", "tick", "min_qty", "max_qty", "step", "market_max_qty"]


def _symbol_entry(line: str) -> dict[str, Any]:
    base, quote, *numbers = line.split()
    values = {k: fmt(D(v)) for k, v in zip(_PAIR_FIELDS, numbers, strict=True)}
    entry: dict[str, Any] = json.loads(_SYMBOL_TEMPLATE % {"base": base, "quote": quote, **values})
    return entry


SYMBOLS: dict[str, dict[str, Any]] = {
    e["symbol"]: e for e in map(_symbol_entry, PAIRS.strip().splitlines())
}
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]
DEFAULT_PRICES = {
    "BTCUSDT": D("50000"),
    "ETHUSDT": D("3000"),
    "LTCUSDT": D("90"),
    "XRPUSDT": D("0.5"),
    "BNBUSDT": D("600"),
}
DEFAULT_BALANCES = {"USDT": D("10000"), "BTC": D("1"), "ETH": D("10"), "LTC": D("0"), "XRP": D("0")}
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")


def _filter(symbol: str, kind: str) -> dict[str, Any] | None:
    for f in SYMBOLS[symbol]["filters"]:
        if f["filterType"] == kind:
            return dict(f)
    return None


def _lot_step(symbol: str) -> Decimal:
    lot = _filter(symbol, "LOT_SIZE")
    assert lot is not None
    return D(lot["stepSize"]).normalize()  # "1.00000000" -> 1: quantize() keeps no decimals


# --- the book -----------------------------------------------------------------------------------


@dataclass
class FakeOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: str  # BUY / SELL
    type: str  # MARKET / LIMIT / LIMIT_MAKER / STOP_LOSS(_LIMIT) / TAKE_PROFIT(_LIMIT)
    orig_qty: Decimal
    price: Decimal = field(default_factory=Decimal)  # Decimal() is 0
    time_in_force: str | None = None
    orig_quote_qty: Decimal = field(default_factory=Decimal)
    executed_qty: Decimal = field(default_factory=Decimal)
    cum_quote_qty: Decimal = field(default_factory=Decimal)
    status: str = "NEW"
    fills: list[dict[str, Any]] = field(default_factory=list)
    time: int = field(default_factory=now_ms)
    update_time: int = field(default_factory=now_ms)
    stop_price: Decimal = field(default_factory=Decimal)  # stop kinds (binance_oco)
    working: bool = True  # a stop is not working until its stopPrice is reached
    working_time: int = -1
    order_list_id: int = -1  # an OCO's leg: its list
    api_key: str | None = None  # whose request placed it (its user data stream's account)

    def __post_init__(self) -> None:
        if self.working:
            self.working_time = self.time

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_taker(self) -> bool:
        """Market orders and triggered market stops take; the fake's resting orders make."""
        return self.type in ("MARKET", "STOP_LOSS", "TAKE_PROFIT")

    def _common(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id,
            "price": fmt(self.price),
            "origQty": fmt(self.orig_qty),
            "executedQty": fmt(self.executed_qty),
            "origQuoteOrderQty": fmt(self.orig_quote_qty),
            "cummulativeQuoteQty": fmt(self.cum_quote_qty),
            "status": self.status,
            "timeInForce": self.time_in_force or "GTC",
            "type": self.type,
            "side": self.side,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def as_new_order_response(self, resp_type: str) -> dict[str, Any]:
        """POST /api/v3/order answer (newOrderRespType ACK / RESULT / FULL)."""
        base = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id,
            "transactTime": self.time,
        }
        if resp_type == "ACK":
            return base
        out = {**self._common(), **base, **self._conditional(), "workingTime": self.working_time}
        if resp_type == "FULL":
            out["fills"] = self.fills
        return out

    def _conditional(self) -> dict[str, Any]:
        # "Conditional fields in Order Responses": stopPrice only on the stop kinds.
        return {"stopPrice": fmt(self.stop_price)} if self.type in STOP_TYPES else {}

    def as_list_report(self) -> dict[str, Any]:
        """An `orderReports[]` entry of an order list answer."""
        out = {**self._common(), **self._conditional(), "transactTime": self.time}
        out["workingTime"] = self.working_time
        return out

    def as_query_response(self) -> dict[str, Any]:
        """GET /api/v3/order and openOrders entries."""
        return {
            **self._common(),
            "stopPrice": fmt(self.stop_price),
            "icebergQty": "0.00000000",
            "time": self.time,
            "updateTime": self.update_time,
            "isWorking": self.working,
            "workingTime": self.working_time,
        }

    def as_cancel_response(self) -> dict[str, Any]:
        # Binance names the cancel request's own id `clientOrderId`; the order's is `orig...`.
        out = {**self._common(), **self._conditional()}
        out["origClientOrderId"] = self.client_order_id
        out["clientOrderId"] = secrets.token_hex(11)
        out["transactTime"] = self.update_time
        return out


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]
    status: int = 200
    unexpected: bool = False
    api_key: str | None = None
    at: float = field(default_factory=time.time)
    client: str = "?"  # the address it came from (Binance counts weight per IP)


@dataclass
class _Rule:
    """A one-shot (or N-shot) misbehaviour applying to requests matching method/path."""

    count: int
    method: str | None = None
    path: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def take(self, method: str, path: str) -> bool:
        if self.count <= 0 or (self.method and self.method != method):
            return False
        if self.path and self.path != path:
            return False
        self.count -= 1
        return True


Handler = Callable[[dict[str, str]], Awaitable[Any]]


class FakeBinance:
    """The fake exchange. State is plain Python; every answer is computed from it."""

    def __init__(
        self,
        *,
        api_key: str = "fake-api-key",
        api_secret: str = "fake-api-secret",
        host: str = "127.0.0.1",
        port: int = 0,
        fee_rate: Decimal = D("0.001"),
        quiet: bool = True,
        limits: BinanceLimits | None = None,
    ) -> None:
        self.api_key, self.api_secret, self.host, self.port = api_key, api_secret, host, port
        # Binance's per-IP weight and per-key order limits (None: not enforced).
        self.limits = limits
        # More accounts' keys (key -> secret), each its own order count; one shared book.
        self.more_keys: dict[str, str] = {}
        self.fee_rate = fee_rate
        self._quiet = quiet
        self._http = LoopbackServer()
        self._release = asyncio.Event()  # set on stop/reset: frees handlers hanging on purpose
        self._timers: set[asyncio.Task[None]] = set()
        self.down: str | None = None  # None, "503", or "refuse" while the socket is closed
        self.app = Starlette(
            routes=[
                Route("/_fake/{action}", self._control, methods=["GET", "POST"]),
                Route("/{path:path}", self._dispatch, methods=["GET", "POST", "DELETE", "PUT"]),
            ]
        )
        self._routes: dict[tuple[str, str], tuple[bool, Handler]] = {
            ("GET", "/api/v3/ping"): (False, self._ping),
            ("GET", "/api/v3/time"): (False, self._time),
            ("GET", "/api/v3/exchangeInfo"): (False, self._exchange_info),
            ("GET", "/api/v3/ticker/price"): (False, self._ticker_price),
            ("GET", "/api/v3/ticker/24hr"): (False, self._ticker_24hr),
            ("GET", "/api/v3/account"): (True, self._account),
            ("POST", "/api/v3/order"): (True, self._new_order),
            ("GET", "/api/v3/order"): (True, self._query_order),
            ("DELETE", "/api/v3/order"): (True, self._cancel_order),
            ("GET", "/api/v3/openOrders"): (True, self._open_orders),
            ("GET", "/api/v3/myTrades"): (True, self._my_trades),
        }
        # Stop orders and OCO order lists (tests/fakes/binance_oco.py).
        self.oco = OrderLists(self)
        self._routes.update(self.oco.routes)
        # Market streams over websocket (tests/fakes/binance_ws.py): tickers as prices change.
        self.ws = MarketStreams(self.app, lambda: self.prices, fmt, path="/ws", spot=True)
        # Order updates on the WebSocket API (tests/fakes/binance_userdata.py).
        self.user_data = UserDataStreams(self)
        self.reset()

    # --- state & misbehaviour switches (Python API) --------------------------------------------

    def reset(self) -> None:
        """Back to a fresh account: default prices and balances, no orders, no misbehaviour
        (a "refuse" outage needs `await come_up()`: reopening the socket is async)."""
        self._release.set()
        self._release = asyncio.Event()
        self.prices: dict[str, Decimal] = dict(DEFAULT_PRICES)
        self.balances: dict[str, list[Decimal]] = {
            a: [v, D(0)] for a, v in DEFAULT_BALANCES.items()
        }
        self.orders: list[FakeOrder] = []
        self.requests: list[RecordedRequest] = []
        self.latency_ms = 0.0
        self.key_latency_ms: dict[str, float] = {}  # API key -> more delay on its requests
        self.in_flight = 0  # requests being answered now, and the most there ever were at once
        self.max_in_flight = 0
        if self.down == "503":
            self.down = None
        self._next_order_id = 1
        self._next_trade_id = 1
        self.oco.reset()
        self.ws.reset()
        self.user_data.reset()
        # Order types listed beyond the fixture's (see enable_order_types).
        self.more_order_types: tuple[str, ...] = ()
        # "Use BNB to pay for fees": a fill pays its fee in BNB, 25 % off, while BNB lasts.
        self.bnb_burn = False
        self._rejects: list[_Rule] = []
        self._throttles: list[_Rule] = []
        self._hangs: list[_Rule] = []
        self._partials: list[_Rule] = []

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def unexpected_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.unexpected]

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def set_price(self, symbol: str, price: Decimal | str) -> None:
        """Set the last price; stops it reaches trigger (an OCO's other leg expires), resting
        limit orders it crosses fill at their price."""
        symbol = symbol.replace("/", "")
        self.prices[symbol] = D(str(price))
        self.oco.trigger(symbol)
        for order in self.orders:
            if order.symbol == symbol and order.is_open and order.working and order.price:
                crossed = (order.side == "BUY" and self.prices[symbol] <= order.price) or (
                    order.side == "SELL" and self.prices[symbol] >= order.price
                )
                if crossed:
                    self._fill(order, order.orig_qty - order.executed_qty, order.price)

    def set_balance(self, asset: str, free: Decimal | str, locked: Decimal | str = "0") -> None:
        self.balances[asset] = [D(str(free)), D(str(locked))]

    def set_balances(self, balances: dict[str, Any]) -> None:
        """`{"USDT": "100", "BTC": {"free": "1", "locked": "0"}}`; unnamed assets keep theirs."""
        for asset, value in balances.items():
            if isinstance(value, dict):
                self.set_balance(asset, value.get("free", "0"), value.get("locked", "0"))
            else:
                self.set_balance(asset, value)

    def balance(self, asset: str) -> tuple[Decimal, Decimal]:
        free, locked = self.balances.get(asset, [D(0), D(0)])
        return free, locked

    def enable_order_types(self, *types: str) -> None:
        """List more order types in every symbol's `orderTypes` (exchangeInfo), so they are
        taken: e.g. STOP_LOSS and TAKE_PROFIT (market on trigger), which the 2024 entries
        (ccxt's static markets) do not list; ccxt refuses a type not listed before sending."""
        self.more_order_types = tuple(dict.fromkeys((*self.more_order_types, *types)))

    def order_types(self, symbol: str) -> list[str]:
        listed = SYMBOLS[symbol]["orderTypes"]
        return [*listed, *(t for t in self.more_order_types if t not in listed)]

    def order_lists(
        self, open_only: bool = False, symbol: str | None = None
    ) -> list[OrderListView]:
        """The OCO lists (oldest first), each with its legs, in Binance's terms."""
        return self.oco.views(open_only, symbol)

    def reject_next_orders(
        self, count: int = 1, code: int = -2010, msg: str | None = None, http_status: int = 400
    ) -> None:
        """The next `count` order creations are refused with Binance error `code` (not booked)."""
        data = {
            "code": code,
            "msg": msg or ERROR_MESSAGES.get(code, "Rejected."),
            "status": http_status,
        }
        self._rejects.append(_Rule(count, "POST", "/api/v3/order", data))

    def throttle(
        self,
        count: int = 1,
        status: int = 429,
        retry_after: float | None = 1,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `count` matching requests 429 (or 418: IP ban) with Retry-After."""
        self._throttles.append(_Rule(count, method, path, {"status": status, "retry": retry_after}))

    def hang_next(
        self,
        count: int = 1,
        seconds: float | None = None,
        method: str = "POST",
        path: str = "/api/v3/order",
    ) -> None:
        """Process the next matching request (an order is booked), then sit on the answer for
        `seconds` (None: until the fake stops) so the client times out not knowing the outcome."""
        self._hangs.append(_Rule(count, method, path, {"seconds": seconds}))

    def hang_next_orders(self, count: int = 1, seconds: float | None = None) -> None:
        self.hang_next(count, seconds)

    def partial_fill_next_orders(
        self, count: int = 1, fraction: Decimal | str = "0.5", final_status: str | None = "EXPIRED"
    ) -> None:
        """The next `count` marketable orders fill only `fraction` (rounded down to the step),
        then end `final_status` (EXPIRED like a market order out of liquidity, or CANCELED);
        None leaves a limit order resting PARTIALLY_FILLED."""
        data = {"fraction": D(str(fraction)), "final": final_status}
        self._partials.append(_Rule(count, "POST", "/api/v3/order", data))

    def set_latency(self, ms: float) -> None:
        """Delay every exchange answer (not /_fake) by `ms`."""
        self.latency_ms = ms

    def set_key_latency(self, api_key: str, ms: float) -> None:
        """Delay every request signed with (or carrying) `api_key` by `ms` more: one slow
        account among many on one venue (0 ends it). Public requests carry no key."""
        if ms:
            self.key_latency_ms[api_key] = ms
        else:
            self.key_latency_ms.pop(api_key, None)

    async def go_down(self, mode: str = "refuse", seconds: float | None = None) -> None:
        """ "refuse": close the listening socket (connection refused); "503": answer every
        exchange request 503. With `seconds`, come back up by itself afterwards."""
        if mode == "503":
            self.down = "503"
        elif mode == "refuse":
            self.down = "refuse"
            await self._stop_server()
        else:
            raise ValueError(f"unknown down mode {mode!r}")
        if seconds is not None:
            self._spawn(self._up_after(seconds))

    async def come_up(self) -> None:
        if self.down == "refuse":
            await self._start_server()
        self.down = None

    def find_order(
        self, order_id: int | str | None = None, client_order_id: str | None = None
    ) -> FakeOrder | None:
        """By id, or the latest order carrying that client id (Binance reuses closed ones)."""
        if order_id not in (None, ""):
            return next((o for o in self.orders if str(o.order_id) == str(order_id)), None)
        return next(
            (o for o in reversed(self.orders) if o.client_order_id == client_order_id), None
        )

    def fill_order(
        self,
        order_id: int | str | None = None,
        client_order_id: str | None = None,
        qty: Decimal | str | None = None,
        price: Decimal | str | None = None,
    ) -> FakeOrder:
        """Fill a resting order (all of it, or `qty` more) at its limit price (or `price`)."""
        order = self._must_find(order_id, client_order_id)
        amount = D(str(qty)) if qty is not None else order.orig_qty - order.executed_qty
        self._fill(order, amount, D(str(price)) if price is not None else order.price)
        return order

    def cancel_with_fill(
        self,
        order_id: int | str | None = None,
        client_order_id: str | None = None,
        filled: Decimal | str | None = None,
        status: str = "CANCELED",
    ) -> FakeOrder:
        """End an open order as CANCELED (or EXPIRED), first filling it up to `filled` in total:
        the exchange-side cancel/expiry after a partial fill that the service must parse."""
        order = self._must_find(order_id, client_order_id)
        if filled is not None and D(str(filled)) > order.executed_qty:
            price = order.price or self.prices[order.symbol]
            self._fill(order, D(str(filled)) - order.executed_qty, price)
        self._close(order, status)
        return order

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> FakeBinance:
        await self._start_server()
        return self

    async def stop(self) -> None:
        self._release.set()
        self._release = asyncio.Event()
        for timer in list(self._timers):
            timer.cancel()
        await self._stop_server()

    async def __aenter__(self) -> FakeBinance:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _start_server(self) -> None:
        self.port = await self._http.start(
            self.app,
            self.host,
            self.port,
            log_level="warning" if self._quiet else "info",
            timeout_graceful_shutdown=2,
        )

    async def _stop_server(self) -> None:
        await self._http.stop()

    async def _up_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.come_up()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    # --- HTTP plumbing ---------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        method, path = request.method, request.url.path
        query, body = request.url.query, (await request.body()).decode()
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        record = RecordedRequest(
            method,
            path,
            params,
            api_key=request.headers.get("x-mbx-apikey"),
            client=request.client.host if request.client else "?",
        )
        self.requests.append(record)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            delay = self.latency_ms + self.key_latency_ms.get(record.api_key or "", 0.0)
            if delay:
                await asyncio.sleep(delay / 1000)
            route = self._routes.get((method, path))
            refused = self._over_limit(request, record) if route is not None else None
            if refused is not None:
                response = self._throttled(refused.status, refused.retry_after, refused)
            else:
                response = await self._answer(request, route, record, query, body)
        finally:
            self.in_flight -= 1
        if self.limits is not None and route is not None:
            ip = request.client.host if request.client else "?"
            order = orders_in(method, path) > 0
            response.headers.update(self.limits.headers(ip, record.api_key, order))
        record.status = response.status_code
        return response

    async def _answer(
        self,
        request: Request,
        route: tuple[bool, Handler] | None,
        record: RecordedRequest,
        query: str,
        body: str,
    ) -> Response:
        if self.down == "503":
            return PlainTextResponse("Service Unavailable", status_code=503)
        for rule in self._throttles:
            if rule.take(record.method, record.path):
                return self._throttled(rule.data["status"], rule.data["retry"])
        if route is None:
            record.unexpected = True
            return PlainTextResponse("Not Found (the fake does not serve this path)", 404)
        signed, handler = route
        try:
            if signed:
                self._verify(request, record.params, query, body)
            placed = len(self.orders)
            result = await handler(record.params)
            for order in self.orders[placed:]:  # the handlers place orders without awaiting
                order.api_key = record.api_key
        except BinanceError as e:
            return JSONResponse({"code": e.code, "msg": e.msg}, status_code=e.status)
        for rule in self._hangs:
            if rule.take(record.method, record.path):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._release.wait(), rule.data["seconds"] or 3600)
        return JSONResponse(result)

    def _over_limit(self, request: Request, record: RecordedRequest) -> Refusal | None:
        if self.limits is None or self.down == "503":
            return None
        ip = request.client.host if request.client else "?"
        weight = weight_of(record.method, record.path, record.params)
        refused = self.limits.admit(ip, weight)
        count = orders_in(record.method, record.path)  # an OCO counts two orders
        if refused is None and count:
            refused = self.limits.admit_order(record.api_key or "", count)
        return refused

    def _throttled(
        self, status: int, retry_after: float | None, refusal: Refusal | None = None
    ) -> Response:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        if refusal is not None:
            body = {"code": refusal.code, "msg": refusal.msg}
            return JSONResponse(body, status_code=status, headers=headers)
        if status == 418:
            until = now_ms() + int((retry_after or 60) * 1000)
            msg = f"Way too much request weight used; IP banned until {until}."
            return JSONResponse({"code": -1003, "msg": msg}, status_code=418, headers=headers)
        return JSONResponse({"code": -1003, "msg": ERROR_MESSAGES[-1003]}, status, headers)

    def _verify(self, request: Request, params: dict[str, str], query: str, body: str) -> None:
        """Binance's SIGNED check: key header, then HMAC-SHA256(secret, totalParams) where
        totalParams = query string + body, the `signature` parameter itself left out."""
        key = request.headers.get("x-mbx-apikey")
        if not key:
            raise BinanceError(-2014, ERROR_MESSAGES[-2014], 401)
        secret = self.api_secret if hmac.compare_digest(key, self.api_key) else None
        secret = secret or self.more_keys.get(key)
        if secret is None:
            raise BinanceError(-2015, ERROR_MESSAGES[-2015], 401)

        def unsigned(part: str) -> str:
            return "&".join(p for p in part.split("&") if p and not p.startswith("signature="))

        payload = unsigned(query) + unsigned(body)
        expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(params.get("signature", ""), expected):
            raise BinanceError(-1022, ERROR_MESSAGES[-1022], 400)
        if "timestamp" not in params:
            raise BinanceError(-1102, "Mandatory parameter 'timestamp' was not sent.")
        lag = now_ms() - int(params["timestamp"])
        if lag < -1000 or lag > int(params.get("recvWindow", "5000")):
            raise BinanceError(-1021, ERROR_MESSAGES[-1021])

    # --- public endpoints ------------------------------------------------------------------------

    async def _ping(self, params: dict[str, str]) -> Any:
        return {}

    async def _time(self, params: dict[str, str]) -> Any:
        return {"serverTime": now_ms()}

    async def _exchange_info(self, params: dict[str, str]) -> Any:
        wanted = self._symbols_param(params)
        symbols = [{**SYMBOLS[s], "orderTypes": self.order_types(s)} for s in (wanted or SYMBOLS)]
        return {
            "timezone": "UTC",
            "serverTime": now_ms(),
            "rateLimits": RATE_LIMITS,
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def _symbols_param(self, params: dict[str, str]) -> list[str] | None:
        """`symbol=BTCUSDT` or `symbols=["BTCUSDT","ETHUSDT"]` (ccxt sends the JSON list)."""
        if "symbol" in params:
            wanted = [params["symbol"]]
        elif "symbols" in params:
            try:
                wanted = [str(s) for s in json.loads(params["symbols"])]
            except ValueError:
                raise BinanceError(
                    -1100, "Illegal characters found in parameter 'symbols'."
                ) from None
        else:
            return None
        for symbol in wanted:
            self._market(symbol)
        return wanted

    def _market(self, symbol: str | None) -> dict[str, Any]:
        if not symbol:
            raise BinanceError(-1102, "Mandatory parameter 'symbol' was not sent.")
        if symbol not in SYMBOLS:
            raise BinanceError(-1121, ERROR_MESSAGES[-1121])
        return SYMBOLS[symbol]

    async def _ticker_price(self, params: dict[str, str]) -> Any:
        return self._tickers(params, lambda s: {"symbol": s, "price": fmt(self.prices[s])})

    async def _ticker_24hr(self, params: dict[str, str]) -> Any:
        return self._tickers(params, self._ticker_24hr_entry)

    def _tickers(self, params: dict[str, str], one: Callable[[str], dict[str, Any]]) -> Any:
        wanted = self._symbols_param(params)
        if "symbol" in params:
            return one(params["symbol"])
        return [one(s) for s in (wanted or SYMBOLS)]

    def _ticker_24hr_entry(self, symbol: str) -> dict[str, Any]:
        price, now = fmt(self.prices[symbol]), now_ms()
        return {
            "symbol": symbol,
            "priceChange": "0.00000000",
            "priceChangePercent": "0.000",
            "weightedAvgPrice": price,
            "prevClosePrice": price,
            "lastPrice": price,
            "lastQty": "0.10000000",
            "bidPrice": price,
            "bidQty": "1.00000000",
            "askPrice": price,
            "askQty": "1.00000000",
            "openPrice": price,
            "highPrice": price,
            "lowPrice": price,
            "volume": "1000.00000000",
            "quoteVolume": "1000.00000000",
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": 1,
            "lastId": 1000,
            "count": 1000,
        }

    # --- signed endpoints ------------------------------------------------------------------------

    async def _account(self, params: dict[str, str]) -> Any:
        balances = [
            {"asset": a, "free": fmt(f), "locked": fmt(lk)} for a, (f, lk) in self.balances.items()
        ]
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": fmt(self.fee_rate),
                "taker": fmt(self.fee_rate),
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": now_ms(),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": 354937868,
        }

    async def _query_order(self, params: dict[str, str]) -> Any:
        return self._lookup(params, -2013).as_query_response()

    async def _my_trades(self, params: dict[str, str]) -> Any:
        """The account's trades on one symbol (all of one order with `orderId`), oldest first."""
        symbol = params.get("symbol")
        if not symbol:
            raise BinanceError(-1102, "Mandatory parameter 'symbol' was not sent.")
        self._market(symbol)
        wanted = params.get("orderId")
        return [
            {
                "symbol": o.symbol,
                "id": fill["tradeId"],
                "orderId": o.order_id,
                "orderListId": o.order_list_id,
                "price": fill["price"],
                "qty": fill["qty"],
                "quoteQty": fmt(Decimal(fill["price"]) * Decimal(fill["qty"])),
                "commission": fill["commission"],
                "commissionAsset": fill["commissionAsset"],
                "time": o.update_time,
                "isBuyer": o.side == "BUY",
                "isMaker": not o.is_taker,
                "isBestMatch": True,
            }
            for o in self.orders
            if o.symbol == symbol and (wanted is None or str(o.order_id) == wanted)
            for fill in o.fills
        ]

    async def _open_orders(self, params: dict[str, str]) -> Any:
        symbol = params.get("symbol")
        if symbol:
            self._market(symbol)
        return [
            o.as_query_response()
            for o in self.orders
            if o.is_open and (not symbol or o.symbol == symbol)
        ]

    async def _cancel_order(self, params: dict[str, str]) -> Any:
        # Binance answers -2011 "Unknown order sent." to a cancel of a missing or closed order.
        order = self._lookup(params, -2011)
        if not order.is_open:
            raise BinanceError(-2011, ERROR_MESSAGES[-2011])
        if order.order_list_id >= 0:  # one leg cancelled cancels the whole list
            self.oco.cancel(order)
        else:
            self._close(order, "CANCELED")
        return order.as_cancel_response()

    def _lookup(self, params: dict[str, str], missing_code: int) -> FakeOrder:
        self._market(params.get("symbol"))
        if not params.get("orderId") and not params.get("origClientOrderId"):
            raise BinanceError(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        order = self.find_order(params.get("orderId"), params.get("origClientOrderId"))
        if order is None or order.symbol != params["symbol"]:
            raise BinanceError(missing_code, ERROR_MESSAGES[missing_code])
        return order

    def _must_find(self, order_id: int | str | None, client_order_id: str | None) -> FakeOrder:
        order = self.find_order(order_id, client_order_id)
        if order is None:
            raise KeyError(f"no order {order_id or client_order_id!r}")
        return order

    async def _new_order(self, p: dict[str, str]) -> Any:
        info = self._market(p.get("symbol"))
        symbol, side, type_ = info["symbol"], p.get("side"), p.get("type")
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1102, "Mandatory parameter 'side' was not sent.")
        if type_ not in ("MARKET", "LIMIT", "LIMIT_MAKER", *STOP_TYPES):
            raise BinanceError(-1116, ERROR_MESSAGES[-1116])
        for rule in self._rejects:
            if rule.take("POST", "/api/v3/order"):
                raise BinanceError(rule.data["code"], rule.data["msg"], rule.data["status"])
        cid = p.get("newClientOrderId") or "web_" + secrets.token_hex(12)
        if any(o.client_order_id == cid and o.is_open for o in self.orders):
            # Unique only among OPEN orders: a closed order's client id may be sent again.
            raise BinanceError(-2010, "Duplicate order sent.")
        price_now = self.prices[symbol]
        if type_ in STOP_TYPES:  # rests, not working, until the price reaches its stopPrice
            order = self.oco.build_stop(p, info, cid, price_now)
            self._check_funds(order, price_now)
            self._book(order, None, None)
            return order.as_new_order_response(p.get("newOrderRespType", "FULL"))
        if type_ not in self.order_types(symbol):
            raise BinanceError(-1116, ERROR_MESSAGES[-1116])
        order = self._build_order(p, info, cid, price_now)
        marketable = order.type == "MARKET" or (
            order.price >= price_now if order.side == "BUY" else order.price <= price_now
        )
        if order.type == "LIMIT_MAKER" and marketable:
            raise BinanceError(-2010, "Order would immediately match and take.")
        self._check_funds(order, price_now)
        partial = None
        if marketable:  # only an order that trades now can be cut short
            partial = next((r for r in self._partials if r.take("POST", "/api/v3/order")), None)
        self._book(order, price_now if marketable else None, partial)
        return order.as_new_order_response(p.get("newOrderRespType", "FULL"))

    def _build_order(
        self, p: dict[str, str], info: dict[str, Any], cid: str, price_now: Decimal
    ) -> FakeOrder:
        symbol, type_ = info["symbol"], p["type"]
        step = _lot_step(symbol)
        quote_qty = self._decimal(p, "quoteOrderQty")
        qty = self._decimal(p, "quantity")
        order = FakeOrder(
            0, cid, symbol, p["side"], type_, D(0), time_in_force=p.get("timeInForce")
        )
        if type_ == "MARKET":
            if (qty is None) == (quote_qty is None):
                raise BinanceError(
                    -1102,
                    "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
                )
            if quote_qty is not None:
                # Binance turns the quote amount into a base quantity on the step, rounding down.
                order.orig_quote_qty = quote_qty
                qty = (quote_qty / price_now).quantize(step, rounding=ROUND_DOWN)
            notional_price = price_now
        else:
            price = self._decimal(p, "price")
            if qty is None or price is None:
                raise BinanceError(-1102, "Mandatory parameter 'quantity' or 'price' was not sent.")
            if type_ == "LIMIT" and not p.get("timeInForce"):
                raise BinanceError(-1102, "Mandatory parameter 'timeInForce' was not sent.")
            self._check_price_filter(symbol, price)
            order.price = notional_price = price
        assert qty is not None
        self._check_lot(symbol, qty, market=type_ == "MARKET", from_quote=quote_qty is not None)
        self._check_notional(symbol, quote_qty or qty * notional_price, type_ == "MARKET")
        order.orig_qty = qty
        return order

    @staticmethod
    def _decimal(p: dict[str, str], name: str) -> Decimal | None:
        raw = p.get(name)
        if raw in (None, ""):
            return None
        try:
            value = D(raw)
        except ArithmeticError:
            value = D("NaN")
        if not value.is_finite():
            raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'.")
        exponent = value.normalize().as_tuple().exponent
        if isinstance(exponent, int) and exponent < -8:
            raise BinanceError(-1111, f"Parameter '{name}' has too much precision.")
        if value <= 0:
            raise BinanceError(
                -1013, "Invalid quantity." if name == "quantity" else "Invalid price."
            )
        return value

    def _check_price_filter(self, symbol: str, price: Decimal) -> None:
        f = _filter(symbol, "PRICE_FILTER")
        assert f is not None
        low, high, tick = D(f["minPrice"]), D(f["maxPrice"]), D(f["tickSize"])
        if price < low or price > high or (price - low) % tick != 0:
            raise BinanceError(-1013, "Filter failure: PRICE_FILTER")

    def _check_lot(self, symbol: str, qty: Decimal, *, market: bool, from_quote: bool) -> None:
        for kind in ("LOT_SIZE", "MARKET_LOT_SIZE") if market else ("LOT_SIZE",):
            f = _filter(symbol, kind)
            assert f is not None
            low, high, step = D(f["minQty"]), D(f["maxQty"]), D(f["stepSize"])
            off_step = step > 0 and (qty - low) % step != 0
            if qty < low or qty > high or off_step or (from_quote and qty <= 0):
                raise BinanceError(-1013, f"Filter failure: {kind}")

    def _check_notional(self, symbol: str, notional: Decimal, market: bool) -> None:
        # NOTIONAL replaced MIN_NOTIONAL in 2023; either may be listed, with its own flag name.
        for kind, applies in (("NOTIONAL", "applyMinToMarket"), ("MIN_NOTIONAL", "applyToMarket")):
            f = _filter(symbol, kind)
            if f is None or (market and not f.get(applies, True)):
                continue
            if notional < D(f["minNotional"]):
                raise BinanceError(-1013, f"Filter failure: {kind}")

    def _assets(self, symbol: str) -> tuple[str, str]:
        return SYMBOLS[symbol]["baseAsset"], SYMBOLS[symbol]["quoteAsset"]

    def _check_funds(self, order: FakeOrder, price_now: Decimal) -> None:
        base, quote = self._assets(order.symbol)
        if order.side == "BUY":
            # A limit buy reserves quantity x limit price; a market buy needs what it will pay.
            need, asset = order.orig_qty * (order.price or order.stop_price or price_now), quote
        else:
            need, asset = order.orig_qty, base
        if self.balance(asset)[0] < need:
            raise BinanceError(-2010, ERROR_MESSAGES[-2010])

    def _book(self, order: FakeOrder, price_now: Decimal | None, partial: _Rule | None) -> None:
        """Give the order an id and keep it; if marketable (`price_now` set) trade it now, at
        the current price or better for a limit (taker fill)."""
        order.order_id = self._next_order_id
        self._next_order_id += 1
        self.orders.append(order)
        if order.type != "MARKET":
            self._lock(order, order.orig_qty)
        if price_now is None:
            return
        price = price_now
        if order.type != "MARKET":
            price = (
                min(order.price, price_now) if order.side == "BUY" else max(order.price, price_now)
            )
        qty = order.orig_qty
        if partial is not None:
            step = _lot_step(order.symbol)
            qty = (qty * partial.data["fraction"]).quantize(step, rounding=ROUND_DOWN)
        self._fill(order, qty, price)
        if partial is not None and (order.type == "MARKET" or partial.data["final"]):
            self._close(order, partial.data["final"] or "EXPIRED")

    def _lock(self, order: FakeOrder, qty: Decimal, sign: int = 1) -> None:
        base, quote = self._assets(order.symbol)
        reserve_at = order.price or order.stop_price  # a market stop buy reserves at its stop
        asset, amount = (quote, qty * reserve_at) if order.side == "BUY" else (base, qty)
        if order.order_list_id >= 0:  # an OCO's legs share one reservation, made by the list
            amount = self.oco.held(order, qty)
        free, locked = self.balance(asset)
        self.balances[asset] = [free - sign * amount, locked + sign * amount]

    def _fill(self, order: FakeOrder, qty: Decimal, price: Decimal) -> None:
        """Trade `qty` at `price`: move balances (fee on what is received, as Binance charges
        without BNB), append a fill, update executed/cumulative quantities and status."""
        qty = min(qty, order.orig_qty - order.executed_qty)
        if qty <= 0:
            return
        self.oco.before_fill(order)  # an OCO's other leg expires before this one trades
        base, quote = self._assets(order.symbol)
        cost = (qty * price).quantize(EIGHT, rounding=ROUND_DOWN)
        resting = order.type != "MARKET"
        if resting:
            self._lock(order, qty, sign=-1)  # release the reservation for this part
        in_bnb = (cost * self.fee_rate * D("0.75") / self.prices["BNBUSDT"]).quantize(EIGHT)
        if self.bnb_burn and self.balance("BNB")[0] >= in_bnb > 0:
            commission, fee_asset = in_bnb, "BNB"
            self._move("BNB", -in_bnb)
            self._move(quote, -cost if order.side == "BUY" else cost)
            self._move(base, qty if order.side == "BUY" else -qty)
        elif order.side == "BUY":
            commission, fee_asset = (qty * self.fee_rate).quantize(EIGHT), base
            self._move(quote, -cost)
            self._move(base, qty - commission)
        else:
            commission, fee_asset = (cost * self.fee_rate).quantize(EIGHT), quote
            self._move(base, -qty)
            self._move(quote, cost - commission)
        order.fills.append(
            {
                "price": fmt(price),
                "qty": fmt(qty),
                "commission": fmt(commission),
                "commissionAsset": fee_asset,
                "tradeId": self._next_trade_id,
            }
        )
        self._next_trade_id += 1
        order.executed_qty += qty
        order.cum_quote_qty += cost
        order.status = "FILLED" if order.executed_qty >= order.orig_qty else "PARTIALLY_FILLED"
        order.update_time = now_ms()

    def _move(self, asset: str, amount: Decimal) -> None:
        free, locked = self.balance(asset)
        self.balances[asset] = [free + amount, locked]

    def _close(self, order: FakeOrder, status: str) -> None:
        if order.is_open and order.type != "MARKET":
            self._lock(order, order.orig_qty - order.executed_qty, sign=-1)
        order.status = status
        order.update_time = now_ms()

    # --- control endpoint: /_fake/<action> -----------------------------------------------------

    async def _control(self, request: Request) -> Response:
        action = request.path_params["action"]
        try:
            body = await request.json() if await request.body() else {}
            result = await self._control_action(action, dict(body))
        except (KeyError, TypeError, ValueError, ArithmeticError) as e:
            return JSONResponse({"error": f"{type(e).__name__}: {e}"}, status_code=400)
        return JSONResponse(result if result is not None else {"ok": True})

    async def _control_action(self, action: str, body: dict[str, Any]) -> Any:
        simple: dict[str, Callable[..., Any]] = {
            "reset": self.reset,
            "price": self.set_price,
            "balances": lambda **balances: self.set_balances(balances),
            "reject": self.reject_next_orders,
            "throttle": self.throttle,
            "hang": self.hang_next,
            "latency": self.set_latency,
            "key_latency": self.set_key_latency,
            "partial_fill": self.partial_fill_next_orders,
            # More accounts (key -> secret): a fan-out's connections each with its own API key.
            "keys": lambda **keys: self.more_keys.update({str(k): str(v) for k, v in keys.items()}),
            "order_types": lambda types: self.enable_order_types(*types),
        }
        if action in simple:
            return simple[action](**body)
        if action in ("fill", "cancel_with_fill"):
            order = (self.fill_order if action == "fill" else self.cancel_with_fill)(**body)
            return order.as_query_response()
        if action == "down":
            mode, seconds = body.get("mode", "refuse"), body.get("seconds")
            if mode != "refuse":
                await self.go_down(mode, seconds)
            elif seconds is None:
                raise ValueError("refuse needs seconds: nothing could bring it back up")
            else:
                # Detached, not a Starlette background task: closing the server from inside one
                # of its own requests would wait on (then cancel) itself in graceful shutdown.
                self._spawn(self.go_down(mode, seconds))
            return None
        if action == "up":
            await self.come_up()
            return None
        if action in ("state", "orders", "requests", "unexpected"):
            # `{"since": n}`: only the requests from the n-th on (a long run's new ones).
            return self._snapshot(action, int(body.get("since", 0)))
        if action == "order_lists":
            views = self.order_lists(bool(body.get("open_only")), body.get("symbol"))
            return json.loads(json.dumps([asdict(v) for v in views], default=str))
        raise KeyError(f"unknown control action {action!r}")

    def _snapshot(self, what: str, since: int = 0) -> Any:
        if what == "orders":
            return [o.as_query_response() for o in self.orders]
        if what in ("requests", "unexpected"):
            picked = self.unexpected_requests if what == "unexpected" else self.requests[since:]
            return [
                {
                    "method": r.method,
                    "path": r.path,
                    "params": r.params,
                    "status": r.status,
                    "api_key": r.api_key,  # None: a public request
                    "at": r.at,
                }
                for r in picked
            ]
        return {
            "prices": {s: fmt(p) for s, p in self.prices.items()},
            "balances": {
                a: {"free": fmt(f), "locked": fmt(lk)} for a, (f, lk) in self.balances.items()
            },
            "orders": self._snapshot("orders"),
            "down": self.down,
            "unexpected": len(self.unexpected_requests),
            # Requests refused for Binance's limits, by status (429, 418): none when enforced
            # limits were kept.
            "refused": dict(self.limits.refused) if self.limits is not None else {},
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Binance spot exchange")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="fake-api-key")
    parser.add_argument("--api-secret", default="fake-api-secret")
    parser.add_argument(
        "--binance-limits",
        action="store_true",
        help="enforce Binance's published request limits (6,000 weight per minute per IP, "
        "100 orders per 10 s per key): 429, then 418",
    )
    args = parser.parse_args(argv)

    async def run() -> None:
        fake = FakeBinance(
            api_key=args.api_key,
            api_secret=args.api_secret,
            host=args.host,
            port=args.port,
            quiet=True,
            limits=BinanceLimits() if args.binance_limits else None,
        )
        stop = asyncio.Event()
        # SIGTERM ends it cleanly (crash tests use SIGKILL when they want it dirty).
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await fake.start()
        print(fake.base_url, flush=True)  # the parent reads this line to find us
        try:
            await stop.wait()
        finally:
            await fake.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    sys.exit(0)


if __name__ == "__main__":
    main()
