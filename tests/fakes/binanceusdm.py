"""A fake Binance USDⓈ-M futures venue (fapi: USDT-margined perpetuals, one-way mode) that real
ccxt talks to over loopback.

Shaped on ccxt's own static test data for binanceusdm (`ts/src/test/static/{markets,request,
response}/binanceusdm.json`) and Binance's derivatives reference: `exchangeInfo` symbol entries
with their filters (BTCUSDT: step 0.001, tick 0.10, notional at least 100), `{"code", "msg"}`
errors. Signed requests are checked as on spot: X-MBX-APIKEY, then HMAC-SHA256 hex of the query
plus body in `signature`, and `timestamp` within `recvWindow`. `newClientOrderId` must match
`^[.A-Z:/a-z0-9_-]{1,36}$`. Orders answer in full (`newOrderRespType=RESULT`) but without their
fee: that is in `userTrades`. Liquidations are `forceOrders` (client id `autoclose-...`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from decimal import Decimal
from typing import Any

from starlette.responses import JSONResponse, Response

from tests.fakes.binance_ws import MarketStreams
from tests.fakes.binanceusdm_algo import CONDITIONAL, AlgoOrder, AlgoOrderApi
from tests.fakes.binanceusdm_stream import UserDataStream
from tests.fakes.venue import (
    Book,
    Call,
    Instrument,
    Order,
    Refusal,
    VenueServer,
    _Rule,
    now_ms,
    plain,
    serve_alone,
)

D = Decimal

INSTRUMENTS = [
    Instrument(
        "BTCUSDT",
        "BTC",
        "USDT",
        True,
        D("0.001"),
        D("0.001"),
        D("0.10"),
        max_qty=D(1000),
        min_notional=D(100),
        max_leverage=125,
    ),
    Instrument(
        "ETHUSDT",
        "ETH",
        "USDT",
        True,
        D("0.001"),
        D("0.001"),
        D("0.01"),
        max_qty=D(10000),
        min_notional=D(20),
        max_leverage=125,
    ),
]
PRICES = {"BTCUSDT": D(50000), "ETHUSDT": D(3000)}
BALANCES = {"USDT": D(10000)}
TAKER = D("0.0005")
CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")

CODES = {
    "insufficient": (-2019, "Margin is insufficient."),
    "min_size": (-4003, "Quantity less than or equal to zero."),
    "lot_size": (-1111, "Precision is over the maximum defined for this asset."),
    "max_size": (-4005, "Quantity greater than max quantity."),
    "tick_size": (-4014, "Price not increased by tick size."),
    "min_notional": (
        -4164,
        "Order's notional must be no smaller than 100 (unless you choose reduce only).",
    ),
    "reduce_only": (-2022, "ReduceOnly Order is rejected."),
    "param": (-1102, "A mandatory parameter was not sent, was empty/null, or malformed."),
    "unknown_symbol": (-1121, "Invalid symbol."),
    "client_id": (-4015, "Client order id is not valid."),
    "duplicate_client_id": (-4116, "ClientOrderId is duplicated."),
    "hedge": (-4061, "Order's position side does not match user's setting."),
    "not_found": (-2013, "Order does not exist."),
    "would_trigger": (-2021, "Order would immediately trigger."),
    "order_type": (-1116, "Invalid orderType."),
    "algo_only": (
        -4120,
        "Order type not supported for this endpoint. Please use the Algo Order API endpoints "
        "instead.",
    ),
    "not_open": (-2011, "Unknown order sent."),
    "leverage": (-4028, "Leverage 200 is not valid"),
    "margin_type_unchanged": (-4046, "No need to change margin type."),
    "key": (-2015, "Invalid API-key, IP, or permissions for action."),
    "sign": (-1022, "Signature for this request is not valid."),
    "timestamp": (-1021, "Timestamp for this request is outside of the recvWindow."),
}
STATUS = {"new": "NEW", "partially_filled": "PARTIALLY_FILLED", "filled": "FILLED"}
STATUS["canceled"] = "CANCELED"


class FakeBinanceUsdm(VenueServer):
    order_path = ("POST", "/fapi/v1/order")

    def __init__(
        self,
        *,
        api_key: str = "fake-usdm-key",
        api_secret: str = "fake-usdm-secret",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.api_key, self.api_secret = api_key, api_secret
        self.book = Book(
            INSTRUMENTS, PRICES, BALANCES, spot_fee=TAKER, swap_fee=TAKER, default_leverage=20
        )
        self.order_ids = iter(range(4000000001, 10**12))
        self.routes = {
            ("GET", "/fapi/v1/exchangeInfo"): (False, self._exchange_info),
            ("GET", "/fapi/v1/ticker/24hr"): (False, self._ticker_24hr),
            ("GET", "/fapi/v3/account"): (True, self._account),
            ("GET", "/fapi/v1/positionSide/dual"): (True, self._dual),
            ("POST", "/fapi/v1/marginType"): (True, self._margin_type),
            ("POST", "/fapi/v1/leverage"): (True, self._leverage),
            ("GET", "/fapi/v1/leverageBracket"): (True, self._brackets),
            ("GET", "/fapi/v3/positionRisk"): (True, self._position_risk),
            ("POST", "/fapi/v1/order"): (True, self._new_order),
            ("GET", "/fapi/v1/order"): (True, self._query_order),
            ("DELETE", "/fapi/v1/order"): (True, self._cancel_order),
            ("GET", "/fapi/v1/openOrders"): (True, self._open_orders),
            ("GET", "/fapi/v1/userTrades"): (True, self._user_trades),
            ("GET", "/fapi/v1/income"): (True, self._income),
            ("GET", "/fapi/v1/forceOrders"): (True, self._force_orders),
        }
        self.algo = AlgoOrderApi(self, CLIENT_ID)
        self.routes.update(self.algo.routes)
        self.stream = UserDataStream(self)
        self.routes.update(self.stream.routes)
        # Market streams over websocket (tests/fakes/binance_ws.py), at ccxt.pro's /market/ws.
        self.ws = MarketStreams(
            self.app, lambda: self.book.prices, plain, path="/market/ws", spot=False
        )

    # --- driving it from a test ------------------------------------------------------------

    @property
    def credentials(self) -> dict[str, str]:
        """A connection's credentials for this account."""
        return {"api_key": self.api_key, "api_secret": self.api_secret}

    def set_price(self, symbol: str, price: Decimal | str) -> None:
        self.book.set_price(symbol, price)

    @property
    def orders(self) -> list[Order]:
        return [o for o in self.book.orders if o.source == "api"]

    def refuse_next_algo_orders(self, count: int, kind: str, message: str) -> None:
        """The next algo (conditional) order creations are refused with the code for `kind`."""
        self._rejects.append(
            _Rule(count, "POST", "/fapi/v1/algoOrder", {"kind": kind, "message": message})
        )

    def algo_orders(self, *, open_only: bool = False, symbol: str | None = None) -> list[AlgoOrder]:
        """The account's algo (conditional) orders, oldest first: only the untriggered ones with
        `open_only`, only one symbol's with `symbol`."""
        return [
            self.algo.view(t)
            for t in self.book.triggers
            if (not open_only or t.status == "new") and (symbol is None or t.inst.id == symbol)
        ]

    # --- plumbing ----------------------------------------------------------------------------

    def answer(self, result: Any) -> Response:
        return JSONResponse(result)

    def not_found(self) -> Response:
        return JSONResponse({"code": -5000, "msg": "Path not found"}, status_code=404)

    def refusal(self, error: Refusal, call: Call) -> Response:
        code, msg = CODES.get(error.kind, (-1102, error.message))
        status = 401 if error.kind in ("key",) else 400
        return JSONResponse({"code": code, "msg": msg}, status_code=status)

    def verify(self, call: Call) -> None:
        key = call.request.headers.get("x-mbx-apikey", "")
        if not hmac.compare_digest(key, self.api_key):
            raise Refusal("key", "bad key")

        def unsigned(part: str) -> str:
            return "&".join(p for p in part.split("&") if p and not p.startswith("signature="))

        payload = unsigned(call.query) + unsigned(call.body)
        expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(str(call.params.get("signature", "")), expected):
            raise Refusal("sign", "bad signature")
        stamp = str(call.params.get("timestamp", ""))
        window = int(call.params.get("recvWindow", "5000"))
        if not stamp.isdigit() or not -1000 <= now_ms() - int(stamp) <= window:
            raise Refusal("timestamp", "outside the recv window")

    # --- public ------------------------------------------------------------------------------

    async def _exchange_info(self, call: Call) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": now_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 2400,
                },
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [self._symbol(i) for i in INSTRUMENTS],
        }

    @staticmethod
    def _symbol(i: Instrument) -> dict[str, Any]:
        return {
            "symbol": i.id,
            "pair": i.id,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": i.base,
            "quoteAsset": i.quote,
            "marginAsset": i.quote,
            "pricePrecision": 2,
            "quantityPrecision": 3,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": ["PoW"],
            "settlePlan": 0,
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": plain(i.tick),
                    "maxPrice": "4529764",
                    "tickSize": plain(i.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "stepSize": plain(i.lot),
                    "maxQty": plain(i.max_qty),
                    "minQty": plain(i.min_qty),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "stepSize": plain(i.lot),
                    "maxQty": "120",
                    "minQty": plain(i.min_qty),
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": plain(i.min_notional)},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": "1.0500",
                    "multiplierDown": "0.9500",
                    "multiplierDecimal": "4",
                },
            ],
            "orderTypes": [
                "LIMIT",
                "MARKET",
                "STOP",
                "STOP_MARKET",
                "TAKE_PROFIT",
                "TAKE_PROFIT_MARKET",
                "TRAILING_STOP_MARKET",
            ],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            "permissionSets": ["GRID", "COPY"],
        }

    async def _ticker_24hr(self, call: Call) -> Any:
        symbol = call.params.get("symbol")
        rows = (
            [self._ticker(self.book.instrument(symbol))]
            if symbol
            else [self._ticker(i) for i in INSTRUMENTS]
        )
        return rows[0] if symbol else rows

    def _ticker(self, i: Instrument) -> dict[str, Any]:
        last, now = plain(self.book.prices[i.id]), now_ms()
        return {
            "symbol": i.id,
            "priceChange": "0",
            "priceChangePercent": "0",
            "weightedAvgPrice": last,
            "lastPrice": last,
            "lastQty": "0.001",
            "openPrice": last,
            "highPrice": last,
            "lowPrice": last,
            "volume": "0",
            "quoteVolume": "0",
            "openTime": now - 86400000,
            "closeTime": now,
            "firstId": 1,
            "lastId": 1,
            "count": 1,
        }

    # --- account -----------------------------------------------------------------------------

    async def _account(self, call: Call) -> dict[str, Any]:
        assets = []
        for asset in sorted(self.book.balances):
            free, locked = self.book.balance(asset)
            margin, upl = self.book.margin_in_use(asset), self.book.upl(asset)
            wallet = free + locked + margin
            assets.append(
                {
                    "asset": asset,
                    "walletBalance": plain(wallet),
                    "unrealizedProfit": plain(upl),
                    "marginBalance": plain(wallet + upl),
                    "maintMargin": "0",
                    "initialMargin": plain(margin + locked),
                    "positionInitialMargin": plain(margin),
                    "openOrderInitialMargin": plain(locked),
                    "crossWalletBalance": plain(free + locked),
                    "crossUnPnl": "0",
                    "availableBalance": plain(free),
                    "maxWithdrawAmount": plain(free),
                    "updateTime": now_ms(),
                }
            )
        return {"assets": assets, "positions": []}

    async def _dual(self, call: Call) -> dict[str, Any]:
        return {"dualSidePosition": self.book.hedge_mode}

    async def _margin_type(self, call: Call) -> dict[str, Any]:
        inst = self.book.instrument(call.params.get("symbol"))
        wanted = {"ISOLATED": "isolated", "CROSSED": "cross"}.get(
            str(call.params.get("marginType"))
        )
        if wanted is None:
            raise Refusal("param", "marginType")
        if self.book.margin_mode.get(inst.id, "cross") == wanted:
            raise Refusal("margin_type_unchanged", "already")
        if inst.id in self.book.positions:
            raise Refusal("param", "margin type cannot be changed with a position open")
        self.book.margin_mode[inst.id] = wanted
        return {"code": 200, "msg": "success"}

    async def _leverage(self, call: Call) -> dict[str, Any]:
        inst = self.book.instrument(call.params.get("symbol"))
        lever = str(call.params.get("leverage", ""))
        if not lever.isdigit() or not 1 <= int(lever) <= inst.max_leverage:
            raise Refusal("leverage", "bad leverage")
        self.book.leverage[inst.id] = int(lever)
        return {"leverage": int(lever), "maxNotionalValue": "1000000", "symbol": inst.id}

    async def _brackets(self, call: Call) -> list[dict[str, Any]]:
        return [
            {
                "symbol": i.id,
                "notionalCoef": 1.0,
                "brackets": [
                    {
                        "bracket": 1,
                        "initialLeverage": i.max_leverage,
                        "notionalCap": 50000,
                        "notionalFloor": 0,
                        "maintMarginRatio": float(i.maintenance_rate),
                        "cum": 0.0,
                    }
                ],
            }
            for i in INSTRUMENTS
        ]

    async def _position_risk(self, call: Call) -> list[dict[str, Any]]:
        symbol = call.params.get("symbol")
        rows = []
        for inst_id, pos in self.book.positions.items():
            if symbol and inst_id != symbol:
                continue
            mark = self.book.prices[inst_id]
            notional = pos.qty * mark
            rows.append(
                {
                    "symbol": inst_id,
                    "positionSide": "BOTH",
                    "positionAmt": plain(pos.qty),
                    "entryPrice": plain(pos.entry),
                    "breakEvenPrice": plain(pos.entry),
                    "markPrice": plain(mark),
                    "unRealizedProfit": plain(pos.unrealized(mark)),
                    "liquidationPrice": plain(pos.liquidation_price()),
                    "isolatedMargin": plain(pos.margin + pos.unrealized(mark)),
                    "notional": plain(notional),
                    "marginAsset": "USDT",
                    "isolatedWallet": plain(pos.margin),
                    "initialMargin": plain(pos.margin),
                    "maintMargin": plain(abs(notional) * pos.inst.maintenance_rate),
                    "positionInitialMargin": plain(pos.margin),
                    "openOrderInitialMargin": "0",
                    "adl": 1,
                    "bidNotional": "0",
                    "askNotional": "0",
                    "updateTime": pos.updated,
                }
            )
        return rows

    async def _user_trades(self, call: Call) -> list[dict[str, Any]]:
        symbol = call.params.get("symbol")
        order_id = call.params.get("orderId")
        since = int(call.params.get("startTime") or 0)
        rows = []
        for o in self.book.orders:
            if o.inst.id != symbol or (order_id and o.id != str(order_id)):
                continue
            for f in o.fills:
                if f.time < since:
                    continue
                rows.append(
                    {
                        "buyer": o.side == "buy",
                        "commission": plain(f.fee),
                        "commissionAsset": f.fee_ccy,
                        "id": f.id,
                        "maker": False,
                        "orderId": int(o.id),
                        "price": plain(f.price),
                        "qty": plain(f.qty),
                        "quoteQty": plain(f.qty * f.price),
                        "realizedPnl": plain(f.pnl),
                        "side": o.side.upper(),
                        "positionSide": "BOTH",
                        "symbol": o.inst.id,
                        "time": f.time,
                    }
                )
        return rows

    async def _income(self, call: Call) -> list[dict[str, Any]]:
        if call.params.get("incomeType") != "FUNDING_FEE":
            raise Refusal("param", "only FUNDING_FEE is served")
        symbol, since = call.params.get("symbol"), int(call.params.get("startTime") or 0)
        return [
            {
                "symbol": b.inst.id,
                "incomeType": "FUNDING_FEE",
                "income": plain(b.amount),
                "asset": b.ccy,
                "info": "FUNDING_FEE",
                "time": b.time,
                "tranId": int(b.id),
                "tradeId": "",
            }
            for b in self.book.bills
            if (not symbol or b.inst.id == symbol) and b.time >= since
        ]

    async def _force_orders(self, call: Call) -> list[dict[str, Any]]:
        symbol, since = call.params.get("symbol"), int(call.params.get("startTime") or 0)
        return [
            {**self._order(o), "clientOrderId": f"autoclose-{o.id}", "time": o.created}
            for o in self.book.orders
            if o.source == "liquidation"
            and (not symbol or o.inst.id == symbol)
            and o.created >= since
        ]

    # --- orders ------------------------------------------------------------------------------

    async def _new_order(self, call: Call) -> dict[str, Any]:
        p = call.params
        inst = self.book.instrument(p.get("symbol"))
        cid = str(p.get("newClientOrderId") or f"x-{now_ms()}")
        if not CLIENT_ID.fullmatch(cid):
            raise Refusal("client_id", "newClientOrderId")
        if any(o.client_id == cid and o.is_open for o in self.book.orders):
            raise Refusal("duplicate_client_id", "duplicate")
        refused = self.take_reject(call.method, call.path)
        if refused is not None:
            raise refused
        if p.get("positionSide", "BOTH") != "BOTH" and not self.book.hedge_mode:
            raise Refusal("hedge", "one-way mode takes positionSide BOTH")
        if str(p.get("type", "")) in CONDITIONAL:
            raise Refusal("algo_only", "conditional orders go to /fapi/v1/algoOrder")
        kind = str(p.get("type", "")).lower()
        if kind == "limit" and not p.get("timeInForce"):
            raise Refusal("param", "timeInForce")
        price = D(str(p["price"])) if p.get("price") else None
        order = self.book.place(
            inst,
            str(p.get("side", "")).lower(),
            kind,
            D(str(p.get("quantity", "0"))),
            price,
            cid,
            reduce_only=p.get("reduceOnly") in ("true", True),
            order_id=str(next(self.order_ids)),
        )
        return self._order(order)

    def _lookup(self, call: Call) -> Order:
        inst = self.book.instrument(call.params.get("symbol"))
        order = self.book.find(call.params.get("orderId"), call.params.get("origClientOrderId"))
        if order is None or order.inst is not inst:
            raise Refusal("not_found", "no such order")
        return order

    async def _query_order(self, call: Call) -> dict[str, Any]:
        order = self._lookup(call)
        return {**self._order(order), "time": order.created}

    async def _cancel_order(self, call: Call) -> dict[str, Any]:
        try:
            order = self._lookup(call)
        except Refusal:
            raise Refusal("not_open", "unknown order") from None
        self.book.cancel(order)
        return self._order(order)

    async def _open_orders(self, call: Call) -> list[dict[str, Any]]:
        symbol = call.params.get("symbol")
        return [
            {**self._order(o), "time": o.created}
            for o in self.book.orders
            if o.is_open and (not symbol or o.inst.id == symbol)
        ]

    def _order(self, o: Order) -> dict[str, Any]:
        average = o.average
        return {
            "orderId": int(o.id),
            "symbol": o.inst.id,
            "status": STATUS[o.status],
            "clientOrderId": o.client_id,
            "price": plain(o.price) if o.price is not None else "0",
            "avgPrice": plain(average) if average is not None else "0",
            "origQty": plain(o.qty),
            "executedQty": plain(o.filled),
            "cumQty": plain(o.filled),
            "cumQuote": plain(o.value),
            "timeInForce": "GTC",
            "type": o.type.upper(),
            "reduceOnly": o.reduce_only,
            "closePosition": False,
            "side": o.side.upper(),
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": o.type.upper(),
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "updateTime": o.updated,
        }


if __name__ == "__main__":
    serve_alone("Binance USDⓈ-M", lambda host, port: FakeBinanceUsdm(host=host, port=port))
