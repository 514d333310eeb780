"""Booking a fill: pure arithmetic over one quote balance and one symbol's net holding."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from execution_service.decimals import ONE, ZERO, normalize, ratio
from execution_service.enums import Direction, OrderType
from execution_service.exchanges.base import InsufficientFunds

BPS = Decimal(10_000)


# What the arithmetic reads and writes, by shape: the venue's ORM rows (one order at a time) and
# the batch's light values (many at once) both fit, so the two paths share every line of it.
class Order(Protocol):
    @property
    def side(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...


class Priced(Order, Protocol):
    @property
    def type(self) -> str: ...
    @property
    def price(self) -> Decimal | None: ...


class Reserving(Protocol):
    reserved: Decimal


class Balance(Protocol):
    currency: str
    free: Decimal
    used: Decimal


class Holding(Protocol):
    quantity: Decimal
    average_price: Decimal
    margin: Decimal


@dataclass(frozen=True)
class Account:
    """What a fill touches: the quote balance and the symbol's net holding (zero if none)."""

    free: Decimal
    used: Decimal
    quantity: Decimal = ZERO  # signed: negative is short
    average_price: Decimal = ZERO
    margin: Decimal = ZERO
    quote: str = ""


@dataclass(frozen=True)
class Terms:
    """How the account trades a symbol: its leverage, and whether it is a spot account (no
    borrowing: leverage 1, and nothing is sold that is not held)."""

    leverage: Decimal = ONE
    spot: bool = False


@dataclass(frozen=True)
class Booked:
    account: Account
    fee: Decimal  # what was charged: an exit pays at most what the account has left


def book_fill(account: Account, order: Order, price: Decimal, fee: Decimal, terms: Terms) -> Booked:
    """The account after a complete fill of `order` at `price`; `InsufficientFunds` if it cannot
    pay for what it opens. Pure, so a batch can refuse one order without undoing the others.

    Margin is isolated per symbol: closing loses at most the margin posted for what it closes
    (the venue's liquidation takes the rest, as a real venue's insurance fund does), and an
    order that only closes is never refused: it pays what fee the account can."""
    quantity, average, margin_held = account.quantity, account.average_price, account.margin
    signed = order.amount if order.side == Direction.buy else -order.amount
    leverage = ONE if terms.spot else terms.leverage
    if terms.spot and quantity + signed < 0:
        raise InsufficientFunds(
            f"paper spot account: holds {normalize(max(quantity, ZERO))}, cannot sell "
            f"{order.amount} (a spot account does not short)"
        )
    free, used = account.free, account.used
    remaining = order.amount
    if quantity != 0 and (quantity > 0) != (signed > 0):
        closing = min(remaining, abs(quantity))
        direction = ONE if quantity > 0 else -ONE
        released = margin_held * closing / abs(quantity)
        pnl = max((price - average) * closing * direction, -released)
        free += released + pnl
        used -= released
        margin_held = normalize(margin_held - released)
        quantity = normalize(quantity - direction * closing)
        remaining -= closing
        if quantity == 0:
            average, margin_held = ZERO, ZERO
    if remaining == 0:  # only closes: the way out is never refused
        fee = min(fee, max(free, ZERO))
    free -= fee
    if remaining > 0:
        margin = remaining * price / leverage
        if free < margin:
            raise InsufficientFunds(
                f"paper account: {normalize(margin + fee)} {account.quote} needed, "
                f"{account.free} free"
            )
        held = abs(quantity)
        average = ratio(held * average + remaining * price, held + remaining)
        quantity = normalize(quantity + (remaining if signed > 0 else -remaining))
        margin_held = normalize(margin_held + margin)
        free -= margin
        used += margin
    if free < 0:
        raise InsufficientFunds(f"paper account: not enough {account.quote} for the fee")
    after = Account(normalize(free), normalize(used), quantity, average, margin_held, account.quote)
    return Booked(after, normalize(fee))


def account_of(balance: Balance, holding: Holding | None) -> Account:
    if holding is None:
        return Account(balance.free, balance.used, quote=balance.currency)
    return Account(
        balance.free,
        balance.used,
        holding.quantity,
        holding.average_price,
        holding.margin,
        balance.currency,
    )


def apply_account(after: Account, balance: Balance, holding: Holding) -> None:
    balance.free, balance.used = after.free, after.used
    holding.quantity, holding.average_price = after.quantity, after.average_price
    holding.margin = after.margin


def reservation(
    account: Account, order: Order, price: Decimal, fee: Decimal, terms: Terms
) -> Decimal:
    """What a resting order holds until it fills: the margin of what it would open (what it
    closes of the holding posts none) and its fee. `InsufficientFunds` if the account cannot
    hold it, or (spot) if it sells what is not held."""
    signed = order.amount if order.side == Direction.buy else -order.amount
    held = account.quantity
    if terms.spot and held + signed < 0:
        raise InsufficientFunds(f"paper spot account: holds {normalize(max(held, ZERO))}")
    closes = min(order.amount, abs(held)) if held != 0 and (held > 0) != (signed > 0) else ZERO
    leverage = ONE if terms.spot else terms.leverage
    needed = normalize((order.amount - closes) * price / leverage + fee)
    if needed > account.free:
        raise InsufficientFunds(
            f"paper account: {needed} {account.quote} needed to rest, {account.free} free"
        )
    return needed


def hold(balance: Balance, order: Reserving, amount: Decimal) -> None:
    """Move `amount` of the quote balance into (or, negative, out of) the order's reservation."""
    balance.free = normalize(balance.free - amount)
    balance.used = normalize(balance.used + amount)
    order.reserved = normalize((order.reserved or ZERO) + amount)


def fee_of(amount: Decimal, price: Decimal, fee_rate: Decimal) -> Decimal:
    """The fee of `amount` at `price`: `fee_rate` of the notional, in the quote currency."""
    return normalize(amount * price * fee_rate)


def fill_price(
    order: Priced, last: Decimal, slippage_bps: Decimal, trigger: Decimal | None = None
) -> Decimal | None:
    """Where a new order fills now: a market order at the last price moved against the taker by
    the slippage, a marketable limit at the last price; None: it rests. A market order fired by
    a stop or target (`trigger`) fills at its level moved by the slippage: the stop rested in
    the simulator and fired as the price crossed it."""
    if order.type == OrderType.market:
        slip = slippage_bps / BPS
        base = trigger if trigger is not None else last
        return normalize(base * (ONE + slip if order.side == Direction.buy else ONE - slip))
    if crosses(order.side, last, order.price):
        return last
    return None


def crosses(side: str, last: Decimal, limit: Decimal | None) -> bool:
    """Whether a limit order at `limit` is marketable at the `last` price."""
    if limit is None:
        return False
    return last <= limit if side == Direction.buy else last >= limit
