"""The fake Binance spot's stop orders and OCO order lists, wired into `FakeBinance`.

Shaped on Binance's spot REST reference (New Order list - OCO, Query / Cancel Order list, Query
Open Order lists, Query all Order lists; errors.md) and on how ccxt 4.5.90 calls and parses them:

- `POST /api/v3/order` takes STOP_LOSS / TAKE_PROFIT (`quantity`, `stopPrice`) and
  STOP_LOSS_LIMIT / TAKE_PROFIT_LIMIT (`price`, `stopPrice`, `timeInForce` too). A stop is not
  working (`isWorking` false, `workingTime` -1) until the last price reaches its `stopPrice`:
  a sell STOP_LOSS / buy TAKE_PROFIT when price <= stopPrice, a buy STOP_LOSS / sell TAKE_PROFIT
  when price >= stopPrice. It is refused "Order would trigger immediately." when already there.
  Once triggered the market kinds fill at the current price (taker, the usual fee); the limit
  kinds become limit orders at `price` (filled now at the current price if marketable).
- `POST /api/v3/orderList/oco`: `aboveType` / `belowType` legs (LIMIT_MAKER, STOP_LOSS,
  STOP_LOSS_LIMIT, TAKE_PROFIT, TAKE_PROFIT_LIMIT) with `abovePrice`, `aboveStopPrice`,
  `aboveTimeInForce`, and the same for below. Binance's rules: one leg must be contingent
  (-1168); a sell's limit/take-profit leg is above and its stop below, a buy's the other way
  (-1165/-1166/-1196..-1199); the prices must straddle the last price, SELL: above leg > last >
  below stopPrice, BUY: below leg < last < above stopPrice (-2010 "The relationship of the prices
  for the orders is not correct."). Each leg is an ordinary order (`GET /api/v3/order`,
  openOrders, myTrades) carrying the list's `orderListId`; the stop leg comes first, as in
  Binance's examples.
- The list reserves its asset once for both legs (a sell: `quantity` of the base; a buy:
  `quantity` x the highest leg price of the quote). When a leg triggers or trades, the other is
  EXPIRED; what is not traded is released when the last leg ends. Cancelling the list, or any
  one leg with `DELETE /api/v3/order`, cancels both legs (CANCELED). The list is
  `listStatusType` EXEC_STARTED / `listOrderStatus` EXECUTING while a leg is open, then
  ALL_DONE / ALL_DONE.
- Weights (Binance's, also ccxt's costs x 5): orderList/oco 1, GET orderList 4, DELETE
  orderList 1, openOrderList 6, allOrderList 20 (see binance_limits.WEIGHTS); an OCO counts 2
  orders against the order rate limit.

Not served: trailingDelta, iceberg legs, OTO/OTOCO, the deprecated `POST /api/v3/order/oco`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.binance import FakeBinance, FakeOrder

D = Decimal
STOP_MARKET_TYPES = ("STOP_LOSS", "TAKE_PROFIT")
STOP_LIMIT_TYPES = ("STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
STOP_TYPES = STOP_MARKET_TYPES + STOP_LIMIT_TYPES
OCO_TYPES = ("LIMIT_MAKER", *STOP_TYPES)
LOSS = ("STOP_LOSS", "STOP_LOSS_LIMIT")
PROFIT = ("LIMIT_MAKER", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
TIFS = ("GTC", "IOC", "FOK")
# Binance's refusals of a standalone stop whose type the symbol's `orderTypes` does not list
# (code -1013). The fake's symbols list STOP_LOSS_LIMIT and TAKE_PROFIT_LIMIT, as in ccxt's 2024
# markets; STOP_LOSS and TAKE_PROFIT need `fake.enable_order_types(...)`. OCO legs are not gated
# by `orderTypes` (Binance's OCO reference lists STOP_LOSS among the leg types unconditionally).
UNSUPPORTED = {
    "STOP_LOSS": "Stop loss orders are not supported for this symbol.",
    "STOP_LOSS_LIMIT": "Stop loss limit orders are not supported for this symbol.",
    "TAKE_PROFIT": "Take profit orders are not supported for this symbol.",
    "TAKE_PROFIT_LIMIT": "Take profit limit orders are not supported for this symbol.",
}
BAD_PRICES = "The relationship of the prices for the orders is not correct."
# (side, which leg, wrong kind) -> Binance's code and message
MISPLACED = {
    ("BUY", "above", "LIMIT_MAKER"): (-1165, "A limit order in a buy OCO must be below."),
    ("SELL", "below", "LIMIT_MAKER"): (-1166, "A limit order in a sell OCO must be above."),
    ("BUY", "below", "LOSS"): (-1196, "A stop loss order in a buy OCO must be above."),
    ("SELL", "above", "LOSS"): (-1197, "A stop loss order in a sell OCO must be below."),
    ("BUY", "above", "PROFIT"): (-1198, "A take profit order in a buy OCO must be below."),
    ("SELL", "below", "PROFIT"): (-1199, "A take profit order in a sell OCO must be above."),
}


def fires(order: FakeOrder, price: Decimal) -> bool:
    """Whether the last price has reached a stop order's stopPrice."""
    rising = (order.type in LOSS) == (order.side == "BUY")  # buy stop / sell take-profit
    return price >= order.stop_price if rising else price <= order.stop_price


@dataclass
class OrderList:
    order_list_id: int
    list_client_order_id: str
    symbol: str
    side: str
    legs: list[FakeOrder]
    unit: Decimal  # reserved per unit of quantity: 1 base (sell), the highest price (buy)
    reserved: Decimal
    transaction_time: int

    @property
    def is_open(self) -> bool:
        return any(leg.is_open for leg in self.legs)

    @property
    def statuses(self) -> tuple[str, str]:
        """(listStatusType, listOrderStatus)"""
        return ("EXEC_STARTED", "EXECUTING") if self.is_open else ("ALL_DONE", "ALL_DONE")

    def as_response(self) -> dict[str, Any]:
        status_type, order_status = self.statuses
        return {
            "orderListId": self.order_list_id,
            "contingencyType": "OCO",
            "listStatusType": status_type,
            "listOrderStatus": order_status,
            "listClientOrderId": self.list_client_order_id,
            "transactionTime": self.transaction_time,
            "symbol": self.symbol,
            "orders": [
                {"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_order_id}
                for o in self.legs
            ],
        }


@dataclass(frozen=True)
class LegView:
    order_id: int
    client_order_id: str
    type: str
    side: str
    price: Decimal
    stop_price: Decimal
    quantity: Decimal
    executed_qty: Decimal
    status: str
    working: bool


@dataclass(frozen=True)
class OrderListView:
    """A test's view of one order list, in Binance's terms."""

    order_list_id: int
    list_client_order_id: str
    symbol: str
    side: str
    list_status_type: str  # EXEC_STARTED / ALL_DONE
    list_order_status: str  # EXECUTING / ALL_DONE
    legs: tuple[LegView, ...] = field(default_factory=tuple)
    reserved: Decimal = field(default_factory=Decimal)  # still locked for the open legs

    @property
    def status(self) -> str:
        return self.list_order_status

    def leg(self, client_order_id: str) -> LegView:
        return next(leg for leg in self.legs if leg.client_order_id == client_order_id)


class OrderLists:
    """Stop orders and OCO lists over the fake's book (`fake.orders`, `fake.balances`)."""

    def __init__(self, fake: FakeBinance) -> None:
        self.fake = fake
        self.reset()

    def reset(self) -> None:
        self.lists: list[OrderList] = []
        self._next_id = 1

    @property
    def routes(self) -> dict[tuple[str, str], tuple[bool, Any]]:
        return {
            ("POST", "/api/v3/orderList/oco"): (True, self._new_oco),
            ("GET", "/api/v3/orderList"): (True, self._query),
            ("DELETE", "/api/v3/orderList"): (True, self._cancel),
            ("GET", "/api/v3/openOrderList"): (True, self._open),
            ("GET", "/api/v3/allOrderList"): (True, self._all),
        }

    # --- Python API -----------------------------------------------------------------------------

    def views(self, open_only: bool = False, symbol: str | None = None) -> list[OrderListView]:
        symbol = symbol.replace("/", "") if symbol else None
        return [
            self._view(ol)
            for ol in self.lists
            if (not open_only or ol.is_open) and (symbol is None or ol.symbol == symbol)
        ]

    def _view(self, ol: OrderList) -> OrderListView:
        legs = tuple(
            LegView(
                o.order_id,
                o.client_order_id,
                o.type,
                o.side,
                o.price,
                o.stop_price,
                o.orig_qty,
                o.executed_qty,
                o.status,
                o.working,
            )
            for o in ol.legs
        )
        status_type, order_status = ol.statuses
        return OrderListView(
            ol.order_list_id,
            ol.list_client_order_id,
            ol.symbol,
            ol.side,
            status_type,
            order_status,
            legs,
            ol.reserved,
        )

    def find(self, list_id: int | str | None = None, client_id: str | None = None) -> OrderList:
        if list_id not in (None, ""):
            found = [ol for ol in self.lists if str(ol.order_list_id) == str(list_id)]
        else:
            found = [ol for ol in self.lists if ol.list_client_order_id == client_id]
        if not found:
            raise KeyError(f"no order list {list_id or client_id!r}")
        return found[-1]

    # --- hooks the book calls ---------------------------------------------------------------------

    def held(self, order: FakeOrder, qty: Decimal) -> Decimal:
        """What to unlock when `qty` of a list's leg trades or ends: never what the list's
        other open legs still need (they share one reservation)."""
        ol = self.find(order.order_list_id)
        others = [o.orig_qty - o.executed_qty for o in ol.legs if o is not order and o.is_open]
        keep = max(others, default=D(0)) * ol.unit
        amount = max(D(0), min(qty * ol.unit, ol.reserved - keep))
        ol.reserved -= amount
        return amount

    def before_fill(self, order: FakeOrder) -> None:
        """One leg trades: the others are EXPIRED first (one cancels the other)."""
        if order.order_list_id < 0:
            return
        for other in self.find(order.order_list_id).legs:
            if other is not order and other.is_open:
                self.fake._close(other, "EXPIRED")

    def trigger(self, symbol: str) -> None:
        """The last price moved: stops it reached start working (and, market kinds, fill)."""
        fake = self.fake
        price = fake.prices[symbol]
        for order in list(fake.orders):
            if order.symbol != symbol or not order.is_open or order.working:
                continue
            if order.type not in STOP_TYPES or not fires(order, price):
                continue
            order.working = True
            order.working_time = order.update_time = _now()
            self.before_fill(order)
            left = order.orig_qty - order.executed_qty
            if order.type in STOP_MARKET_TYPES:
                fake._fill(order, left, price)
            elif (price >= order.price) if order.side == "SELL" else (price <= order.price):
                fake._fill(order, left, price)  # marketable at once: the book's price, taker

    def cancel(self, order: FakeOrder) -> None:
        """`DELETE /api/v3/order` on a leg cancels the whole list, as Binance does."""
        for leg in self.find(order.order_list_id).legs:
            if leg.is_open:
                self.fake._close(leg, "CANCELED")

    # --- stop orders on POST /api/v3/order ------------------------------------------------------

    def build_stop(
        self, p: dict[str, str], info: dict[str, Any], cid: str, price_now: Decimal
    ) -> FakeOrder:
        from tests.fakes.binance import BinanceError

        type_ = p["type"]
        if type_ not in self.fake.order_types(info["symbol"]):
            raise BinanceError(-1013, UNSUPPORTED[type_])
        order = self._leg(p, info, "", type_, p["side"], cid)
        if fires(order, price_now):
            raise BinanceError(-2010, "Order would trigger immediately.")
        return order

    def _leg(
        self, p: dict[str, str], info: dict[str, Any], prefix: str, type_: str, side: str, cid: str
    ) -> FakeOrder:
        """One order of `type_` from its parameters (`price`, `stopPrice`, `timeInForce`, or the
        OCO's `abovePrice`...): Binance's mandatory / not-required checks and filters."""
        from tests.fakes.binance import BinanceError, FakeOrder

        fake, symbol = self.fake, info["symbol"]

        def name(n: str) -> str:
            return prefix + n[0].upper() + n[1:] if prefix else n

        qty = fake._decimal(p, "quantity")
        if qty is None:
            raise BinanceError(-1102, "Mandatory parameter 'quantity' was not sent.")
        wants_price = type_ in STOP_LIMIT_TYPES or type_ == "LIMIT_MAKER"
        wants_stop, wants_tif = type_ in STOP_TYPES, type_ in STOP_LIMIT_TYPES
        for n, wanted in (("price", wants_price), ("stopPrice", wants_stop)):
            if p.get(name(n)) in (None, "") and wanted:
                raise BinanceError(
                    -1102,
                    f"Mandatory parameter '{name(n)}' was not sent, was empty/null, or malformed.",
                )
            if p.get(name(n)) not in (None, "") and not wanted:
                raise BinanceError(-1106, f"Parameter '{name(n)}' sent when not required.")
        tif = p.get(name("timeInForce"))
        if wants_tif and not tif:
            raise BinanceError(-1102, f"Mandatory parameter '{name('timeInForce')}' was not sent.")
        if tif and not wants_tif:
            raise BinanceError(-1114, "TimeInForce parameter sent when not required.")
        if tif and tif not in TIFS:
            raise BinanceError(-1115, "Invalid timeInForce.")
        price = fake._decimal(p, name("price")) or D(0)
        stop = fake._decimal(p, name("stopPrice")) or D(0)
        for level in (price, stop):
            if level:
                fake._check_price_filter(symbol, level)
        fake._check_lot(symbol, qty, market=type_ in STOP_MARKET_TYPES, from_quote=False)
        fake._check_notional(symbol, qty * (price or stop), type_ in STOP_MARKET_TYPES)
        order = FakeOrder(0, cid, symbol, side, type_, qty, price=price, time_in_force=tif)
        order.stop_price = stop
        if type_ in STOP_TYPES:
            order.working, order.working_time = False, -1
        return order

    # --- endpoints ------------------------------------------------------------------------------

    async def _new_oco(self, p: dict[str, str]) -> Any:
        from tests.fakes.binance import ERROR_MESSAGES, BinanceError

        fake = self.fake
        info = fake._market(p.get("symbol"))
        symbol, side = info["symbol"], p.get("side")
        if not side:
            raise BinanceError(-1102, "Mandatory parameter 'side' was not sent.")
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        if not info.get("ocoAllowed"):
            raise BinanceError(-2010, "OCO orders are not supported for this symbol")
        types = {}
        for where in ("above", "below"):
            type_ = p.get(f"{where}Type")
            if not type_:
                raise BinanceError(-1102, f"Mandatory parameter '{where}Type' was not sent.")
            if type_ not in OCO_TYPES:
                raise BinanceError(-1158, "Order type not supported in OCO.")
            types[where] = type_
        self._check_placement(side, types["above"], types["below"])
        list_cid = p.get("listClientOrderId") or secrets.token_hex(11)
        ids = {w: p.get(f"{w}ClientOrderId") or secrets.token_hex(11) for w in types}
        if any(ol.list_client_order_id == list_cid and ol.is_open for ol in self.lists):
            raise BinanceError(-2010, "Duplicate order sent.")
        taken = {o.client_order_id for o in fake.orders if o.is_open}
        if ids["above"] == ids["below"] or taken & set(ids.values()):
            raise BinanceError(-2010, "Duplicate order sent.")
        legs = {w: self._leg(p, info, w, types[w], side, ids[w]) for w in types}
        last = fake.prices[symbol]
        above, below = legs["above"], legs["below"]
        above_level = above.stop_price if side == "BUY" else _level(above)
        below_level = _level(below) if side == "BUY" else below.stop_price
        if not below_level < last < above_level:
            raise BinanceError(-2010, BAD_PRICES)
        qty = above.orig_qty
        base, quote = fake._assets(symbol)
        unit = D(1) if side == "SELL" else max(o.price or o.stop_price for o in legs.values())
        asset = base if side == "SELL" else quote
        if fake.balance(asset)[0] < qty * unit:
            raise BinanceError(-2010, ERROR_MESSAGES[-2010])
        # The contingent (stop) leg first, as Binance lists them.
        ordered = sorted(legs.values(), key=lambda o: o.type not in STOP_TYPES)
        ol = OrderList(self._next_id, list_cid, symbol, side, ordered, unit, qty * unit, _now())
        self._next_id += 1
        for leg in ordered:
            leg.order_id = fake._next_order_id
            fake._next_order_id += 1
            leg.order_list_id = ol.order_list_id
            leg.time = leg.update_time = ol.transaction_time
            if leg.working:
                leg.working_time = leg.time
            fake.orders.append(leg)
        free, locked = fake.balance(asset)
        fake.balances[asset] = [free - ol.reserved, locked + ol.reserved]
        self.lists.append(ol)
        out = ol.as_response()
        out["orderReports"] = [leg.as_list_report() for leg in ordered]
        return out

    @staticmethod
    def _check_placement(side: str, above: str, below: str) -> None:
        from tests.fakes.binance import BinanceError

        if above == below == "LIMIT_MAKER":
            raise BinanceError(-1168, "At least one OCO order must be contingent.")
        for where, type_ in (("above", above), ("below", below)):
            kind = type_ if type_ == "LIMIT_MAKER" else "LOSS" if type_ in LOSS else "PROFIT"
            wrong = MISPLACED.get((side, where, kind))
            if wrong is not None:
                raise BinanceError(*wrong)

    async def _query(self, p: dict[str, str]) -> Any:
        from tests.fakes.binance import BinanceError

        if not p.get("orderListId") and not p.get("origClientOrderId"):
            raise BinanceError(
                -1102,
                "Param 'origClientOrderId' or 'orderListId' must be sent, but both were "
                "empty/null!",
            )
        try:
            return self.find(p.get("orderListId"), p.get("origClientOrderId")).as_response()
        except KeyError:
            raise BinanceError(-2013, "Order list does not exist.") from None

    async def _cancel(self, p: dict[str, str]) -> Any:
        from tests.fakes.binance import BinanceError

        symbol = self.fake._market(p.get("symbol"))["symbol"]
        if not p.get("orderListId") and not p.get("listClientOrderId"):
            raise BinanceError(
                -1102,
                "Param 'listClientOrderId' or 'orderListId' must be sent, but both were "
                "empty/null!",
            )
        try:
            ol = self.find(p.get("orderListId"), p.get("listClientOrderId"))
        except KeyError:
            ol = None
        if ol is None or ol.symbol != symbol or not ol.is_open:
            raise BinanceError(-2011, "Unknown order list sent.")
        open_legs = [leg for leg in ol.legs if leg.is_open]
        for leg in open_legs:
            self.fake._close(leg, "CANCELED")
        ol.transaction_time = _now()
        out = ol.as_response()
        out["orderReports"] = [leg.as_cancel_response() for leg in ol.legs]
        return out

    async def _open(self, p: dict[str, str]) -> Any:
        return [ol.as_response() for ol in self.lists if ol.is_open]

    async def _all(self, p: dict[str, str]) -> Any:
        from_id = int(p.get("fromId") or 0)
        start, end = int(p.get("startTime") or 0), int(p.get("endTime") or 1 << 62)
        limit = min(int(p.get("limit") or 500), 1000)
        picked = [
            ol
            for ol in self.lists
            if ol.order_list_id >= from_id and start <= ol.transaction_time <= end
        ]
        return [ol.as_response() for ol in picked[:limit]]


def _level(order: FakeOrder) -> Decimal:
    """Where a limit / take-profit leg sits against the last price: a LIMIT_MAKER's price, a
    take-profit's stopPrice."""
    return order.price if order.type == "LIMIT_MAKER" else order.stop_price


def _now() -> int:
    from tests.fakes.binance import now_ms

    return now_ms()
