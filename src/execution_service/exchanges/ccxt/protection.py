"""A position's SL and TP resting at a ccxt venue (`VenueCapabilities.protection`).

`trigger_orders` (derivatives): each leg is a reduce-only trigger order of its own, through
ccxt's unified `stopLossPrice` / `takeProfitPrice`. Some venues keep trigger orders apart from
ordinary ones (Binance USDⓈ-M's algo orders, Bybit's conditional orders): they are looked up
with the venue's trigger params, and once one fired, the order it fired is what is reported (its
fills, average and fees); where the trigger order itself becomes the market order (Bybit), it
is. Where the venue amends a trigger order in place (`amends_triggers`, Bybit), a new level is
ccxt's `edit_order` with the new `triggerPrice`: the same order, never two nor none resting.

`oco` (spot): SL and TP as one OCO list through the venue's own endpoint (ccxt's implicit API),
which reserves the coins once for both legs and expires one when the other fills; a lone SL is a
stop order, a lone TP is left to the monitor (a resting limit would hold the coins an SL needs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from execution_service.enums import MarketType, OrderStatus, OrderType, Protection
from execution_service.exchanges.base import (
    ExchangeError,
    InvalidOrder,
    NotSupported,
    OrderResult,
    ProtectiveLeg,
    TemporaryError,
)
from execution_service.exchanges.ccxt.parsing import to_order
from execution_service.exchanges.ccxt.venues import CcxtVenue, order_params, order_ref
from execution_service.exchanges.values import plain, to_decimal

if TYPE_CHECKING:
    from execution_service.exchanges.ccxt.adapter import CcxtAdapter

T = TypeVar("T")
ZERO = Decimal(0)
Call = Callable[..., Awaitable[Any]]


class Protective:
    def __init__(self, adapter: CcxtAdapter, venue: CcxtVenue, call: Call) -> None:
        self._adapter, self._venue, self._call = adapter, venue, call

    def lookup_params(self, trigger: bool) -> dict[str, Any]:
        return dict(self._venue.trigger_params) if trigger else {}

    def cancel_params(self, trigger: bool) -> dict[str, Any]:
        params = self._venue.trigger_cancel_params
        return dict(self._venue.trigger_params if params is None else params) if trigger else {}

    async def holds_alone(self, symbol: str, kind: OrderType) -> bool:
        """Whether one leg of `kind` can rest alone at the venue for this market: anywhere
        trigger orders rest; on an OCO venue, an SL whose stop type the market lists."""
        protection = self._adapter.capabilities.protection
        if protection != Protection.oco:
            return protection != Protection.emulated
        needed = self._venue.lone_stop_types.get(MarketType(self._adapter.market_type))
        if kind != OrderType.stop or needed is None:
            return kind == OrderType.stop
        market = self._adapter.client.market(await self._adapter.venue_symbol(symbol))
        listed = (market.get("info") or {}).get("orderTypes")
        return listed is None or needed in listed

    async def place(
        self, symbol: str, side: str, amount: Decimal, legs: list[ProtectiveLeg], list_id: str
    ) -> list[OrderResult]:
        kind = self._adapter.capabilities.protection
        if kind == Protection.emulated or not legs:
            raise NotSupported(f"{self._adapter.exchange_id}: no protective orders held here")
        venue_symbol = await self._adapter.venue_symbol(symbol)
        ex = self._adapter.client
        qty = ex.amount_to_precision(venue_symbol, plain(amount))
        if to_decimal(qty) is None or to_decimal(qty) == 0:
            raise InvalidOrder(f"{symbol}: {amount} rounds to nothing at the market's step")
        if kind == Protection.oco and len(legs) == 2:
            return await self._oco(symbol, venue_symbol, side, qty, legs, list_id)
        if len(legs) != 1:
            raise InvalidOrder("one trigger order per call")
        leg = legs[0]
        if kind == Protection.oco and leg.type != OrderType.stop:
            raise NotSupported(f"{self._adapter.exchange_id}: a lone TP is not held here")
        return [await self._trigger(symbol, venue_symbol, side, qty, leg)]

    async def _trigger(
        self, symbol: str, venue_symbol: str, side: str, qty: str, leg: ProtectiveLeg
    ) -> OrderResult:
        ex = self._adapter.client
        derivatives = self._adapter.capabilities.reduce_only
        params = order_params(
            self._venue, self._adapter.market_type, leg.client_order_id, derivatives
        )
        if leg.type == OrderType.trailing:
            params["trailingPercent"] = plain(leg.price)  # Binance: callbackRate, in percent
        else:
            level = ex.price_to_precision(venue_symbol, plain(leg.price))
            params["stopLossPrice" if leg.type == OrderType.stop else "takeProfitPrice"] = level
        raw = await self._call(
            lambda: ex.create_order(venue_symbol, "market", side, qty, None, params),
            unknown_outcome=True,
        )
        order = to_order(
            raw,
            symbol,
            side=side,
            type=leg.type,
            client_order_id=leg.client_order_id,
            amount=to_decimal(qty),
        )
        if raw.get("status") is None:  # ids only (Bybit): its state is read back
            order = await self._read_back(symbol, order, leg)
        order.type = leg.type
        return order

    async def amend(
        self, symbol: str, side: str, leg: ProtectiveLeg, order_id: str | None
    ) -> OrderResult:
        """A resting stop or target leg takes `leg.price` as its trigger price, in place."""
        if not self._adapter.capabilities.amends_triggers or leg.type == OrderType.trailing:
            raise NotSupported(f"{self._adapter.exchange_id}: trigger orders are not amended")
        venue_symbol = await self._adapter.venue_symbol(symbol)
        ex = self._adapter.client
        ref, params = order_ref(self._venue, order_id, leg.client_order_id)
        level = ex.price_to_precision(venue_symbol, plain(leg.price))
        params["triggerPrice"] = level
        sent = OrderResult(
            order_id or "", leg.client_order_id, symbol, side, leg.type, OrderStatus.open, ZERO
        )
        try:
            await self._call(
                lambda: ex.edit_order(ref, venue_symbol, "market", side, None, None, params),
                unknown_outcome=True,
            )
        except TemporaryError:
            # The answer was lost: an amend sets a level, so the leg read back says whether
            # the venue took it.
            order = await self._read_back(symbol, sent, leg)
            if order.price != to_decimal(level):
                raise
        else:
            order = await self._read_back(symbol, sent, leg)
        order.type = leg.type
        return order

    async def _read_back(self, symbol: str, sent: OrderResult, leg: ProtectiveLeg) -> OrderResult:
        """The venue answered with ids only: the leg's state is read, never guessed (`pending`
        if that read fails: the order tracker finds it by client order id). `price` is the
        trigger price the venue holds."""
        try:
            order = await self._adapter.fetch_order(
                symbol,
                order_id=sent.order_id or None,
                client_order_id=leg.client_order_id,
                trigger=True,
            )
        except ExchangeError:
            sent.status = OrderStatus.pending
            return sent
        level = to_decimal(order.raw.get("triggerPrice"))
        order.price = level if level else order.price
        return order

    async def _oco(
        self,
        symbol: str,
        venue_symbol: str,
        side: str,
        qty: str,
        legs: list[ProtectiveLeg],
        list_id: str,
    ) -> list[OrderResult]:
        """Binance spot `orderList/oco`: for a sell (a long's protection) the TP is the limit
        leg above the price and the SL the stop leg below; for a buy, the other way round."""
        ex = self._adapter.client
        sl = next(leg for leg in legs if leg.type == OrderType.stop)
        tp = next(leg for leg in legs if leg.type != OrderType.stop)
        stop = {
            "Type": "STOP_LOSS",
            "StopPrice": ex.price_to_precision(venue_symbol, plain(sl.price)),
        }
        limit = {
            "Type": "LIMIT_MAKER",
            "Price": ex.price_to_precision(venue_symbol, plain(tp.price)),
        }
        above, below = (limit, stop) if side == "sell" else (stop, limit)
        above_id, below_id = (tp, sl) if side == "sell" else (sl, tp)
        request: dict[str, Any] = {
            "symbol": ex.market(venue_symbol)["id"],
            "side": side.upper(),
            "quantity": qty,
            "listClientOrderId": list_id,
            "aboveClientOrderId": above_id.client_order_id,
            "belowClientOrderId": below_id.client_order_id,
            "newOrderRespType": "FULL",
        }
        request.update({f"above{k}": v for k, v in above.items()})
        request.update({f"below{k}": v for k, v in below.items()})
        method = getattr(ex, self._venue.oco_method)
        raw = await self._call(lambda: method(request), unknown_outcome=True)
        reports = {r.get("clientOrderId"): r for r in raw.get("orderReports") or []}
        results = []
        for leg in (sl, tp):
            report = reports.get(leg.client_order_id) or {}
            parsed = ex.parse_order(report, ex.market(venue_symbol)) if report else {}
            order = to_order(
                parsed,
                symbol,
                side=side,
                type=leg.type,
                client_order_id=leg.client_order_id,
                amount=to_decimal(qty),
            )
            order.type = leg.type
            if not report:  # the list was accepted; this leg's state is read back later
                order.status = OrderStatus.pending
            results.append(order)
        return results

    def fired_order_id(self, raw: dict[str, Any]) -> str | None:
        """A trigger order kept apart that fired: the id of the order it placed."""
        key = self._venue.fired_order_key
        info = raw.get("info") or {}
        fired = info.get(key) if key else None
        return str(fired) if fired not in (None, "", 0, "0") else None


class ProtectionCalls:
    """`CcxtAdapter`'s protective-order calls (`Protective` does the work)."""

    _protective: Protective

    async def holds_alone(self, symbol: str, kind: OrderType) -> bool:
        return await self._protective.holds_alone(symbol, kind)

    async def place_protection(
        self, symbol: str, side: str, amount: Decimal, legs: list[ProtectiveLeg], list_id: str
    ) -> list[OrderResult]:
        return await self._protective.place(symbol, side, amount, legs, list_id)

    async def amend_protection(
        self, symbol: str, side: str, leg: ProtectiveLeg, order_id: str | None
    ) -> OrderResult:
        return await self._protective.amend(symbol, side, leg, order_id)
