"""Where a paper order fills: a market order at the last price moved against the taker by the
slippage; one fired by a stop or target at its level, moved the same way (the stop rested in the
simulator); a limit at the last price once marketable, else it rests."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from execution_service.enums import Direction, OrderType
from execution_service.exchanges.paper.adapter import PaperAdapter, PaperTerms
from execution_service.models import PaperOrder

CASES = [
    # side, type, limit, last, trigger, slippage bps, fill
    (Direction.sell, OrderType.market, None, "94", None, "0", "94"),
    (Direction.sell, OrderType.market, None, "94", "95", "0", "95"),  # an SL through its level
    (Direction.sell, OrderType.market, None, "94", "95", "10", "94.905"),  # 95 x (1 - 0.001)
    (Direction.buy, OrderType.market, None, "110", "105", "10", "105.105"),  # a short's SL
    (Direction.buy, OrderType.market, None, "100", None, "10", "100.1"),
    (Direction.buy, OrderType.limit, "101", "100", None, "10", "100"),  # marketable: the last
    (Direction.buy, OrderType.limit, "99", "100", None, "10", None),  # rests
]


@pytest.mark.parametrize(("side", "kind", "limit", "last", "trigger", "bps", "fill"), CASES)
def test_fill_price(
    side: Direction,
    kind: OrderType,
    limit: str | None,
    last: str,
    trigger: str | None,
    bps: str,
    fill: str | None,
) -> None:
    adapter = PaperAdapter(1, None, Any, terms=PaperTerms(slippage_bps=D(bps)))  # type: ignore[arg-type]
    order = PaperOrder(side=side, type=kind, price=D(limit) if limit else None)
    got = adapter.fill_price(order, D(last), D(trigger) if trigger else None)
    assert got == (D(fill) if fill is not None else None)
