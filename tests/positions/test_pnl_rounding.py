"""The PnL percent rounds ties to even whatever the thread's decimal context says (ccxt sets it
to half-up), so the Python and the set-based SQL marking agree."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, localcontext
from decimal import Decimal as D

import pytest

from execution_service.positions.pnl import pnl_percent


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
