"""How much an exit sells: rounded to the step, a remainder the venue would not take folded in,
and on spot what is actually held within the tolerance. Figures by hand."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from execution_service.exchanges.base import Market
from execution_service.orders.exit_venues import ExitSize, ExitVenue, size_exit

MARKET = Market(
    "BTC/USDT", "BTC", "USDT", amount_step=D("0.001"), min_amount=D("0.01"), min_cost=D("20")
)


@pytest.mark.parametrize(
    ("position", "requested", "full", "venue", "price", "expected"),
    [
        (D(1), None, True, ExitVenue(), None, ExitSize(D(1), True)),  # all of it, as is
        (D("0.9999"), None, True, ExitVenue(MARKET), D(100), ExitSize(D("0.999"), True)),  # step
        (D(1), D("0.5"), False, ExitVenue(MARKET), D(100), ExitSize(D("0.5"), False)),
        # 1 - 0.995 = 0.005 left, under the 0.01 minimum: it goes with this exit.
        (D(1), D("0.995"), False, ExitVenue(MARKET), D(100), ExitSize(D(1), True)),
        # 1 - 0.9 = 0.1 left, worth 0.1 x 100 = 10, under the 20 minimum notional: folded in.
        (D(1), D("0.9"), False, ExitVenue(MARKET), D(100), ExitSize(D(1), True)),
        # ... and at 300 it is worth 30: a partial exit is fine.
        (D(1), D("0.9"), False, ExitVenue(MARKET), D(300), ExitSize(D("0.9"), False)),
        # Spot: 0.995 held for a position of 1, 0.5 % short, within 1 %: sell what is there.
        (D(1), None, True, ExitVenue(MARKET, held=D("0.995")), D(100), ExitSize(D("0.995"), True)),
        # 0.5 held, 50 % short: not a rounding matter; the venue will say (and refusals flag it).
        (D(1), None, True, ExitVenue(MARKET, held=D("0.5")), D(100), ExitSize(D(1), True)),
        (D(1), None, True, ExitVenue(MARKET, held=D(2)), D(100), ExitSize(D(1), True)),  # more: 1
    ],
)
def test_size_exit(
    position: D,
    requested: D | None,
    full: bool,
    venue: ExitVenue,
    price: D | None,
    expected: ExitSize,
) -> None:
    assert size_exit(position, requested, full, venue, price, D(1)) == expected
