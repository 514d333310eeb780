"""What the fake OKX, Bybit and Binance USDⓈ-M venues share: one trading account's book (spot
balances, USDT-margined one-way perpetual positions, orders, fills, funding, liquidation) and
the HTTP plumbing (recording every request, refusing and counting unknown endpoints, holding an
answer back, refusing the next orders). Each venue module adds only its wire format: routes,
signature check, ids, field names and error codes.

The book's rules are the venues' own: amounts on the lot step and above the minimum, prices on
the tick, spot funds held, margin at the account's leverage for what an order opens (plus its
fee), reduce-only orders that may only shrink the position, a fee on every fill (taken in the
received asset on spot, in the settlement currency on swaps).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.server import LoopbackServer

D = Decimal
ZERO, ONE, MILLION = D(0), D(1), D(1000000)
MAINTENANCE = D("0.004")  # the maintenance margin rate of a first risk tier


def now_ms() -> int:
    return int(time.time() * 1000)


def plain(value: Decimal) -> str:
    """A decimal as venues print it: no exponent, no trailing zeros."""
    text = f"{value.normalize():f}"
    return text if text != "-0" else "0"


class Refusal(Exception):
    """The book refuses: `kind` is what the venue module turns into its own code and text."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


@dataclass(frozen=True)
class Instrument:
    id: str  # the venue's own id: BTC-USDT-SWAP, BTCUSDT
    base: str
    quote: str
    swap: bool
    lot: Decimal  # the amount step (contracts on a swap)
    min_qty: Decimal
    tick: Decimal
    contract_size: Decimal = ONE
    max_qty: Decimal = MILLION
    min_notional: Decimal = ZERO
    max_leverage: int = 100
    inverse: bool = False
    maintenance_rate: Decimal = MAINTENANCE


@dataclass
class Fill:
    id: int
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_ccy: str
    pnl: Decimal  # the gross PnL this fill realised (swaps)
    time: int = field(default_factory=now_ms)


@dataclass
class Order:
    id: str
    client_id: str
    inst: Instrument
    side: str  # buy / sell
    type: str  # market / limit
    qty: Decimal
    price: Decimal | None
    reduce_only: bool = False
    status: str = "new"  # new, partially_filled, filled, canceled
    source: str = "api"  # api, liquidation, hand
    leverage: int = 1
    locked: Decimal = ZERO  # what a resting order holds (quote, or base for a spot sell)
    fills: list[Fill] = field(default_factory=list)
    created: int = field(default_factory=now_ms)
    updated: int = field(default_factory=now_ms)

    @property
    def filled(self) -> Decimal:
        return sum((f.qty for f in self.fills), ZERO)

    @property
    def value(self) -> Decimal:
        """What was traded, in the quote: fills' amount x price x contract size."""
        return sum((f.qty * f.price for f in self.fills), ZERO) * self.inst.contract_size

    @property
    def average(self) -> Decimal | None:
        filled = self.filled
        if not filled:
            return None
        return sum((f.qty * f.price for f in self.fills), ZERO) / filled

    @property
    def fee(self) -> Decimal:
        return sum((f.fee for f in self.fills), ZERO)

    @property
    def fee_ccy(self) -> str:
        return self.fills[0].fee_ccy if self.fills else self.inst.quote

    @property
    def pnl(self) -> Decimal:
        return sum((f.pnl for f in self.fills), ZERO)

    @property
    def is_open(self) -> bool:
        return self.status in ("new", "partially_filled")


@dataclass
class Trigger:
    """A conditional order resting at the venue, apart from the order book: it holds no margin
    and, when the last price crosses it, becomes a market order (`order_id`). `qty` None closes
    the whole position. Kinds: `stop` (a sell fires at or under `trigger`, a buy at or over),
    `take_profit` (the other way round), `trailing` (fires once the price comes back
    `callback` percent from its best since `activate` was reached)."""

    id: str
    client_id: str
    inst: Instrument
    side: str  # buy / sell
    kind: str  # stop, take_profit, trailing
    qty: Decimal | None
    trigger: Decimal | None
    reduce_only: bool = False
    callback: Decimal | None = None  # percent
    activate: Decimal | None = None
    best: Decimal | None = None  # the trailing stop's best price since it activated
    status: str = "new"  # new, triggered, canceled, expired, rejected
    order_id: str = ""  # the market order it became
    order_client_id: str = ""  # that order's client id (default: the trigger's own)
    created: int = field(default_factory=now_ms)
    updated: int = field(default_factory=now_ms)
    fired: int = 0

    @property
    def close_position(self) -> bool:
        return self.qty is None

    def crossed(self, price: Decimal) -> bool:
        """Whether `price` fires it (a trailing stop first follows the price)."""
        sell = self.side == "sell"
        if self.kind == "trailing":
            if self.best is None:
                if self.activate is not None and (
                    price < self.activate if sell else price > self.activate
                ):
                    return False
                self.best = price
            self.best = max(self.best, price) if sell else min(self.best, price)
            rate = (self.callback or ZERO) / 100
            self.trigger = self.best * (1 - rate) if sell else self.best * (1 + rate)
        if self.trigger is None:
            return False
        if (self.kind == "take_profit") == sell:
            return price >= self.trigger
        return price <= self.trigger


@dataclass
class Position:
    """One-way: one net position per instrument; `qty` is signed (contracts, + long)."""

    inst: Instrument
    qty: Decimal = ZERO
    entry: Decimal = ZERO
    margin: Decimal = ZERO
    leverage: int = 1
    realized: Decimal = ZERO  # gross PnL of what closed so far
    fees: Decimal = ZERO  # every fill's fee, open and close
    funding: Decimal = ZERO
    closed_qty: Decimal = ZERO
    closed_value: Decimal = ZERO  # closed contracts x close price
    opened: int = field(default_factory=now_ms)
    updated: int = field(default_factory=now_ms)

    @property
    def side(self) -> str:
        return "long" if self.qty > 0 else "short"

    def liquidation_price(self) -> Decimal:
        """Isolated, one-way: the price where margin plus PnL falls to the maintenance margin."""
        rate, lev = self.inst.maintenance_rate, D(self.leverage)
        if self.qty > 0:
            raw = self.entry * (1 - 1 / lev + rate)
        else:
            raw = self.entry * (1 + 1 / lev - rate)
        return raw.quantize(self.inst.tick, rounding=ROUND_DOWN)

    def unrealized(self, mark: Decimal) -> Decimal:
        return (mark - self.entry) * self.qty * self.inst.contract_size


@dataclass
class Closed:
    """A position that went to zero: the venue's own record of it (positions history)."""

    id: str
    inst: Instrument
    side: str  # long / short
    qty: Decimal  # the most it held
    entry: Decimal
    close_price: Decimal
    pnl: Decimal  # gross
    fees: Decimal  # open and close
    close_fee: Decimal
    funding: Decimal
    kind: str  # close, liquidation
    opened: int
    closed: int = field(default_factory=now_ms)
    order_id: str = ""
    leverage: int = 1


@dataclass
class Bill:
    id: str
    inst: Instrument
    amount: Decimal  # received +, paid -
    ccy: str
    time: int = field(default_factory=now_ms)
    rate: Decimal = ZERO


class Book:
    """One account at one venue. Spot and swaps share its balances (a unified account)."""

    def __init__(
        self,
        instruments: list[Instrument],
        prices: dict[str, Decimal],
        balances: dict[str, Decimal],
        *,
        spot_fee: Decimal,
        swap_fee: Decimal,
        default_leverage: int = 10,
        fee_in_received: bool = True,
    ) -> None:
        self.instruments = {i.id: i for i in instruments}
        self.spot_fee, self.swap_fee = spot_fee, swap_fee
        self.fee_in_received = fee_in_received
        self.default_leverage = default_leverage
        self.prices = dict(prices)
        self.balances: dict[str, list[Decimal]] = {a: [v, ZERO] for a, v in balances.items()}
        self.orders: list[Order] = []
        self.positions: dict[str, Position] = {}
        self.closed: list[Closed] = []
        self.bills: list[Bill] = []
        self.leverage: dict[str, int] = {}
        self.margin_mode: dict[str, str] = {}
        self.hedge_mode = False
        self._ids = itertools.count(1)
        self.triggers: list[Trigger] = []
        self.new_order_id: Callable[[], str] = lambda: str(self.next_id())

    def next_id(self) -> int:
        return next(self._ids)

    # --- reads -----------------------------------------------------------------------------

    def instrument(self, inst_id: str | None) -> Instrument:
        inst = self.instruments.get(inst_id or "")
        if inst is None:
            raise Refusal("unknown_symbol", f"instrument {inst_id!r} does not exist")
        return inst

    def balance(self, asset: str) -> tuple[Decimal, Decimal]:
        free, locked = self.balances.get(asset, [ZERO, ZERO])
        return free, locked

    def margin_in_use(self, asset: str) -> Decimal:
        return sum((p.margin for p in self.positions.values() if p.inst.quote == asset), ZERO)

    def upl(self, asset: str) -> Decimal:
        return sum(
            (
                p.unrealized(self.prices[p.inst.id])
                for p in self.positions.values()
                if p.inst.quote == asset
            ),
            ZERO,
        )

    def leverage_of(self, inst: Instrument) -> int:
        return self.leverage.get(inst.id, self.default_leverage)

    def find(self, order_id: str | None = None, client_id: str | None = None) -> Order | None:
        if order_id:
            return next((o for o in self.orders if o.id == str(order_id)), None)
        if client_id:
            return next((o for o in reversed(self.orders) if o.client_id == client_id), None)
        return None

    # --- orders ----------------------------------------------------------------------------

    def place(
        self,
        inst: Instrument,
        side: str,
        type_: str,
        qty: Decimal,
        price: Decimal | None,
        client_id: str,
        *,
        reduce_only: bool = False,
        source: str = "api",
        order_id: str | None = None,
    ) -> Order:
        """Check, book and (if it trades now) fill an order; `Refusal` before anything moves."""
        if side not in ("buy", "sell") or type_ not in ("market", "limit"):
            raise Refusal("param", f"unsupported order {side} {type_}")
        self._check_qty(inst, qty)
        now = self.prices[inst.id]
        if type_ == "limit" and (price is None or price <= 0 or price % inst.tick != 0):
            raise Refusal("tick_size", f"price {price} is not on the tick {inst.tick}")
        ref = price if type_ == "limit" and price is not None else now
        if inst.min_notional and qty * ref * inst.contract_size < inst.min_notional:
            raise Refusal("min_notional", f"notional under {inst.min_notional}")
        marketable = type_ == "market" or (
            (side == "buy" and now <= ref) or (side == "sell" and now >= ref)
        )
        order = Order(
            order_id or str(self.next_id()), client_id, inst, side, type_, qty, price, reduce_only
        )
        order.source, order.leverage = source, self.leverage_of(inst)
        if inst.swap:
            self._check_swap(order, ref)
        else:
            if reduce_only:
                raise Refusal("param", "reduce-only applies to derivatives")
            self._check_spot(order, ref)
        self.orders.append(order)
        if not marketable:
            self._lock(order, ref)
            return order
        fill_price = (
            now if type_ == "market" else (min(ref, now) if side == "buy" else max(ref, now))
        )
        self.fill(order, qty, fill_price)
        return order

    def _check_qty(self, inst: Instrument, qty: Decimal) -> None:
        if qty <= 0 or qty < inst.min_qty:
            raise Refusal("min_size", f"amount {qty} is under the minimum {inst.min_qty}")
        if qty % inst.lot != 0:
            raise Refusal("lot_size", f"amount {qty} is not a multiple of the lot {inst.lot}")
        if qty > inst.max_qty:
            raise Refusal("max_size", f"amount {qty} exceeds the maximum {inst.max_qty}")

    def _check_spot(self, order: Order, price: Decimal) -> None:
        inst = order.inst
        asset, need = (
            (inst.quote, order.qty * price) if order.side == "buy" else (inst.base, order.qty)
        )
        if self.balance(asset)[0] < need:
            raise Refusal("insufficient", f"{asset} available is under {plain(need)}")

    def _opening(self, order: Order) -> Decimal:
        """How much of the order opens (or grows) a position, beyond what it closes."""
        pos = self.positions.get(order.inst.id)
        held = pos.qty if pos else ZERO
        closes_long = order.side == "sell" and held > 0
        closes_short = order.side == "buy" and held < 0
        if closes_long or closes_short:
            return max(order.qty - abs(held), ZERO)
        return order.qty

    def _check_swap(self, order: Order, price: Decimal) -> None:
        inst = order.inst
        if inst.inverse:
            raise Refusal("param", "inverse contracts are not traded by this fake")
        if self.hedge_mode:
            raise Refusal("hedge", "the account is in long/short mode: posSide is required")
        pos = self.positions.get(inst.id)
        if order.reduce_only:
            held = pos.qty if pos else ZERO
            against = (order.side == "sell" and held > 0) or (order.side == "buy" and held < 0)
            if not against or order.qty > abs(held):
                raise Refusal("reduce_only", "a reduce-only order would open or grow a position")
        need = self._swap_cost(order, price)
        if self.balance(inst.quote)[0] < need:
            raise Refusal("insufficient", f"margin needed {plain(need)} {inst.quote}")

    def _swap_cost(self, order: Order, price: Decimal) -> Decimal:
        """Initial margin at the account's leverage for what opens, plus the whole order's fee."""
        inst = order.inst
        notional = order.qty * price * inst.contract_size
        opening = self._opening(order) * price * inst.contract_size
        return opening / D(order.leverage) + notional * self.swap_fee

    def _lock(self, order: Order, price: Decimal) -> None:
        inst = order.inst
        if inst.swap:
            asset, amount = inst.quote, self._swap_cost(order, price)
        elif order.side == "buy":
            asset, amount = inst.quote, order.qty * price
        else:
            asset, amount = inst.base, order.qty
        free, locked = self.balance(asset)
        self.balances[asset] = [free - amount, locked + amount]
        order.locked = amount

    def _unlock(self, order: Order, fraction: Decimal) -> None:
        if not order.locked:
            return
        inst = order.inst
        asset = inst.base if (not inst.swap and order.side == "sell") else inst.quote
        amount = order.locked * fraction
        free, locked = self.balance(asset)
        self.balances[asset] = [free + amount, locked - amount]
        order.locked -= amount

    def cancel(self, order: Order) -> None:
        if not order.is_open:
            raise Refusal("not_open", "the order is already filled or cancelled")
        self._unlock(order, D(1))
        order.status, order.updated = "canceled", now_ms()

    def set_price(self, inst_id: str, price: Decimal | str) -> None:
        """The last price; resting limit orders it crosses fill at their price, then trigger
        orders it crosses fire (in the order they were placed) and trade at it."""
        self.prices[inst_id] = D(str(price))
        for order in list(self.orders):
            if order.inst.id != inst_id or not order.is_open or order.price is None:
                continue
            now = self.prices[inst_id]
            if (order.side == "buy" and now <= order.price) or (
                order.side == "sell" and now >= order.price
            ):
                self.fill(order, order.qty - order.filled, order.price)
        for trigger in list(self.triggers):
            live = trigger.inst.id == inst_id and trigger.status == "new"
            if live and trigger.crossed(self.prices[inst_id]):
                self._fire(trigger)

    # --- trigger orders ----------------------------------------------------------------------

    def _reduces(self, inst: Instrument, side: str) -> Decimal:
        """How much of the position an order on `side` can close (0: it would open or grow)."""
        pos = self.positions.get(inst.id)
        held = pos.qty if pos else ZERO
        return abs(held) if (side == "sell" and held > 0) or (side == "buy" and held < 0) else ZERO

    def add_trigger(self, trigger: Trigger) -> Trigger:
        """Check and rest a trigger order; `Refusal` before anything moves. It holds nothing."""
        inst = trigger.inst
        if not inst.swap or trigger.side not in ("buy", "sell"):
            raise Refusal("param", "trigger orders are for swaps, buy or sell")
        if trigger.qty is not None:
            self._check_qty(inst, trigger.qty)
        for price in (trigger.trigger, trigger.activate):
            if price is not None and (price <= 0 or price % inst.tick != 0):
                raise Refusal("tick_size", f"price {price} is not on the tick {inst.tick}")
        if trigger.kind == "trailing":
            if trigger.callback is None or trigger.callback <= 0:
                raise Refusal("param", "a trailing stop needs its callback rate")
        elif trigger.trigger is None:
            raise Refusal("param", "a trigger order needs its trigger price")
        probe = Trigger("", "", inst, trigger.side, trigger.kind, None, trigger.trigger)
        probe.callback, probe.activate = trigger.callback, trigger.activate
        if trigger.kind != "trailing" and probe.crossed(self.prices[inst.id]):
            raise Refusal("would_trigger", "the order would trigger immediately")
        if trigger.kind == "trailing" and trigger.activate is not None:
            sell, now = trigger.side == "sell", self.prices[inst.id]
            if (trigger.activate <= now) if sell else (trigger.activate >= now):
                raise Refusal("would_trigger", "the activation price is already reached")
        if trigger.reduce_only or trigger.close_position:
            closable = self._reduces(inst, trigger.side)
            if not closable or (trigger.qty is not None and trigger.qty > closable):
                raise Refusal("reduce_only", "a reduce-only order would open or grow a position")
        self.triggers.append(trigger)
        return trigger

    def cancel_trigger(self, trigger: Trigger) -> None:
        if trigger.status != "new":
            raise Refusal("not_open", "the trigger order already fired or was cancelled")
        trigger.status, trigger.updated = "canceled", now_ms()

    def _fire(self, trigger: Trigger) -> None:
        """The trigger becomes a market order now: a reduce-only one with nothing left to reduce
        expires; one the book refuses (margin, say) is rejected; nothing trades either way."""
        trigger.fired = trigger.updated = now_ms()
        reduce = trigger.reduce_only or trigger.close_position
        closable = self._reduces(trigger.inst, trigger.side)
        if reduce and not closable:
            trigger.status = "expired"
            return
        qty = closable if trigger.qty is None else trigger.qty
        if reduce:
            qty = min(qty, closable)
        try:
            order = self.place(
                trigger.inst,
                trigger.side,
                "market",
                qty,
                None,
                trigger.order_client_id or trigger.client_id,
                reduce_only=reduce,
                source="trigger",
                order_id=self.new_order_id(),
            )
        except Refusal:
            trigger.status = "rejected"
            return
        trigger.status, trigger.order_id = "triggered", order.id

    def fill(self, order: Order, qty: Decimal, price: Decimal) -> None:
        qty = min(qty, order.qty - order.filled)
        if qty <= 0:
            return
        if order.locked:
            self._unlock(order, qty / (order.qty - order.filled))
        fill = (
            self._fill_swap(order, qty, price)
            if order.inst.swap
            else self._fill_spot(order, qty, price)
        )
        order.fills.append(fill)
        order.status = "filled" if order.filled >= order.qty else "partially_filled"
        order.updated = now_ms()

    def _move(self, asset: str, amount: Decimal) -> None:
        free, locked = self.balance(asset)
        self.balances[asset] = [free + amount, locked]

    def _fill_spot(self, order: Order, qty: Decimal, price: Decimal) -> Fill:
        inst = order.inst
        cost = qty * price
        if order.side == "buy":
            fee_ccy = inst.base if self.fee_in_received else inst.quote
            fee = qty * self.spot_fee if fee_ccy == inst.base else cost * self.spot_fee
            self._move(inst.quote, -cost - (fee if fee_ccy == inst.quote else ZERO))
            self._move(inst.base, qty - (fee if fee_ccy == inst.base else ZERO))
        else:
            fee_ccy, fee = inst.quote, cost * self.spot_fee
            self._move(inst.base, -qty)
            self._move(inst.quote, cost - fee)
        return Fill(self.next_id(), qty, price, fee, fee_ccy, ZERO)

    def _fill_swap(self, order: Order, qty: Decimal, price: Decimal) -> Fill:
        inst, cs = order.inst, order.inst.contract_size
        pos = self.positions.setdefault(inst.id, Position(inst, leverage=order.leverage))
        fee = qty * price * cs * self.swap_fee
        sign = D(1) if order.side == "buy" else D(-1)
        closing = min(qty, abs(pos.qty)) if pos.qty and (pos.qty > 0) != (sign > 0) else ZERO
        pnl = ZERO
        if closing:
            side = pos.side
            pnl = (price - pos.entry) * closing * cs * (1 if pos.qty > 0 else -1)
            released = pos.margin * closing / abs(pos.qty)
            pos.margin -= released
            pos.qty += sign * closing
            pos.realized += pnl
            pos.closed_qty += closing
            pos.closed_value += closing * price
            self._move(inst.quote, released + pnl)
            # The close's share of the fee goes with the closed position's record.
            close_fee = fee * closing / qty
            pos.fees += close_fee
            if pos.qty == 0:
                self._record_close(pos, side, close_fee, "close", order.id)
                pos = self.positions.setdefault(inst.id, Position(inst, leverage=order.leverage))
        opening = qty - closing
        if opening:
            if pos.qty == 0:
                pos.opened, pos.leverage = now_ms(), order.leverage
            margin = opening * price * cs / D(pos.leverage)
            pos.entry = (abs(pos.qty) * pos.entry + opening * price) / (abs(pos.qty) + opening)
            pos.qty += sign * opening
            pos.margin += margin
            pos.fees += fee * opening / qty
            self._move(inst.quote, -margin)
        self._move(inst.quote, -fee)
        pos.updated = now_ms()
        if pos.qty == 0:
            del self.positions[inst.id]
        return Fill(self.next_id(), qty, price, fee, inst.quote, pnl)

    def _record_close(
        self, pos: Position, side: str, close_fee: Decimal, kind: str, order_id: str
    ) -> None:
        close_price = pos.closed_value / pos.closed_qty
        self.closed.append(
            Closed(
                str(self.next_id()),
                pos.inst,
                side,
                pos.closed_qty,
                pos.entry,
                close_price,
                pos.realized,
                pos.fees,
                close_fee,
                pos.funding,
                kind,
                pos.opened,
                order_id=order_id,
                leverage=pos.leverage,
            )
        )
        del self.positions[pos.inst.id]

    # --- what happens at the venue without us ----------------------------------------------

    def liquidate(self, inst_id: str) -> Closed:
        """The venue takes the position at its liquidation price; the margin is lost."""
        pos = self.positions[inst_id]
        price = pos.liquidation_price()
        inst, qty = pos.inst, abs(pos.qty)
        side = pos.side
        order = Order(
            str(self.next_id()), "", inst, "sell" if side == "long" else "buy", "market", qty, None
        )
        order.source = "liquidation"
        pnl = (price - pos.entry) * pos.qty * inst.contract_size
        penalty = max(pos.margin + pnl, ZERO)  # what margin is left goes to the insurance fund
        order.fills.append(Fill(self.next_id(), qty, price, penalty, inst.quote, pnl))
        order.status = "filled"
        self.orders.append(order)
        pos.realized += pnl
        pos.fees += penalty
        pos.closed_qty, pos.closed_value = qty, qty * price
        pos.qty, pos.margin = ZERO, ZERO
        self._record_close(pos, side, penalty, "liquidation", order.id)
        return self.closed[-1]

    def close_by_hand(self, inst_id: str, qty: Decimal | str | None = None) -> Order:
        """The account's owner closes the position (or `qty` of it) on the venue's own site."""
        pos = self.positions[inst_id]
        side = "sell" if pos.qty > 0 else "buy"
        amount = abs(pos.qty) if qty is None else D(str(qty))
        return self.place(
            pos.inst, side, "market", amount, None, f"web{self.next_id()}", source="hand"
        )

    def pay_funding(self, inst_id: str, rate: Decimal | str) -> Bill:
        """Settle funding on the position at the current price: longs pay a positive rate."""
        pos = self.positions[inst_id]
        rate = D(str(rate))
        amount = -pos.qty * pos.inst.contract_size * self.prices[inst_id] * rate
        self._move(pos.inst.quote, amount)
        pos.funding += amount
        bill = Bill(str(self.next_id()), pos.inst, amount, pos.inst.quote, rate=rate)
        self.bills.append(bill)
        return bill


# --- HTTP -----------------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]
    status: int = 200
    unexpected: bool = False
    at: float = field(default_factory=time.time)


@dataclass
class _Rule:
    count: int
    method: str
    path: str
    data: dict[str, Any] = field(default_factory=dict)

    def take(self, method: str, path: str) -> bool:
        if self.count <= 0 or self.method != method or self.path != path:
            return False
        self.count -= 1
        return True


Handler = Callable[["Call"], Awaitable[Any]]


@dataclass
class Call:
    """One request as a handler sees it: parsed query and body, raw text for the signature."""

    request: Request
    method: str
    path: str
    query: str
    body: str
    params: dict[str, Any]
    json: Any


class VenueServer:
    """The HTTP side of a fake venue: subclasses fill `routes` and answer in their format."""

    order_path: tuple[str, str] = ("POST", "")

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._http = LoopbackServer()
        self._release = asyncio.Event()
        self.routes: dict[tuple[str, str], tuple[bool, Handler]] = {}
        self.app = Starlette(
            routes=[Route("/{path:path}", self._dispatch, methods=["GET", "POST", "DELETE", "PUT"])]
        )
        self.requests: list[Recorded] = []
        self._hangs: list[_Rule] = []
        self._rejects: list[_Rule] = []
        self._outages: list[_Rule] = []

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def unexpected_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.unexpected]

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def hang_next_orders(self, count: int = 1, seconds: float | None = None) -> None:
        """Book the next orders, then sit on the answer (None: until the fake stops)."""
        method, path = self.order_path
        self._hangs.append(_Rule(count, method, path, {"seconds": seconds}))

    def refuse_next_orders(self, count: int, kind: str, message: str) -> None:
        """The next order creations are refused with the venue's code for `kind`."""
        method, path = self.order_path
        self._rejects.append(_Rule(count, method, path, {"kind": kind, "message": message}))

    def fail_next(self, method: str, path: str, count: int = 1) -> None:
        """Answer the next `count` requests to method/path 503, as a venue's overloaded
        gateway does: nothing is done."""
        self._outages.append(_Rule(count, method, path))

    def take_reject(self, method: str, path: str) -> Refusal | None:
        for rule in self._rejects:
            if rule.take(method, path):
                return Refusal(rule.data["kind"], rule.data["message"])
        return None

    async def start(self) -> VenueServer:
        self.port = await self._http.start(
            self.app, self.host, self.port, log_level="warning", timeout_graceful_shutdown=2
        )
        return self

    async def stop(self) -> None:
        self._release.set()  # frees answers held back on purpose
        self._release = asyncio.Event()
        await self._http.stop()

    async def __aenter__(self) -> Any:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _dispatch(self, request: Request) -> Response:
        method, path = request.method, request.url.path
        query, body = request.url.query, (await request.body()).decode()
        params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                params.update(parse_qsl(body, keep_blank_values=True))
        if isinstance(parsed, dict):
            params.update(parsed)
        record = Recorded(method, path, params, dict(request.headers))
        self.requests.append(record)
        route = self.routes.get((method, path))
        if any(rule.take(method, path) for rule in self._outages):
            response: Response = Response("Service Unavailable", status_code=503)
        elif route is None:
            record.unexpected = True
            response = self.not_found()
        else:
            signed, handler = route
            call = Call(request, method, path, query, body, params, parsed)
            response = await self._answer(call, signed, handler)
        record.status = response.status_code
        return response

    async def _answer(self, call: Call, signed: bool, handler: Handler) -> Response:
        try:
            if signed:
                self.verify(call)
            result = await handler(call)
        except Refusal as e:
            return self.refusal(e, call)
        for rule in self._hangs:
            if rule.take(call.method, call.path):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._release.wait(), rule.data["seconds"] or 3600)
        return self.answer(result)

    # --- what each venue defines -----------------------------------------------------------

    def verify(self, call: Call) -> None:
        raise NotImplementedError

    def refusal(self, error: Refusal, call: Call) -> Response:
        raise NotImplementedError

    def answer(self, result: Any) -> Response:
        raise NotImplementedError

    def not_found(self) -> Response:
        raise NotImplementedError


def serve_alone(name: str, build: Callable[[str, int], Any], argv: list[str] | None = None) -> None:
    """`python -m tests.fakes.<venue> --port N`: serve one fake until SIGTERM or Ctrl-C; print
    its base URL and the credentials it accepts (one JSON line)."""
    parser = argparse.ArgumentParser(description=f"Fake {name}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    async def run() -> None:
        fake = build(args.host, args.port)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with fake:
            print(json.dumps({"base_url": fake.base_url, "credentials": fake.credentials}))
            sys.stdout.flush()
            await stop.wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
