"""Decimal helpers shared by storage, schemas and pure logic. Money is never a float."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal, DefaultContext, getcontext

# Prices times quantities with 18 decimals each need more than the default 28 digits; the
# DefaultContext covers threads and tasks created later, getcontext() the one importing us.
DefaultContext.prec = 60
getcontext().prec = 60

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)


def normalize(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (Decimal('1E+2'))."""
    if value == value.to_integral_value():
        return value.quantize(ONE)
    return value.normalize()


def to_str(value: Decimal) -> str:
    """Plain positional notation, as JSON carries it: '0.000000012345678901', never '1.2E-8'."""
    return format(normalize(value), "f")


def round_down(value: Decimal, step: Decimal | None) -> Decimal:
    """Round a quantity down to a multiple of the market's amount step (never up)."""
    if step is None or step <= 0:
        return value
    return normalize((value / step).to_integral_value(rounding=ROUND_DOWN) * step)


def round_up(value: Decimal, step: Decimal | None) -> Decimal:
    """Round a quantity up to a multiple of the step (a minimum must be reached, not missed)."""
    if step is None or step <= 0:
        return normalize(value)
    return normalize((value / step).to_integral_value(rounding=ROUND_UP) * step)


def round_to_tick(value: Decimal, tick: Decimal | None) -> Decimal:
    if tick is None or tick <= 0:
        return value
    return normalize((value / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick)


# An average price (a cost over a quantity) rarely divides out: it is kept to 18 decimals, the
# precision prices are accepted with, so what is derived from it (PnL, in SQL or in Python) stays
# exact within 60 digits and prints the same everywhere.
PRICE_QUANTUM = Decimal("1e-18")


def ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    """numerator / denominator to 18 decimals, ties to even (whatever the thread's context says:
    ccxt switches it to half-up)."""
    return normalize((numerator / denominator).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN))
