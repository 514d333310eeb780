"""What a venue should hold for a position (`orders.protection.wanted_legs`), and when its stop
moves after a level the monitor trails (`stop_moves`): pure, table-driven."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from execution_service.enums import OrderType, Protection
from execution_service.models import ExecutionLog, ExecutionPosition
from execution_service.orders.protection import stop_moves, wanted_legs

STOP, TARGET, TRAIL = OrderType.stop, OrderType.target, OrderType.trailing
BINANCE_TRAILS = (D("0.1"), D(10))


def position(direction: str = "buy", **fields: object) -> ExecutionPosition:
    base: dict[str, object] = {"entry_price": D(100), "best_price": D(100), "take_profits": None}
    return ExecutionPosition(direction=direction, **(base | fields))


WANTED = [
    # (position fields, protection, venue trails, wanted)
    (
        {"sl_price": D(95), "tp_price": D(110)},
        Protection.trigger_orders,
        None,
        {STOP: 95, TARGET: 110},
    ),
    ({"sl_price": D(95), "tp_price": D(110)}, Protection.oco, None, {STOP: 95, TARGET: 110}),
    ({"tp_price": D(110)}, Protection.oco, None, {}),  # a lone TP: the monitor's on spot
    ({"tp_price": D(110)}, Protection.trigger_orders, None, {TARGET: 110}),
    # a ladder of partial targets stays with the monitor; the SL is held
    (
        {"sl_price": D(95), "tp_price": D(120), "take_profits": [{"price": "110"}]},
        Protection.trigger_orders,
        None,
        {STOP: 95},
    ),
    # the venue trails 5 % itself: one more leg; the SL stays at its level
    (
        {"sl_price": D(95), "trailing_stop_percent": D(5)},
        Protection.trigger_orders,
        BINANCE_TRAILS,
        {STOP: 95, TRAIL: 5},
    ),
    # 12 % it cannot trail: its stop is the tighter of the SL and the trailing level (best 100)
    (
        {"sl_price": D(95), "trailing_stop_percent": D(12)},
        Protection.trigger_orders,
        BINANCE_TRAILS,
        {STOP: 95},
    ),
    (
        {"sl_price": D(85), "trailing_stop_percent": D(12)},
        Protection.trigger_orders,
        BINANCE_TRAILS,
        {STOP: 88},
    ),
    (
        {"trailing_stop_percent": D(2), "best_price": D(120)},
        Protection.trigger_orders,
        None,
        {STOP: D("117.6")},
    ),
    # a short: the stop above, the lower of the two
    (
        {"sl_price": D(105), "trailing_stop_percent": D(2)},
        Protection.trigger_orders,
        None,
        {STOP: 102},
    ),
]


@pytest.mark.parametrize(("fields", "kind", "trails", "wanted"), WANTED)
def test_wanted_legs(
    fields: dict[str, object],
    kind: Protection,
    trails: tuple[D, D] | None,
    wanted: dict[OrderType, object],
) -> None:
    direction = "sell" if fields.get("sl_price") == D(105) else "buy"
    got = wanted_legs(position(direction, **fields), kind, trails)
    assert got == {k: D(str(v)) for k, v in wanted.items()}


MOVES = [
    # (direction, resting stop, wanted stop, moves, the wanted level after)
    ("buy", "95", "95", False, "95"),
    ("buy", "95", "100", True, "100"),  # tightened by 5 %
    ("buy", "100", "100.1", False, "100"),  # by 0.1 %: under the step, stays
    ("buy", "100", "100.2", True, "100.2"),  # by exactly 0.2 %
    ("buy", "100", "90", False, "100"),  # looser: a PATCH's to make, not the pass's
    ("sell", "105", "100", True, "100"),
    ("sell", "100", "101", False, "100"),
]


@pytest.mark.parametrize(("direction", "resting", "want", "moves", "after"), MOVES)
def teststop_moves(direction: str, resting: str, want: str, moves: bool, after: str) -> None:
    leg = ExecutionLog(order_type=STOP, price=D(resting))
    wanted = {STOP: D(want)}
    assert stop_moves(position(direction), [leg], wanted) is moves
    assert wanted[STOP] == D(after)
