"""A fake Bybit (API v5, unified trading account: spot and USDT linear perpetuals) that real ccxt
talks to over loopback.

Shaped on ccxt's own static test data for Bybit (`ts/src/test/static/{markets,request,response}/
bybit.json`) and Bybit's v5 reference: every answer `{"retCode", "retMsg", "result", "retExtInfo",
"time"}`, instruments by category, the unified account's wallet balance. Private requests are
checked as Bybit checks them: X-BAPI-API-KEY, X-BAPI-TIMESTAMP (within the X-BAPI-RECV-WINDOW),
X-BAPI-SIGN = hex HMAC-SHA256(secret, timestamp + key + recv window + query string or JSON body).
`orderLinkId` is at most 36 characters of letters, digits, `-` and `_`. Create and cancel answer
with the ids only; an order is read from `order/realtime` (open, and the account's recent
closed ones). A reduce-only order larger than the position is cut to the position's size.
Conditional orders (an SL or TP held at the venue) are in `bybit_conditional.py`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import uuid
from decimal import Decimal
from typing import Any

from starlette.responses import JSONResponse, Response

from tests.fakes.bybit_conditional import (
    CODES as CONDITIONAL_CODES,
    ConditionalOrder,
    ConditionalOrders,
)
from tests.fakes.venue import (
    Book,
    Call,
    Closed,
    Instrument,
    Order,
    Refusal,
    Trigger,
    VenueServer,
    _Rule,
    now_ms,
    plain,
    serve_alone,
)

D = Decimal

# symbol base quote swap | qtyStep (basePrecision) minOrderQty tickSize | contract size 1
SPOT = [
    Instrument("BTCUSDT", "BTC", "USDT", False, D("0.000001"), D("0.000048"), D("0.01")),
    Instrument("ETHUSDT", "ETH", "USDT", False, D("0.00001"), D("0.00062"), D("0.01")),
]
LINEAR = [
    Instrument(
        "BTCUSDT",
        "BTC",
        "USDT",
        True,
        D("0.001"),
        D("0.001"),
        D("0.10"),
        max_qty=D(1190),
        min_notional=D(5),
        maintenance_rate=D("0.005"),
    ),
    Instrument(
        "ETHUSDT",
        "ETH",
        "USDT",
        True,
        D("0.01"),
        D("0.01"),
        D("0.01"),
        max_qty=D(7240),
        min_notional=D(5),
        maintenance_rate=D("0.005"),
    ),
]
PRICES = {"BTCUSDT": D(50000), "ETHUSDT": D(3000)}
BALANCES = {"USDT": D(10000), "BTC": D(1), "ETH": D(10)}
SPOT_FEE, LINEAR_FEE = D("0.001"), D("0.00055")
LINK_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")

CODES = {
    "insufficient": (110007, "ab not enough for new order"),
    "min_size": (170136, "Order quantity lower than the minimum."),
    "lot_size": (170137, "Order volume decimal too long"),
    "max_size": (170135, "Order quantity too large."),
    "tick_size": (170134, "Order price decimal too long."),
    "min_notional": (110094, "Order notional value below the lower limit"),
    "reduce_only": (110017, "Reduce-only rule not satisfied"),
    "param": (10001, "params error"),
    "unknown_symbol": (10001, "params error: symbol invalid"),
    "client_id": (10001, "params error: orderLinkId invalid"),
    "duplicate_client_id": (110072, "OrderLinkedID is duplicate"),
    "hedge": (10001, "position idx not match position mode"),
    "not_found": (110001, "Order does not exist"),
    "not_open": (110001, "order not exists or too late to cancel"),
    **CONDITIONAL_CODES,
    "leverage": (10001, "leverage invalid"),
    "leverage_unchanged": (110043, "leverage not modified"),
    "key": (10003, "API key is invalid."),
    "sign": (10004, "error sign! origin_string[...]"),
    "timestamp": (
        10002,
        "invalid request, please check your server timestamp or recv_window param",
    ),
}
STATUS = {"new": "New", "partially_filled": "PartiallyFilled", "filled": "Filled"}
STATUS["canceled"] = "Cancelled"
EXEC_TYPES = {"close": "Trade", "liquidation": "BustTrade"}


class _Books:
    """Bybit names a spot pair and its perpetual alike (BTCUSDT): the category tells them apart.
    One unified account holds both, so both books share its balances."""

    def __init__(self) -> None:
        self.spot = Book(SPOT, PRICES, BALANCES, spot_fee=SPOT_FEE, swap_fee=LINEAR_FEE)
        self.linear = Book(LINEAR, PRICES, {}, spot_fee=SPOT_FEE, swap_fee=LINEAR_FEE)
        self.linear.balances = self.spot.balances

    def of(self, category: str | None) -> Book:
        if category == "spot":
            return self.spot
        if category == "linear":
            return self.linear
        raise Refusal("param", f"category {category} is not served")


class FakeBybit(VenueServer):
    order_path = ("POST", "/v5/order/create")

    def __init__(
        self,
        *,
        api_key: str = "fake-bybit-key",
        api_secret: str = "fake-bybit-secret",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.api_key, self.api_secret = api_key, api_secret
        self.books = _Books()
        self.conditional = ConditionalOrders(self)
        self.routes = {
            ("GET", "/v5/market/instruments-info"): (False, self._instruments),
            ("GET", "/v5/market/tickers"): (False, self._tickers),
            ("GET", "/v5/user/query-api"): (True, self._query_api),
            ("GET", "/v5/account/info"): (True, self._account_info),
            ("GET", "/v5/account/wallet-balance"): (True, self._wallet),
            ("POST", "/v5/order/create"): (True, self._create),
            ("GET", "/v5/order/realtime"): (True, self._realtime),
            ("POST", "/v5/order/cancel"): (True, self._cancel),
            ("POST", "/v5/order/amend"): (True, self._amend),
            ("GET", "/v5/position/list"): (True, self._positions),
            ("POST", "/v5/position/set-leverage"): (True, self._set_leverage),
            ("GET", "/v5/execution/list"): (True, self._executions),
            ("GET", "/v5/position/closed-pnl"): (True, self._closed_pnl),
        }

    # --- driving it from a test ------------------------------------------------------------

    @property
    def credentials(self) -> dict[str, str]:
        """A connection's credentials for this account."""
        return {"api_key": self.api_key, "api_secret": self.api_secret}

    def set_price(self, symbol: str, price: Decimal | str) -> None:
        for book in (self.books.spot, self.books.linear):
            book.set_price(symbol, price)

    def conditional_orders(self, *, live_only: bool = False) -> list[ConditionalOrder]:
        """The conditional orders of the linear book (`live_only`: those still untriggered),
        as Bybit shows them: what a test's watcher counts."""
        return self.conditional.views(live_only=live_only)

    def refuse_next_amends(self, count: int, kind: str, message: str) -> None:
        """The next `/v5/order/amend` calls are refused with the venue's code for `kind`."""
        rule = _Rule(count, "POST", "/v5/order/amend", {"kind": kind, "message": message})
        self._rejects.append(rule)

    @property
    def orders(self) -> list[Order]:
        every = self.books.spot.orders + self.books.linear.orders
        return sorted((o for o in every if o.source == "api"), key=lambda o: o.created)

    # --- plumbing ----------------------------------------------------------------------------

    def _envelope(self, code: int, msg: str, result: Any) -> dict[str, Any]:
        return {
            "retCode": code,
            "retMsg": msg,
            "result": result,
            "retExtInfo": {},
            "time": now_ms(),
        }

    def answer(self, result: Any) -> Response:
        return JSONResponse(self._envelope(0, "OK", result))

    def not_found(self) -> Response:
        return JSONResponse({"retCode": 404, "retMsg": "Not Found"}, status_code=404)

    def refusal(self, error: Refusal, call: Call) -> Response:
        code, msg = CODES.get(error.kind, (10001, error.message))
        status = 401 if error.kind in ("key", "sign") else 200
        return JSONResponse(self._envelope(code, msg, {}), status_code=status)

    def verify(self, call: Call) -> None:
        h = call.request.headers
        if not hmac.compare_digest(h.get("x-bapi-api-key", ""), self.api_key):
            raise Refusal("key", "bad key")
        stamp, window = h.get("x-bapi-timestamp", ""), h.get("x-bapi-recv-window", "5000")
        if not stamp.isdigit() or abs(now_ms() - int(stamp)) > int(window):
            raise Refusal("timestamp", "outside the recv window")
        payload = (
            stamp + self.api_key + window + (call.body if call.method == "POST" else call.query)
        )
        expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(h.get("x-bapi-sign", ""), expected):
            raise Refusal("sign", "bad signature")

    # --- public ------------------------------------------------------------------------------

    async def _instruments(self, call: Call) -> dict[str, Any]:
        category = call.params.get("category")
        book = self.books.of(category)
        wanted = [] if call.params.get("status") == "PreLaunch" else book.instruments.values()
        rows = [self._spot(i) if category == "spot" else self._linear(i) for i in wanted]
        return {"category": category, "list": rows}

    @staticmethod
    def _spot(i: Instrument) -> dict[str, Any]:
        return {
            "symbol": i.id,
            "baseCoin": i.base,
            "quoteCoin": i.quote,
            "innovation": "0",
            "status": "Trading",
            "marginTrading": "utaOnly",
            "stTag": "0",
            "lotSizeFilter": {
                "basePrecision": plain(i.lot),
                "quotePrecision": "0.00000001",
                "minOrderQty": plain(i.min_qty),
                "maxOrderQty": "71.73956243",
                "minOrderAmt": "1",
                "maxOrderAmt": "2000000",
            },
            "priceFilter": {"tickSize": plain(i.tick)},
            "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
        }

    @staticmethod
    def _linear(i: Instrument) -> dict[str, Any]:
        return {
            "symbol": i.id,
            "contractType": "LinearPerpetual",
            "status": "Trading",
            "baseCoin": i.base,
            "quoteCoin": i.quote,
            "launchTime": "1585526400000",
            "deliveryTime": "0",
            "deliveryFeeRate": "",
            "priceScale": "2",
            "leverageFilter": {
                "minLeverage": "1",
                "maxLeverage": f"{i.max_leverage}.00",
                "leverageStep": "0.01",
            },
            "priceFilter": {
                "minPrice": plain(i.tick),
                "maxPrice": "199999.80",
                "tickSize": plain(i.tick),
            },
            "lotSizeFilter": {
                "maxOrderQty": plain(i.max_qty),
                "maxMktOrderQty": plain(i.max_qty),
                "minOrderQty": plain(i.min_qty),
                "qtyStep": plain(i.lot),
                "postOnlyMaxOrderQty": plain(i.max_qty),
                "minNotionalValue": plain(i.min_notional),
            },
            "unifiedMarginTrade": True,
            "fundingInterval": 480,
            "settleCoin": i.quote,
            "copyTrading": "both",
            "upperFundingRate": "0.00375",
            "lowerFundingRate": "-0.00375",
        }

    async def _tickers(self, call: Call) -> dict[str, Any]:
        category = call.params.get("category")
        book = self.books.of(category)
        symbol = call.params.get("symbol")
        instruments = [book.instrument(symbol)] if symbol else list(book.instruments.values())
        rows = []
        for i in instruments:
            last = plain(book.prices[i.id])
            row = {
                "symbol": i.id,
                "bid1Price": last,
                "bid1Size": "1",
                "ask1Price": last,
                "ask1Size": "1",
                "lastPrice": last,
                "prevPrice24h": last,
                "price24hPcnt": "0",
                "highPrice24h": last,
                "lowPrice24h": last,
                "turnover24h": "0",
                "volume24h": "0",
            }
            if category == "linear":
                row.update(markPrice=last, indexPrice=last, fundingRate="0.0001")
            rows.append(row)
        return {"category": category, "list": rows}

    # --- account -----------------------------------------------------------------------------

    async def _query_api(self, call: Call) -> dict[str, Any]:
        return {
            "id": "13770661",
            "note": "fake",
            "apiKey": self.api_key,
            "readOnly": 0,
            "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"]},
            "unified": 0,
            "uta": 1,
            "isMaster": True,
        }

    async def _account_info(self, call: Call) -> dict[str, Any]:
        return {
            "unifiedMarginStatus": 6,
            "marginMode": "REGULAR_MARGIN",
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
            "updatedTime": str(now_ms()),
        }

    async def _wallet(self, call: Call) -> dict[str, Any]:
        if call.params.get("accountType") != "UNIFIED":
            raise Refusal("param", "accountType must be UNIFIED")
        book, coins = self.books.linear, []
        for coin in sorted(book.balances):
            free, locked = book.balance(coin)
            margin, upl = book.margin_in_use(coin), book.upl(coin)
            wallet = free + locked + margin
            coins.append(
                {
                    "coin": coin,
                    "equity": plain(wallet + upl),
                    "walletBalance": plain(wallet),
                    "locked": plain(locked),
                    "totalPositionIM": plain(margin),
                    "totalOrderIM": "0",
                    "unrealisedPnl": plain(upl),
                    "availableToWithdraw": "",
                    "borrowAmount": "0",
                    "accruedInterest": "0",
                    "usdValue": plain(wallet),
                }
            )
        return {"list": [{"accountType": "UNIFIED", "totalEquity": "", "coin": coins}]}

    async def _set_leverage(self, call: Call) -> dict[str, Any]:
        book = self.books.of(call.params.get("category"))
        inst = book.instrument(call.params.get("symbol"))
        buy, sell = call.params.get("buyLeverage"), call.params.get("sellLeverage")
        if buy != sell or not buy or not 1 <= D(buy) <= inst.max_leverage:
            raise Refusal("leverage", "bad leverage")
        if book.leverage_of(inst) == int(D(buy)):
            raise Refusal("leverage_unchanged", "same leverage")
        book.leverage[inst.id] = int(D(buy))
        return {}

    async def _positions(self, call: Call) -> dict[str, Any]:
        book = self.books.of(call.params.get("category"))
        symbol = call.params.get("symbol")
        if not symbol and not call.params.get("settleCoin"):
            raise Refusal("param", "symbol or settleCoin is required")
        rows = []
        for inst_id, pos in book.positions.items():
            if symbol and inst_id != symbol:
                continue
            mark = book.prices[inst_id]
            rows.append(
                {
                    "positionIdx": 0,
                    "riskId": 1,
                    "riskLimitValue": "2000000",
                    "symbol": inst_id,
                    "side": "Buy" if pos.qty > 0 else "Sell",
                    "size": plain(abs(pos.qty)),
                    "avgPrice": plain(pos.entry),
                    "positionValue": plain(abs(pos.qty) * pos.entry),
                    "tradeMode": 0,
                    "positionStatus": "Normal",
                    "autoAddMargin": 0,
                    "leverage": str(pos.leverage),
                    "markPrice": plain(mark),
                    "liqPrice": plain(pos.liquidation_price()),
                    "bustPrice": "",
                    "positionIM": plain(pos.margin),
                    "positionMM": plain(abs(pos.qty) * mark * pos.inst.maintenance_rate),
                    "positionBalance": plain(pos.margin),
                    "tpslMode": "Full",
                    "takeProfit": "0",
                    "stopLoss": "0",
                    "trailingStop": "0",
                    "unrealisedPnl": plain(pos.unrealized(mark)),
                    "curRealisedPnl": plain(pos.realized - pos.fees),
                    "cumRealisedPnl": plain(pos.realized - pos.fees + pos.funding),
                    "adlRankIndicator": 2,
                    "isReduceOnly": False,
                    "createdTime": str(pos.opened),
                    "updatedTime": str(pos.updated),
                    "seq": 8172241024,
                }
            )
        return {"list": rows, "nextPageCursor": "", "category": "linear"}

    async def _executions(self, call: Call) -> dict[str, Any]:
        if call.params.get("execType") != "Funding":
            raise Refusal("param", "only funding executions are served")
        symbol = call.params.get("symbol")
        since = int(call.params.get("startTime") or 0)
        rows = []
        for b in sorted(self.books.linear.bills, key=lambda b: b.time, reverse=True):
            if (symbol and b.inst.id != symbol) or b.time < since:
                continue
            # A fee: what the account paid is positive, what it received negative.
            rows.append(
                {
                    "symbol": b.inst.id,
                    "orderType": "UNKNOWN",
                    "orderLinkId": "",
                    "orderId": str(uuid.uuid4()),
                    "execTime": str(b.time),
                    "feeRate": plain(b.rate),
                    "execType": "Funding",
                    "execFee": plain(-b.amount),
                    "execId": b.id,
                    "execPrice": plain(self.books.linear.prices[b.inst.id]),
                    "execQty": "0",
                    "closedSize": "0",
                }
            )
        return {"nextPageCursor": "", "category": "linear", "list": rows}

    async def _closed_pnl(self, call: Call) -> dict[str, Any]:
        symbol = call.params.get("symbol")
        rows = [
            self._closed(c)
            for c in reversed(self.books.linear.closed)
            if not symbol or c.inst.id == symbol
        ]
        return {"nextPageCursor": "", "category": "linear", "list": rows}

    @staticmethod
    def _closed(c: Closed) -> dict[str, Any]:
        open_fee = c.fees - c.close_fee
        return {
            "symbol": c.inst.id,
            "orderType": "Market",
            "leverage": str(c.leverage),
            "updatedTime": str(c.closed),
            "side": "Sell" if c.side == "long" else "Buy",
            "orderId": c.order_id,
            "closedPnl": plain(c.pnl - c.fees),
            "openFee": plain(open_fee),
            "closeFee": plain(c.close_fee),
            "avgEntryPrice": plain(c.entry),
            "qty": plain(c.qty),
            "cumEntryValue": plain(c.qty * c.entry),
            "createdTime": str(c.closed),
            "orderPrice": plain(c.close_price),
            "closedSize": plain(c.qty),
            "avgExitPrice": plain(c.close_price),
            "execType": EXEC_TYPES[c.kind],
            "fillCount": "1",
            "cumExitValue": plain(c.qty * c.close_price),
        }

    # --- orders ------------------------------------------------------------------------------

    async def _create(self, call: Call) -> dict[str, Any]:
        p, category = call.params, call.params.get("category")
        book = self.books.of(category)
        inst = book.instrument(p.get("symbol"))
        link = str(p.get("orderLinkId") or uuid.uuid4())
        if not LINK_ID.fullmatch(link):
            raise Refusal("client_id", "orderLinkId")
        if any(o.client_id == link for o in book.orders) or self.conditional.taken(link):
            raise Refusal("duplicate_client_id", "duplicate")
        refused = self.take_reject(call.method, call.path)
        if refused is not None:
            raise refused
        if p.get("triggerPrice"):
            return self.conditional.create(call, link)
        if str(p.get("positionIdx", "0")) != "0" and not book.hedge_mode:
            raise Refusal("hedge", "one-way mode takes positionIdx 0")
        side, kind = str(p.get("side", "")).lower(), str(p.get("orderType", "")).lower()
        qty = D(str(p.get("qty", "0")))
        spot_buy = category == "spot" and kind == "market" and side == "buy"
        if spot_buy and p.get("marketUnit", "quoteCoin") != "baseCoin":
            raise Refusal("param", "this fake takes spot market buys in the base coin")
        reduce_only = p.get("reduceOnly") in (True, "true")
        if reduce_only and inst.id in book.positions:
            qty = min(qty, abs(book.positions[inst.id].qty))  # Bybit cuts it to the position
        price = D(str(p["price"])) if p.get("price") else None
        order = book.place(
            inst, side, kind, qty, price, link, reduce_only=reduce_only, order_id=str(uuid.uuid4())
        )
        order.leverage = book.leverage_of(inst)
        return {"orderId": order.id, "orderLinkId": order.client_id}

    def _lookup(self, call: Call) -> tuple[Book, Order]:
        book = self.books.of(call.params.get("category"))
        order = book.find(
            call.params.get("orderId") or None, call.params.get("orderLinkId") or None
        )
        symbol = call.params.get("symbol")
        if order is None or (symbol and order.inst.id != symbol):
            raise Refusal("not_found", "no such order")
        return book, order

    async def _realtime(self, call: Call) -> dict[str, Any]:
        """`orderFilter`: StopOrder (conditional orders only), Order (ordinary ones only), or
        absent (both, as a unified account answers)."""
        category, kind = call.params.get("category"), call.params.get("orderFilter")
        ordinary, conditional = kind != "StopOrder", kind != "Order"
        book, symbol = self.books.of(category), call.params.get("symbol")
        rows = []
        if call.params.get("orderId") or call.params.get("orderLinkId"):
            trigger = self._conditional(call) if conditional else None
            if trigger is not None:
                rows = [self.conditional.detail(trigger)]
            elif ordinary:
                with contextlib.suppress(Refusal):
                    rows = [self._detail(self._lookup(call)[1], category)]
        else:
            if ordinary:
                rows += [self._detail(o, category) for o in book.orders if o.is_open]
            if conditional and book is self.books.linear:
                rows += [self.conditional.detail(t) for t in book.triggers if t.status == "new"]
            rows = [r for r in rows if not symbol or r["symbol"] == symbol]
        return {"list": rows, "nextPageCursor": "", "category": category}

    def _conditional(self, call: Call) -> Trigger | None:
        if call.params.get("category") != "linear":
            return None
        p = call.params
        trigger = self.conditional.find(p.get("orderId") or None, p.get("orderLinkId") or None)
        symbol = p.get("symbol")
        return None if trigger is None or (symbol and trigger.inst.id != symbol) else trigger

    async def _cancel(self, call: Call) -> dict[str, Any]:
        trigger = self._conditional(call)
        if trigger is not None:
            return self.conditional.cancel(trigger)
        book, order = self._lookup(call)
        book.cancel(order)
        return {"orderId": order.id, "orderLinkId": order.client_id}

    async def _amend(self, call: Call) -> dict[str, Any]:
        return self.conditional.amend(call)

    def _detail(self, o: Order, category: str | None) -> dict[str, Any]:
        average = o.average
        detail = {
            "orderId": o.id,
            "orderLinkId": o.client_id,
            "blockTradeId": "",
            "symbol": o.inst.id,
            "price": plain(o.price) if o.price is not None else "0",
            "qty": plain(o.qty),
            "side": o.side.capitalize(),
            "isLeverage": "",
            "positionIdx": 0,
            "orderStatus": STATUS[o.status],
            "cancelType": "UNKNOWN",
            "rejectReason": "EC_NoError",
            "avgPrice": plain(average) if average is not None else "",
            "leavesQty": plain(o.qty - o.filled),
            "leavesValue": "0",
            "cumExecQty": plain(o.filled),
            "cumExecValue": plain(o.value),
            "cumExecFee": plain(o.fee),
            "timeInForce": "IOC" if o.type == "market" else "GTC",
            "orderType": o.type.capitalize(),
            "stopOrderType": "",
            "orderIv": "",
            "triggerPrice": "0",
            "takeProfit": "0",
            "stopLoss": "0",
            "triggerBy": "",
            "reduceOnly": o.reduce_only,
            "closeOnTrigger": False,
            "createdTime": str(o.created),
            "updatedTime": str(o.updated),
        }
        if o.fills:
            detail["cumFeeDetail"] = {o.fee_ccy: plain(o.fee)}
        if category == "spot":
            detail["marketUnit"] = "baseCoin" if o.type == "market" else ""
        else:
            detail.update(tpslMode="Full", slTriggerBy="", tpTriggerBy="")
        return detail


if __name__ == "__main__":
    serve_alone("Bybit v5", lambda host, port: FakeBybit(host=host, port=port))
