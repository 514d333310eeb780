"""A fake mtapi.io-style MetaTrader 4 gateway: a real HTTP server on loopback that keeps its own
account, quotes and tickets, for MtapiAdapter to talk to over a socket.

    async with FakeMtapi(user="7001", password="pw", host="mt.broker.test", port=443) as fake:
        adapter = MtapiAdapter(fake.base_url, {"user": "7001", "password": "pw", ...})

`user/password/host/port` are the MetaTrader account's credentials the gateway checks on
`Connect`; the fake itself always listens on 127.0.0.1 on a free port (`base_url`).

Every call is a GET with query parameters; all but Connect carry the session token as `id`.
mtapi.io documents the calls and parameters; the JSON shapes below are our best plausible
reading of its MT4 gateway (camelCase fields, numbers as JSON doubles, times as ISO strings in
broker server time, without a zone), kept consistent across the fake:

    /Connect?user&password&host&port   -> the token, as text/plain (a UUID)
    /CheckConnect?id                   -> "OK"
    /AccountSummary?id                 -> {balance, credit, profit, equity, margin, freeMargin,
                                           marginLevel, leverage, currency, type, isInvestor}
    /Symbols?id                        -> ["EURUSD", "USDJPY", "XAUUSD"]
    /SymbolParams?id&symbol            -> {symbol, symbolInfo: {symbol, digits, point,
                                           contractSize, currencyBase, currencyProfit,
                                           currencyMargin}, groupParams: {minLot, maxLot, lotStep}}
    /GetQuote?id&symbol                -> {symbol, bid, ask, time}
    /OrderSend?id&symbol&operation&volume[&price&slippage&stoploss&takeprofit&comment&magic]
                                       -> Order (operation Buy, Sell, BuyLimit, SellLimit)
    /OrderModify?id&ticket&stoploss&takeprofit[&price]  -> Order (0 = no stop, as in MetaTrader)
    /OrderClose?id&ticket[&lots&price&slippage]         -> the closed Order (a pending one is
                                                           deleted)
    /OpenedOrders?id                   -> [Order]  (positions and pending orders)
    /OrderHistory?id[&from&to]         -> [Order]  (closed and deleted tickets, and the
                                           account's "Balance" deposit record)

    Order: {ticket, symbol, type, lots, openPrice, openTime, stopLoss, takeProfit, closePrice,
            closeTime, magicNumber, comment, profit, swap, commission}

Errors are HTTP 400 `{"message": ..., "code": ...}`: INVALID_TOKEN, INVALID_ACCOUNT,
CONNECT_FAILED, INVALID_SYMBOL, INVALID_PARAMETERS, MARKET_CLOSED, INVALID_VOLUME, INVALID_PRICE,
INVALID_STOPS, NOT_ENOUGH_MONEY, INVALID_TICKET. Unknown paths are recorded and answered 404.

MetaTrader 4 behaviour the fake keeps: a market Buy opens at the ask and closes at the bid (a
Sell the other way round); profit is in the account currency (a USDJPY profit in yen is divided
by USDJPY's bid); the broker holds SL/TP and closes a ticket itself when the quote crosses one
(its comment gains "[sl]"/"[tp]"); a pending limit becomes a Buy/Sell ticket when the quote
crosses it; a *partial* close moves the ticket to history with the closed lots and comment
"to #<new>", and opens ticket <new> with the rest (same open price, SL/TP, magic) and comment
"from #<old>"; comments are cut to 31 characters.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.server import LoopbackServer

D = Decimal
ZERO = D(0)
CENT = D("0.01")
HUNDRED = D(100)
COMMENT_MAX = 31
MARKET_TYPES = ("Buy", "Sell")
PENDING_TYPES = ("BuyLimit", "SellLimit")


@dataclass(frozen=True)
class SymbolSpec:
    name: str
    digits: int
    contract_size: Decimal
    base: str
    profit: str  # the quote currency: profits are computed in it
    margin: str
    min_lot: Decimal = CENT
    max_lot: Decimal = HUNDRED
    lot_step: Decimal = CENT

    @property
    def point(self) -> Decimal:
        return D(1).scaleb(-self.digits)


SYMBOLS = {
    s.name: s
    for s in (
        SymbolSpec("EURUSD", 5, D(100000), "EUR", "USD", "EUR"),
        SymbolSpec("USDJPY", 3, D(100000), "USD", "JPY", "USD"),
        SymbolSpec("XAUUSD", 2, D(100), "XAU", "USD", "XAU", max_lot=D(50)),
    )
}
DEFAULT_QUOTES = {
    "EURUSD": (D("1.10000"), D("1.10010")),
    "USDJPY": (D("150.000"), D("150.010")),
    "XAUUSD": (D("2000.00"), D("2000.30")),
}


class MtError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def num(value: Decimal) -> float | int:
    """A JSON number, as the gateway sends them (doubles); exact for the figures used here."""
    return int(value) if value == value.to_integral_value() else float(value)


def stamp(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%S") if moment else None


@dataclass
class FakeTicket:
    ticket: int
    symbol: str
    type: str  # Buy, Sell, BuyLimit, SellLimit, Balance
    lots: Decimal
    open_price: Decimal
    sl: Decimal = ZERO
    tp: Decimal = ZERO
    comment: str = ""
    magic: int = 0
    open_time: datetime = field(default_factory=datetime.now)
    close_price: Decimal = ZERO
    close_time: datetime | None = None
    profit: Decimal = ZERO

    @property
    def is_buy(self) -> bool:
        return self.type.startswith("Buy")

    def as_json(self) -> dict[str, Any]:
        return {
            "ticket": self.ticket,
            "symbol": self.symbol,
            "type": self.type,
            "lots": num(self.lots),
            "openPrice": num(self.open_price),
            "openTime": stamp(self.open_time),
            "stopLoss": num(self.sl),
            "takeProfit": num(self.tp),
            "closePrice": num(self.close_price),
            "closeTime": stamp(self.close_time),
            "magicNumber": self.magic,
            "comment": self.comment,
            "profit": num(self.profit),
            "swap": 0,
            "commission": 0,
        }


@dataclass
class RecordedRequest:
    path: str
    params: dict[str, str]
    status: int = 200
    unexpected: bool = False
    at: float = field(default_factory=time.time)


@dataclass
class _Rule:
    """A one-shot (or N-shot) misbehaviour for one path."""

    path: str
    count: int
    data: dict[str, Any] = field(default_factory=dict)

    def take(self, path: str) -> bool:
        if self.count <= 0 or self.path != path:
            return False
        self.count -= 1
        return True


Handler = Callable[[dict[str, str]], Any]


class FakeMtapi:
    """The fake gateway and the one MetaTrader account behind it (currency USD, leverage 100)."""

    def __init__(
        self,
        *,
        user: str = "7001234",
        password: str = "mt-Passw0rd!",
        host: str = "mt4.broker.test",
        port: int | str = 443,
        balance: Decimal | str = "10000",
        leverage: int = 100,
    ) -> None:
        self.user, self.password, self.host, self.port = user, password, host, str(port)
        self.initial_balance, self.leverage = D(str(balance)), leverage
        self.http_port = 0
        self._http = LoopbackServer()
        self._release = asyncio.Event()  # set on stop/reset: frees handlers hanging on purpose
        self.down: str | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self._dispatch, methods=["GET"])])
        self._routes: dict[str, tuple[bool, Handler]] = {
            "/Connect": (False, self._connect),
            "/CheckConnect": (True, lambda p: "OK"),
            "/AccountSummary": (True, self._account_summary),
            "/Symbols": (True, lambda p: list(SYMBOLS)),
            "/SymbolParams": (True, self._symbol_params),
            "/GetQuote": (True, self._get_quote),
            "/OrderSend": (True, self._order_send),
            "/OrderModify": (True, self._order_modify),
            "/OrderClose": (True, self._order_close),
            "/OpenedOrders": (True, lambda p: [t.as_json() for t in self.opened]),
            "/OrderHistory": (True, self._order_history),
        }
        self.reset()

    # --- state and misbehaviour switches ---------------------------------------------------------

    def reset(self) -> None:
        self._release.set()
        self._release = asyncio.Event()
        self.balance = self.initial_balance
        self.quotes: dict[str, tuple[Decimal, Decimal]] = dict(DEFAULT_QUOTES)
        self.opened: list[FakeTicket] = []
        self.history: list[FakeTicket] = []
        deposit_time = datetime.now() - timedelta(days=1)
        self.history.append(
            FakeTicket(1, "", "Balance", ZERO, ZERO, comment="Deposit", open_time=deposit_time,
                       close_time=deposit_time, profit=self.initial_balance)
        )  # fmt: skip
        self.tokens: set[str] = set()
        self.requests: list[RecordedRequest] = []
        self.closed_symbols: set[str] | None = set()  # None: every market is closed
        self._next_ticket = 50001001
        self._rejects: list[_Rule] = []
        self._hangs: list[_Rule] = []
        if self.down == "503":
            self.down = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def unexpected_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.unexpected]

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def ticket(self, ticket: int | str) -> FakeTicket | None:
        return next((t for t in self.opened + self.history if str(t.ticket) == str(ticket)), None)

    def set_quote(self, symbol: str, bid: Decimal | str, ask: Decimal | str) -> None:
        """New bid/ask: pending limits it crosses are filled and SL/TP it crosses are hit."""
        self.quotes[symbol] = (D(str(bid)), D(str(ask)))
        for t in [t for t in self.opened if t.symbol == symbol]:
            self._on_quote(t)

    def expire_tokens(self) -> None:
        """Every session token dies: the next call with one answers INVALID_TOKEN."""
        self.tokens.clear()

    def close_market(self, symbol: str | None = None) -> None:
        """Trading requests on `symbol` (every symbol if None) answer MARKET_CLOSED."""
        if symbol is None:
            self.closed_symbols = None
        elif self.closed_symbols is not None:
            self.closed_symbols.add(symbol)

    def open_market(self) -> None:
        self.closed_symbols = set()

    def reject_next(
        self,
        code: str,
        message: str | None = None,
        *,
        path: str = "/OrderSend",
        count: int = 1,
        after: bool = False,
    ) -> None:
        """Answer the next `count` calls to `path` with error `code`; with `after`, only once the
        call has been carried out (the gateway acted, then its answer says otherwise)."""
        data = {"code": code, "message": message or code.replace("_", " ").capitalize()}
        self._rejects.append(_Rule(path, count, {**data, "after": after}))

    def hang_next(self, path: str = "/OrderSend", seconds: float | None = None) -> None:
        """Carry out the next call to `path` (an OrderSend books its ticket), then sit on the
        answer for `seconds` (None: until the fake stops) so the client times out."""
        self._hangs.append(_Rule(path, 1, {"seconds": seconds}))

    async def go_down(self, mode: str = "refuse") -> None:
        """ "refuse": close the listening socket; "503": answer every call 503."""
        if mode == "503":
            self.down = "503"
        elif mode == "refuse":
            self.down = "refuse"
            await self._stop_server()
        else:
            raise ValueError(f"unknown down mode {mode!r}")

    async def come_up(self) -> None:
        if self.down == "refuse":
            await self._start_server()
        self.down = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> FakeMtapi:
        await self._start_server()
        return self

    async def stop(self) -> None:
        self._release.set()
        await self._stop_server()

    async def __aenter__(self) -> FakeMtapi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _start_server(self) -> None:
        self.http_port = await self._http.start(
            self.app, "127.0.0.1", self.http_port, log_level="warning"
        )

    async def _stop_server(self) -> None:
        await self._http.stop()

    # --- HTTP plumbing ---------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        record = RecordedRequest(path, dict(request.query_params))
        self.requests.append(record)
        response = await self._answer(record)
        record.status = response.status_code
        return response

    async def _answer(self, record: RecordedRequest) -> Response:
        if self.down == "503":
            return PlainTextResponse("Service Unavailable", status_code=503)
        route = self._routes.get(record.path)
        if route is None:
            record.unexpected = True
            return PlainTextResponse("Not Found (the fake does not serve this path)", 404)
        authed, handler = route
        rule = next((r for r in self._rejects if r.take(record.path)), None)
        try:
            if authed and record.params.get("id") not in self.tokens:
                raise MtError("INVALID_TOKEN", "Invalid token")
            if rule is not None and not rule.data["after"]:
                raise MtError(rule.data["code"], rule.data["message"])
            result = handler(record.params)
            if rule is not None:
                raise MtError(rule.data["code"], rule.data["message"])
        except MtError as e:
            return JSONResponse({"message": e.message, "code": e.code}, status_code=400)
        for hang in self._hangs:
            if hang.take(record.path):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._release.wait(), hang.data["seconds"] or 3600)
        if isinstance(result, str):
            return PlainTextResponse(result)
        return JSONResponse(result)

    # --- the gateway's calls ---------------------------------------------------------------------

    def _connect(self, p: dict[str, str]) -> str:
        if (p.get("host"), p.get("port", "443")) != (self.host, self.port):
            raise MtError("CONNECT_FAILED", f"Cannot connect to {p.get('host')}:{p.get('port')}")
        if (p.get("user"), p.get("password")) != (self.user, self.password):
            raise MtError("INVALID_ACCOUNT", "Invalid account")
        token = str(uuid.uuid4())
        self.tokens.add(token)
        return token

    def _account_summary(self, p: dict[str, str]) -> dict[str, Any]:
        floating = sum((self._floating(t) for t in self.opened), ZERO)
        margin = sum((self._margin(t) for t in self.opened), ZERO).quantize(CENT)
        equity = self.balance + floating
        return {
            "balance": num(self.balance),
            "credit": 0,
            "profit": num(floating),
            "equity": num(equity),
            "margin": num(margin),
            "freeMargin": num(equity - margin),
            "marginLevel": num((equity / margin * 100).quantize(CENT)) if margin else 0,
            "leverage": self.leverage,
            "currency": "USD",
            "type": "Demo",
            "isInvestor": False,
        }

    def _symbol_params(self, p: dict[str, str]) -> dict[str, Any]:
        s = self._spec(p.get("symbol"))
        info = {
            "symbol": s.name,
            "digits": s.digits,
            "point": num(s.point),
            "contractSize": num(s.contract_size),
            "currencyBase": s.base,
            "currencyProfit": s.profit,
            "currencyMargin": s.margin,
        }
        group = {"minLot": num(s.min_lot), "maxLot": num(s.max_lot), "lotStep": num(s.lot_step)}
        return {"symbol": s.name, "symbolInfo": info, "groupParams": group}

    def _get_quote(self, p: dict[str, str]) -> dict[str, Any]:
        s = self._spec(p.get("symbol"))
        bid, ask = self.quotes[s.name]
        return {"symbol": s.name, "bid": num(bid), "ask": num(ask), "time": stamp(datetime.now())}

    def _order_send(self, p: dict[str, str]) -> dict[str, Any]:
        s = self._spec(p.get("symbol"))
        operation = p.get("operation", "")
        if operation not in MARKET_TYPES + PENDING_TYPES:
            raise MtError("INVALID_PARAMETERS", f"Unsupported operation {operation!r}")
        self._check_open(s.name)
        lots = self._decimal(p, "volume")
        self._check_volume(s, lots)
        bid, ask = self.quotes[s.name]
        if operation in MARKET_TYPES:
            price = ask if operation == "Buy" else bid
        else:
            price = self._decimal(p, "price")
            if (operation == "BuyLimit" and price >= ask) or (
                operation == "SellLimit" and price <= bid
            ):
                raise MtError("INVALID_PRICE", "Invalid price")
        t = FakeTicket(
            self._new_ticket(), s.name, operation, lots, price,
            sl=self._decimal(p, "stoploss"), tp=self._decimal(p, "takeprofit"),
            comment=p.get("comment", "")[:COMMENT_MAX], magic=int(p.get("magic") or 0),
        )  # fmt: skip
        self._check_stops(t, t.sl, t.tp)
        if operation in MARKET_TYPES and self._margin(t) > self._free_margin():
            raise MtError("NOT_ENOUGH_MONEY", "Not enough money")
        self.opened.append(t)
        self._on_quote(t)
        return t.as_json()

    def _order_modify(self, p: dict[str, str]) -> dict[str, Any]:
        t = self._opened(p.get("ticket"))
        self._check_open(t.symbol)
        sl, tp = self._decimal(p, "stoploss"), self._decimal(p, "takeprofit")
        price = self._decimal(p, "price")
        if t.type in PENDING_TYPES and price > 0:
            t.open_price = price
        self._check_stops(t, sl, tp)
        t.sl, t.tp = sl, tp
        return t.as_json()

    def _order_close(self, p: dict[str, str]) -> dict[str, Any]:
        t = self._opened(p.get("ticket"))
        self._check_open(t.symbol)
        if t.type in PENDING_TYPES:  # deleting a pending order: it goes to history as it was
            self._to_history(t, ZERO)
            return t.as_json()
        lots = self._decimal(p, "lots") or t.lots
        s = SYMBOLS[t.symbol]
        rest = t.lots - lots
        if lots <= 0 or rest < 0 or (lots / s.lot_step) % 1 or (0 < rest < s.min_lot):
            raise MtError("INVALID_VOLUME", "Invalid volume")
        if rest > 0:  # MetaTrader 4: the rest lives on as a new ticket
            heir = FakeTicket(
                self._new_ticket(), t.symbol, t.type, rest, t.open_price, sl=t.sl, tp=t.tp,
                comment=f"from #{t.ticket}", magic=t.magic, open_time=t.open_time,
            )  # fmt: skip
            self.opened.append(heir)
            t.lots, t.comment = lots, f"to #{heir.ticket}"
        self._to_history(t, self._exit_price(t))
        return t.as_json()

    def _order_history(self, p: dict[str, str]) -> list[dict[str, Any]]:
        start = datetime.fromisoformat(p["from"]) if p.get("from") else datetime.min
        end = datetime.fromisoformat(p["to"]) if p.get("to") else datetime.max
        return [
            t.as_json()
            for t in self.history
            if t.close_time is not None and start <= t.close_time <= end
        ]

    # --- the book --------------------------------------------------------------------------------

    def _spec(self, symbol: str | None) -> SymbolSpec:
        if symbol not in SYMBOLS:
            raise MtError("INVALID_SYMBOL", f"Invalid symbol {symbol}")
        return SYMBOLS[symbol]

    def _opened(self, ticket: str | None) -> FakeTicket:
        found = next((t for t in self.opened if str(t.ticket) == ticket), None)
        if found is None:
            raise MtError("INVALID_TICKET", "Invalid ticket")
        return found

    def _decimal(self, p: dict[str, str], name: str) -> Decimal:
        try:
            return D(p.get(name) or "0")
        except ArithmeticError:
            raise MtError("INVALID_PARAMETERS", f"{name} is not a number") from None

    def _check_open(self, symbol: str) -> None:
        if self.closed_symbols is None or symbol in self.closed_symbols:
            raise MtError("MARKET_CLOSED", "Market is closed")

    def _check_volume(self, s: SymbolSpec, lots: Decimal) -> None:
        if not s.min_lot <= lots <= s.max_lot or (lots / s.lot_step) % 1:
            raise MtError("INVALID_VOLUME", "Invalid volume")

    def _check_stops(self, t: FakeTicket, sl: Decimal, tp: Decimal) -> None:
        """SL below and TP above where a buy would close (the bid, or a pending order's price);
        mirrored for a sell. 0 means no stop."""
        bid, ask = self.quotes[t.symbol]
        ref = t.open_price if t.type in PENDING_TYPES else (bid if t.is_buy else ask)
        sign = 1 if t.is_buy else -1
        if (sl and (ref - sl) * sign <= 0) or (tp and (tp - ref) * sign <= 0):
            raise MtError("INVALID_STOPS", "Invalid stops")

    def _new_ticket(self) -> int:
        self._next_ticket += 1
        return self._next_ticket

    def _exit_price(self, t: FakeTicket) -> Decimal:
        bid, ask = self.quotes[t.symbol]
        return bid if t.is_buy else ask

    def _to_account(self, currency: str, amount: Decimal) -> Decimal:
        """An amount in `currency` in USD, at the bid of the pair that converts it."""
        if currency == "USD":
            return amount
        if f"USD{currency}" in self.quotes:
            return amount / self.quotes[f"USD{currency}"][0]
        return amount * self.quotes[f"{currency}USD"][0]

    def _pnl(self, t: FakeTicket, price: Decimal) -> Decimal:
        s = SYMBOLS[t.symbol]
        move = (price - t.open_price) if t.is_buy else (t.open_price - price)
        return self._to_account(s.profit, move * t.lots * s.contract_size).quantize(
            CENT, rounding=ROUND_HALF_UP
        )

    def _floating(self, t: FakeTicket) -> Decimal:
        return self._pnl(t, self._exit_price(t)) if t.type in MARKET_TYPES else ZERO

    def _margin(self, t: FakeTicket) -> Decimal:
        s = SYMBOLS[t.symbol]
        notional = t.lots * s.contract_size * self.quotes[t.symbol][0]
        return self._to_account(s.profit, notional) / self.leverage

    def _free_margin(self) -> Decimal:
        floating = sum((self._floating(t) for t in self.opened), ZERO)
        return self.balance + floating - sum((self._margin(t) for t in self.opened), ZERO)

    def _to_history(self, t: FakeTicket, price: Decimal) -> None:
        self.opened.remove(t)
        t.close_price, t.close_time = price, datetime.now()
        if t.type in MARKET_TYPES:
            t.profit = self._pnl(t, price)
            self.balance += t.profit
        self.history.append(t)

    def _on_quote(self, t: FakeTicket) -> None:
        """What the broker does on its own when the quote moves: fill a crossed limit, close a
        position whose SL or TP is crossed."""
        bid, ask = self.quotes[t.symbol]
        if t.type == "BuyLimit" and ask <= t.open_price:
            t.type, t.open_time = "Buy", datetime.now()
        elif t.type == "SellLimit" and bid >= t.open_price:
            t.type, t.open_time = "Sell", datetime.now()
        if t.type not in MARKET_TYPES:
            return
        price = self._exit_price(t)
        sign = 1 if t.is_buy else -1
        for level, tag in ((t.sl, "[sl]"), (t.tp, "[tp]")):
            hit = (price - level) * sign <= 0 if tag == "[sl]" else (price - level) * sign >= 0
            if level and hit:
                t.comment = t.comment[: COMMENT_MAX - len(tag)] + tag
                self._to_history(t, price)
                return
