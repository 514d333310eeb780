"""The PnL percent rounds ties to even whatever the thread's decimal context says (ccxt sets it
to half-up), so the Python and the set-based SQL marking agree."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal as D, localcontext

import pytest

from execution_service.decimals import ratio
from execution_service.positions.pnl import average_price, pnl_percent


@pytest.mark.parametrize(
    ("pnl", "entry", "quantity", "percent"),
    [
        (D("0.00000000025"), D(1), D(1), D("0.00000002")),  # 0.000000025 %: tie, to even
        (D("0.00000000015"), D(1), D(1), D("0.00000002")),  # 0.000000015 %: tie, to even
        (D("-0.00000000025"), D(1), D(1), D("-0.00000002")),
        (D("0.7"), D(3), D(7), D("3.33333333")),
        (D(0), D(0), D(1), D(0)),  # no notional
    ],
)
def test_ties_go_to_even_under_a_half_up_context(pnl: D, entry: D, quantity: D, percent: D) -> None:
    with localcontext() as ctx:
        ctx.rounding = ROUND_HALF_UP
        assert pnl_percent(pnl, entry, quantity) == percent
    assert pnl_percent(pnl, entry, quantity) == percent


@pytest.mark.parametrize(
    ("numerator", "denominator", "average"),
    [
        (D(1000), D("0.03"), D("33333.333333333333333333")),  # 18 decimals, not 60 digits
        (D(2), D(3), D("0.666666666666666667")),
        (D("0.0000000000000000005"), D(1), D(0)),  # a tie at the 18th place: to even (0)
        (D("0.0000000000000000015"), D(1), D("0.000000000000000002")),
        (D(30000), D(1), D(30000)),
    ],
)
def test_an_average_price_is_kept_to_18_decimals(numerator: D, denominator: D, average: D) -> None:
    """Averages (cost / filled, weighted entries) rarely divide out. Kept to 60 digits they made
    PnL products longer than 60 digits, which SQL stored exactly and Python rounded: the positions
    list and GET /positions/{id} printed different digits for one position."""
    with localcontext() as ctx:
        ctx.rounding = ROUND_HALF_UP
        assert ratio(numerator, denominator) == average
        assert average_price(D("0.01"), numerator / denominator, D(0), D(1)) == average
    assert str(ratio(numerator, denominator)) == str(average)
