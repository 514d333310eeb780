"""Profit and loss: pure functions over Decimal."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from execution_service.decimals import HUNDRED, ONE, ZERO, normalize, ratio
from execution_service.enums import Direction

EIGHT_PLACES = Decimal("0.00000001")


def sign(direction: str) -> Decimal:
    return ONE if direction == Direction.buy else -ONE


def gross_pnl(
    direction: str, entry: Decimal, exit_price: Decimal, quantity: Decimal, per_unit: Decimal = ONE
) -> Decimal:
    """`per_unit` is what one unit of quantity stands for: a lot's contract size (MetaTrader)."""
    return normalize((exit_price - entry) * quantity * per_unit * sign(direction))


def pnl_percent(
    pnl: Decimal, entry: Decimal, quantity: Decimal, per_unit: Decimal = ONE
) -> Decimal:
    """PnL as a percent of the position's entry notional, to 8 decimals."""
    notional = entry * quantity * per_unit
    if notional == 0:
        return ZERO
    # Ties to even, said here rather than taken from the thread's decimal context: ccxt sets that
    # context's rounding to half-up whenever it formats a number.
    percent = (pnl / notional * HUNDRED).quantize(EIGHT_PLACES, rounding=ROUND_HALF_EVEN)
    return normalize(percent)


def average_price(q1: Decimal, p1: Decimal, q2: Decimal, p2: Decimal) -> Decimal:
    total = q1 + q2
    return ratio(q1 * p1 + q2 * p2, total) if total else p2


def fill_delta_price(
    old_qty: Decimal, old_avg: Decimal | None, new_qty: Decimal, new_avg: Decimal
) -> Decimal:
    """The average price of what filled between two cumulative reports of one order."""
    delta = new_qty - old_qty
    if old_qty == 0 or old_avg is None:
        return new_avg
    return ratio(new_qty * new_avg - old_qty * old_avg, delta)


def liquidation_price(
    direction: str, entry: Decimal, leverage: Decimal, maintenance_rate: Decimal
) -> Decimal | None:
    """Isolated margin: the price at which the position's margin (entry / leverage per unit)
    plus its PnL falls to the maintenance margin (`maintenance_rate` x the price per unit).

    long:  E/L + (P - E) = m P  ->  P = E (1 - 1/L) / (1 - m)
    short: E/L + (E - P) = m P  ->  P = E (1 + 1/L) / (1 + m)

    None where it cannot happen (a long at 1x is liquidated only at a price of 0)."""
    if leverage <= 0:
        return None
    if direction == Direction.buy:
        level = ratio(entry * (ONE - ONE / leverage), ONE - maintenance_rate)
    else:
        level = ratio(entry * (ONE + ONE / leverage), ONE + maintenance_rate)
    return level if level > 0 else None


def margin_of(
    entry: Decimal, quantity: Decimal, leverage: Decimal, per_unit: Decimal = ONE
) -> Decimal:
    """The margin an isolated position of `quantity` posts: its entry notional over leverage."""
    return normalize(entry * quantity * per_unit / leverage) if leverage > 0 else ZERO
