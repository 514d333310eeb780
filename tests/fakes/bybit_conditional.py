"""The fake Bybit's conditional orders (API v5, linear perpetuals): what a venue-held SL or TP
rests as.

Shaped on Bybit's v5 reference (Place Order, Amend Order, Cancel Order, Get Open & Closed
Orders) and on what ccxt 4.5 sends: `POST /v5/order/create` with `triggerPrice` and
`triggerDirection` (1: fires when the last price rises to it, 2: when it falls to it),
`orderType` Market and `reduceOnly` true (ccxt's `stopLossPrice` / `takeProfitPrice`); answered
with the ids only. The order rests `Untriggered` (`stopOrderType` Stop) and holds no margin.
When the last price reaches it, the same order (same `orderId` and `orderLinkId`) is triggered
and becomes a market order: `Filled`, with its own `cumExecQty`, `avgPrice` and `cumExecFee`.
Reduce-only is enforced at placement (110017 with no position to reduce) and when it fires (no
position left: `Cancelled`, `cancelType` CancelByReduceOnly, nothing traded).

`GET /v5/order/realtime` takes `orderFilter`: `StopOrder` for conditional orders only (ccxt's
`trigger`), `Order` for ordinary ones, both when absent (a unified account). Cancelling an
untriggered one makes it `Deactivated`. `POST /v5/order/amend` sets a new `triggerPrice` on an
untriggered order in place (the same ids); a triggered, filled or cancelled one is refused
110001 (too late), a level on the wrong side of the last price 110092 / 110093, as Bybit does.
The triggering price is the last price (`triggerBy` LastPrice; the fake has one price).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tests.fakes.venue import Book, Call, Refusal, Trigger, now_ms, plain

if TYPE_CHECKING:
    from tests.fakes.bybit import FakeBybit

D = Decimal
# (side, triggerDirection) -> the book's trigger kind: a sell fires falling as a stop.
KINDS = {("sell", 2): "stop", ("sell", 1): "take_profit", ("buy", 1): "stop"}
KINDS[("buy", 2)] = "take_profit"
CODES = {
    "too_late": (110001, "order not exists or too late to replace"),
    "expect_rising": (110092, "expect Rising, but trigger_price <= current"),
    "expect_falling": (110093, "expect Falling, but trigger_price >= current"),
}


@dataclass(frozen=True)
class ConditionalOrder:
    """A test's view of one conditional order, in Bybit's terms."""

    order_id: str
    order_link_id: str
    symbol: str
    side: str  # Buy / Sell
    trigger_price: Decimal
    trigger_direction: int
    qty: Decimal
    reduce_only: bool
    order_status: str  # Untriggered, Deactivated, Filled, Cancelled, Rejected, ...

    @property
    def live(self) -> bool:
        return self.order_status == "Untriggered"


class ConditionalOrders:
    """The conditional side of the fake's linear book (its `triggers`)."""

    def __init__(self, fake: FakeBybit) -> None:
        self.fake = fake
        self.direction: dict[str, int] = {}

    @property
    def book(self) -> Book:
        return self.fake.books.linear

    def views(self, *, live_only: bool = False) -> list[ConditionalOrder]:
        views = [self.view(t) for t in self.book.triggers]
        return [v for v in views if v.live or not live_only]

    def view(self, t: Trigger) -> ConditionalOrder:
        assert t.trigger is not None and t.qty is not None
        return ConditionalOrder(
            t.id,
            t.client_id,
            t.inst.id,
            t.side.capitalize(),
            t.trigger,
            self.direction[t.id],
            t.qty,
            t.reduce_only,
            self.status(t),
        )

    def find(self, order_id: str | None, link_id: str | None) -> Trigger | None:
        for t in self.book.triggers:
            if (order_id and t.id == order_id) or (not order_id and t.client_id == link_id):
                return t
        return None

    def taken(self, link_id: str) -> bool:
        return any(t.client_id == link_id for t in self.book.triggers)

    # --- endpoints (FakeBybit routes here when an order is conditional) ----------------------

    def create(self, call: Call, link: str) -> dict[str, Any]:
        p = call.params
        if p.get("category") != "linear":
            raise Refusal("param", "this fake serves conditional orders on linear only")
        inst = self.book.instrument(p.get("symbol"))
        side, kind = str(p.get("side", "")).lower(), str(p.get("orderType", "")).lower()
        if kind != "market":
            raise Refusal("param", "this fake serves conditional market orders only")
        direction = int(p.get("triggerDirection") or 0)
        if (side, direction) not in KINDS:
            raise Refusal("param", "triggerDirection must be 1 or 2")
        level = D(str(p["triggerPrice"]))
        self._check_side(direction, level, self.book.prices[inst.id])
        reduce_only = p.get("reduceOnly") in (True, "true")
        qty = D(str(p.get("qty") or "0"))
        t = Trigger(str(uuid.uuid4()), link, inst, side, KINDS[(side, direction)], qty, level)
        t.reduce_only = reduce_only
        # Fired, it trades as a market order of the book's; on Bybit that order is this one.
        t.order_client_id = f"cond-{t.id}"
        self.book.add_trigger(t)  # lot, tick, reduce-only (110017 with nothing to reduce)
        self.direction[t.id] = direction
        return {"orderId": t.id, "orderLinkId": t.client_id}

    def amend(self, call: Call) -> dict[str, Any]:
        p = call.params
        book = self.fake.books.of(p.get("category"))
        t = self.find(p.get("orderId") or None, p.get("orderLinkId") or None)
        if t is None or book is not self.book or t.inst.id != p.get("symbol"):
            ordinary = book.find(p.get("orderId") or None, p.get("orderLinkId") or None)
            if ordinary is not None:
                raise Refusal("param", "this fake amends conditional orders only")
            raise Refusal("not_found", "no such order")
        if t.status != "new":
            raise Refusal("too_late", "the order already triggered or was cancelled")
        refused = self.fake.take_reject(call.method, call.path)  # `refuse_next_amends`
        if refused is not None:
            raise refused
        if p.get("qty") or p.get("price") or not p.get("triggerPrice"):
            raise Refusal("param", "this fake amends the trigger price only")
        level = D(str(p["triggerPrice"]))
        if level <= 0 or level % t.inst.tick != 0:
            raise Refusal("tick_size", f"trigger price {level} is not on the tick")
        self._check_side(self.direction[t.id], level, self.book.prices[t.inst.id])
        t.trigger, t.updated = level, now_ms()
        return {"orderId": t.id, "orderLinkId": t.client_id}

    def cancel(self, t: Trigger) -> dict[str, Any]:
        if t.status != "new":
            raise Refusal("not_open", "the order already triggered or was cancelled")
        self.book.cancel_trigger(t)
        return {"orderId": t.id, "orderLinkId": t.client_id}

    @staticmethod
    def _check_side(direction: int, level: Decimal, last: Decimal) -> None:
        if direction == 1 and level <= last:
            raise Refusal("expect_rising", f"trigger {plain(level)} <= current {plain(last)}")
        if direction == 2 and level >= last:
            raise Refusal("expect_falling", f"trigger {plain(level)} >= current {plain(last)}")

    # --- how an order reads ------------------------------------------------------------------

    def status(self, t: Trigger) -> str:
        if t.status == "triggered":
            order = self.book.find(t.order_id)
            if order is None:
                return "Triggered"
            return {"filled": "Filled", "partially_filled": "PartiallyFilled"}.get(
                order.status, "New"
            )
        return {"new": "Untriggered", "canceled": "Deactivated", "expired": "Cancelled"}.get(
            t.status, "Rejected"
        )

    def detail(self, t: Trigger) -> dict[str, Any]:
        fired = self.book.find(t.order_id) if t.order_id else None
        qty = t.qty or D(0)
        filled = fired.filled if fired else D(0)
        average = fired.average if fired else None
        cancel_type = {"canceled": "CancelByUser", "expired": "CancelByReduceOnly"}
        detail: dict[str, Any] = {
            "orderId": t.id,
            "orderLinkId": t.client_id,
            "blockTradeId": "",
            "symbol": t.inst.id,
            "price": "0",
            "qty": plain(qty),
            "side": t.side.capitalize(),
            "isLeverage": "",
            "positionIdx": 0,
            "orderStatus": self.status(t),
            "createType": "CreateByUser",
            "cancelType": cancel_type.get(t.status, "UNKNOWN"),
            "rejectReason": "EC_NoError",
            "avgPrice": plain(average) if average is not None else "",
            "leavesQty": plain(qty - filled) if t.status in ("new", "triggered") else "0",
            "leavesValue": "0",
            "cumExecQty": plain(filled),
            "cumExecValue": plain(fired.value) if fired else "0",
            "cumExecFee": plain(fired.fee) if fired else "0",
            "timeInForce": "IOC",
            "orderType": "Market",
            "stopOrderType": "Stop",
            "orderIv": "",
            "triggerPrice": plain(t.trigger or D(0)),
            "takeProfit": "0",
            "stopLoss": "0",
            "tpslMode": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": self.direction[t.id],
            "triggerBy": "LastPrice",
            "lastPriceOnCreated": "",
            "reduceOnly": t.reduce_only,
            "closeOnTrigger": False,
            "placeType": "",
            "smpType": "None",
            "createdTime": str(t.created),
            "updatedTime": str(max(t.updated, fired.updated if fired else 0)),
        }
        if fired is not None and fired.fills:
            detail["cumFeeDetail"] = {fired.fee_ccy: plain(fired.fee)}
        return detail
