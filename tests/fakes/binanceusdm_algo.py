"""The fake Binance USDⓈ-M's Algo Order API: since 2025-12-09 Binance takes conditional orders
(STOP_MARKET, TAKE_PROFIT_MARKET, TRAILING_STOP_MARKET, ...) only there, and `POST /fapi/v1/order`
refuses them with -4120.

Shaped on Binance's derivatives reference (New / Query / Cancel Algo Order, Current All Algo Open
Orders, Query All Algo Orders) and ccxt's own parsing of it: the request names the type `type`
and the client id `clientAlgoId`; the answer names them `orderType` and `clientAlgoId`, its state
`algoStatus` (NEW, CANCELED, TRIGGERING, TRIGGERED, FINISHED, REJECTED, EXPIRED), and once fired
the market order it became `actualOrderId` (a plain order at `/fapi/v1/order`, with its trades at
`/fapi/v1/userTrades`). An algo order answer carries no executed amount nor average price: those
are the actual order's. Cancelling answers `{"algoId", "clientAlgoId", "code": "200", "msg":
"success"}`. Request weights (Binance's): 1 each; `openAlgoOrders` 40 without a symbol;
`allAlgoOrders` 5 (the fake does not count them).

Only market conditional orders are served (the limit kinds STOP / TAKE_PROFIT are refused
-4120); the triggering price is the last price (`workingType` CONTRACT_PRICE; MARK_PRICE is taken
and treated alike, the fake has one price).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tests.fakes.venue import Call, Refusal, Trigger, plain

if TYPE_CHECKING:
    from tests.fakes.binanceusdm import FakeBinanceUsdm

D = Decimal
KINDS = {"STOP_MARKET": "stop", "TAKE_PROFIT_MARKET": "take_profit"}
KINDS["TRAILING_STOP_MARKET"] = "trailing"
TYPES = {kind: name for name, kind in KINDS.items()}
CONDITIONAL = ("STOP", "TAKE_PROFIT", *KINDS)


@dataclass(frozen=True)
class AlgoOrder:
    """A test's view of one algo order, in Binance's terms."""

    algo_id: str
    client_algo_id: str
    symbol: str
    side: str  # BUY / SELL
    order_type: str  # STOP_MARKET, TAKE_PROFIT_MARKET, TRAILING_STOP_MARKET
    trigger_price: Decimal | None
    quantity: Decimal | None  # None: closePosition
    reduce_only: bool
    algo_status: str
    actual_order_id: str


def algo_status(fake: FakeBinanceUsdm, t: Trigger) -> str:
    if t.status == "triggered":
        order = fake.book.find(t.order_id)
        return "TRIGGERED" if order is not None and order.is_open else "FINISHED"
    return {"new": "NEW", "canceled": "CANCELED", "expired": "EXPIRED"}.get(t.status, "REJECTED")


class AlgoOrderApi:
    """The endpoints, over the fake's book (its `triggers`)."""

    def __init__(self, fake: FakeBinanceUsdm, client_id: re.Pattern[str]) -> None:
        self.fake, self.client_id = fake, client_id
        self._ids = itertools.count(3000000000000001)
        fake.book.new_order_id = lambda: str(next(fake.order_ids))

    @property
    def routes(self) -> dict[tuple[str, str], tuple[bool, Any]]:
        return {
            ("POST", "/fapi/v1/algoOrder"): (True, self._new),
            ("GET", "/fapi/v1/algoOrder"): (True, self._query),
            ("DELETE", "/fapi/v1/algoOrder"): (True, self._cancel),
            ("GET", "/fapi/v1/openAlgoOrders"): (True, self._open),
            ("GET", "/fapi/v1/allAlgoOrders"): (True, self._all),
        }

    def view(self, t: Trigger) -> AlgoOrder:
        return AlgoOrder(
            t.id,
            t.client_id,
            t.inst.id,
            t.side.upper(),
            TYPES[t.kind],
            t.trigger,
            t.qty,
            t.reduce_only or t.close_position,
            algo_status(self.fake, t),
            t.order_id,
        )

    # --- endpoints ---------------------------------------------------------------------------

    async def _new(self, call: Call) -> dict[str, Any]:
        p, book = call.params, self.fake.book
        inst = book.instrument(p.get("symbol"))
        if p.get("algoType") != "CONDITIONAL":
            raise Refusal("param", "algoType")
        cid = str(p.get("clientAlgoId") or f"algo{next(self._ids)}")
        if not self.client_id.fullmatch(cid):
            raise Refusal("client_id", "clientAlgoId")
        if any(t.client_id == cid and t.status == "new" for t in book.triggers):
            raise Refusal("duplicate_client_id", "duplicate")
        refused = self.fake.take_reject(call.method, call.path)  # `refuse_next_algo_orders`
        if refused is not None:
            raise refused
        if p.get("positionSide", "BOTH") != "BOTH" and not book.hedge_mode:
            raise Refusal("hedge", "one-way mode takes positionSide BOTH")
        kind = KINDS.get(str(p.get("type", "")))
        if kind is None:
            raise Refusal("order_type", f"type {p.get('type')} is not served")
        close = _flag(p.get("closePosition"))
        reduce = _flag(p.get("reduceOnly"))
        if close and (p.get("quantity") or reduce):
            raise Refusal("param", "closePosition takes neither quantity nor reduceOnly")
        if not close and not p.get("quantity"):
            raise Refusal("param", "quantity")
        trigger = Trigger(
            str(next(self._ids)),
            cid,
            inst,
            str(p.get("side", "")).lower(),
            kind,
            None if close else _decimal(p["quantity"]),
            _decimal(p["triggerPrice"]) if p.get("triggerPrice") else None,
            reduce_only=reduce,
            callback=_decimal(p["callbackRate"]) if p.get("callbackRate") else None,
            activate=_decimal(p["activatePrice"]) if p.get("activatePrice") else None,
        )
        # The order it becomes has a client id of its own (not verified against Binance): find
        # it by `actualOrderId`.
        trigger.order_client_id = f"algo-{trigger.id}"
        if kind == "trailing" and not D("0.1") <= (trigger.callback or 0) <= 10:
            raise Refusal("param", "callbackRate is 0.1 to 10 (percent)")
        book.add_trigger(trigger)
        return self.answer(trigger)

    def _lookup(self, call: Call) -> Trigger:
        p = call.params
        algo_id = str(p.get("algoId") or p.get("algoid") or "")
        cid = str(p.get("clientAlgoId") or p.get("clientalgoid") or "")
        if not algo_id and not cid:
            raise Refusal("param", "algoId or clientAlgoId")
        found = [
            t
            for t in self.fake.book.triggers
            if (t.id == algo_id if algo_id else t.client_id == cid)
            and (not p.get("symbol") or t.inst.id == p["symbol"])
        ]
        if not found:
            raise Refusal("not_found", "no such algo order")
        return found[-1]

    async def _query(self, call: Call) -> dict[str, Any]:
        return self.answer(self._lookup(call))

    async def _cancel(self, call: Call) -> dict[str, Any]:
        try:
            trigger = self._lookup(call)
        except Refusal:
            raise Refusal("not_open", "unknown algo order") from None
        self.fake.book.cancel_trigger(trigger)
        return {
            "algoId": int(trigger.id),
            "clientAlgoId": trigger.client_id,
            "code": "200",
            "msg": "success",
        }

    async def _open(self, call: Call) -> list[dict[str, Any]]:
        p = call.params
        symbol = p.get("symbol")
        if symbol:
            self.fake.book.instrument(symbol)
        return [
            self.answer(t)
            for t in self.fake.book.triggers
            if t.status == "new"
            and (not symbol or t.inst.id == symbol)
            and (not p.get("algoId") or t.id == str(p["algoId"]))
        ]

    async def _all(self, call: Call) -> list[dict[str, Any]]:
        p = call.params
        inst = self.fake.book.instrument(p.get("symbol"))
        since, until = int(p.get("startTime") or 0), int(p.get("endTime") or 2**62)
        first = int(p.get("algoId") or 0)
        rows = [
            t
            for t in self.fake.book.triggers
            if t.inst is inst and int(t.id) >= first and since <= t.created <= until
        ]
        return [self.answer(t) for t in rows[-min(int(p.get("limit") or 500), 1000) :]]

    def answer(self, t: Trigger) -> dict[str, Any]:
        order = self.fake.book.find(t.order_id) if t.order_id else None
        average = order.average if order is not None else None
        close = t.close_position
        return {
            "algoId": int(t.id),
            "clientAlgoId": t.client_id,
            "algoType": "CONDITIONAL",
            "orderType": TYPES[t.kind],
            "symbol": t.inst.id,
            "side": t.side.upper(),
            "positionSide": "BOTH",
            "timeInForce": "GTE_GTC" if close else "GTC",
            "quantity": "0" if t.qty is None else plain(t.qty),
            "algoStatus": algo_status(self.fake, t),
            "actualOrderId": t.order_id,
            "actualPrice": plain(average) if average is not None else "0",
            "triggerPrice": plain(t.trigger) if t.trigger is not None else "0",
            "price": "0",
            "icebergQuantity": None,
            "tpTriggerPrice": "0",
            "tpPrice": "0",
            "slTriggerPrice": "0",
            "slPrice": "0",
            "tpOrderType": "",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": "CONTRACT_PRICE",
            "priceMatch": "NONE",
            "closePosition": close,
            "priceProtect": False,
            "reduceOnly": t.reduce_only or close,
            **(
                {
                    "activatePrice": plain(t.activate) if t.activate is not None else "",
                    "callbackRate": plain(t.callback or D(0)),
                }
                if t.kind == "trailing"
                else {}
            ),
            "createTime": t.created,
            "updateTime": t.updated,
            "triggerTime": t.fired,
            "goodTillDate": 0,
        }


def _flag(value: Any) -> bool:
    return str(value).lower() == "true"


def _decimal(value: Any) -> Decimal:
    try:
        return D(str(value))
    except ArithmeticError:
        raise Refusal("param", f"not a number: {value!r}") from None
