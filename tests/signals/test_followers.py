"""A follower's rules, table-driven where they are pure and end to end where they trade; every
figure worked out by hand beside it."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from execution_service.enums import Direction, SizeMode, SmallTrade
from execution_service.models import TradingPreset
from execution_service.signals.follower import follow
from execution_service.signals.schemas import SignalCreate
from execution_service.signals.sizing import SizeRule, Skip, size_quantity, small_trade
from tests.factories import Actor, paper_setup


def _preset(**rules: Any) -> TradingPreset:
    return TradingPreset(**{"leverage": D(1), "reverse": False, **rules})


SIGNAL = SignalCreate(symbol="BTCUSDT", direction=Direction.buy, sl_price=D(95), tp_price=D(110))


@pytest.mark.parametrize(
    ("rules", "symbol", "direction", "sl", "tp", "skip"),
    [
        ({}, "BTCUSDT", "buy", D(95), D(110), None),
        # mapped: the leader's BTCUSDT is this venue's BTC/USDT
        ({"symbol_map": {"BTCUSDT": "BTC/USDT"}}, "BTC/USDT", "buy", D(95), D(110), None),
        # allow lists match the mapped name or the leader's
        ({"symbols_allowed": ["ETH/USDT"]}, None, None, None, None, "symbol_not_allowed"),
        (
            {"symbol_map": {"BTCUSDT": "BTC/USDT"}, "symbols_allowed": ["BTC/USDT"]},
            "BTC/USDT",
            "buy",
            D(95),
            D(110),
            None,
        ),
        ({"symbols_denied": ["BTCUSDT"]}, None, None, None, None, "symbol_denied"),
        # reversed: a sell, the leader's TP (110) its stop, the leader's SL (95) its target
        ({"reverse": True}, "BTCUSDT", "sell", D(110), D(95), None),
        # the preset's own 5x over a max of 3x
        ({"leverage": D(5), "max_leverage": D(3)}, None, None, None, None, "max_leverage"),
    ],
)
def test_follow(
    rules: dict[str, Any],
    symbol: str | None,
    direction: str | None,
    sl: D | None,
    tp: D | None,
    skip: str | None,
) -> None:
    followed = follow(SIGNAL, _preset(**rules))
    if skip is not None:
        assert followed.skip is not None and followed.skip.code == skip
        return
    body = followed.body
    assert followed.skip is None
    assert (body.symbol, body.direction, body.sl_price, body.tp_price) == (
        symbol,
        direction,
        sl,
        tp,
    )


def test_a_leaders_leverage_over_the_followers_max_is_skipped() -> None:
    asked = SIGNAL.model_copy(update={"leverage": D(10)})
    assert follow(asked, _preset(max_leverage=D(10))).skip is None
    assert follow(asked, _preset(max_leverage=D(5))).skip is not None


@pytest.mark.parametrize(
    ("multiplier", "max_risk", "expected"),
    [
        (D("0.5"), None, D(10)),  # 1 % of 10000 over 5 a unit = 20, half of it
        (D(3), None, D(60)),
        # risk capped at 0.5 %: 50 / 5 = 10 however large the multiplier
        (D(3), D("0.5"), D(10)),
    ],
)
def test_multiplier_and_risk_cap(multiplier: D, max_risk: D | None, expected: D) -> None:
    rule = SizeRule(SizeMode.risk_percent, D(1), None, multiplier, max_risk)
    got = size_quantity(
        rule, price=D(100), stop_loss=D(95), equity=D(10000), override=None, amount_step=D(1)
    )
    assert got == expected


def test_a_risk_cap_needs_a_stop() -> None:
    rule = SizeRule(SizeMode.fixed_quantity, D(1), None, None, D(1))
    with pytest.raises(Skip):
        size_quantity(
            rule, price=D(100), stop_loss=None, equity=D(1), override=None, amount_step=None
        )


@pytest.mark.parametrize(
    ("quantity", "own_min", "action", "expected"),
    [
        (D("0.2"), None, None, D("0.2")),  # over the venue's 10 notional at 100: kept
        # 0.05 x 100 = 5 under the venue's 10: raised to 10 / 100 = 0.1, a whole step
        (D("0.05"), None, SmallTrade.raise_to_minimum, D("0.1")),
        (D("0.05"), None, SmallTrade.skip, "below_minimum"),
        # the follower's own minimum of 25: 0.2 x 100 = 20 under it -> 0.25
        (D("0.2"), D(25), SmallTrade.raise_to_minimum, D("0.25")),
        (D("0.2"), D(25), None, "below_minimum"),  # its own minimum unmet: skipped
        (D("0.05"), None, None, D("0.05")),  # the venue's, unset: refused later, not skipped
    ],
)
def test_small_trades(
    quantity: D, own_min: D | None, action: SmallTrade | None, expected: D | str
) -> None:
    def run() -> D:
        return small_trade(
            quantity,
            D(100),
            min_amount=D("0.01"),
            min_cost=D(10),
            min_trade_notional=own_min,
            action=action,
            amount_step=D("0.01"),
        )

    if isinstance(expected, str):
        with pytest.raises(Skip) as info:
            run()
        assert info.value.code == expected
    else:
        assert run() == expected


async def test_a_follower_takes_the_leaders_signal_its_own_way(user: Actor) -> None:
    acct = await paper_setup(
        user,
        price="100",
        market_type="swap",
        position_size_mode="fixed_quantity",
        position_size_value="2",
        multiplier="1.5",
        symbol_map={"BTCUSDT": "BTC/USDT"},
        reverse=True,
    )
    taken = await acct.signal(symbol="BTCUSDT", sl_price="95", tp_price="110")
    execution = taken["executions"][0]
    # 2 x 1.5 = 3, sold (reversed), with the leader's 110 as its stop and 95 as its target.
    assert (execution["status"], execution["quantity"]) == ("filled", "3"), taken
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    assert (position["symbol"], position["direction"]) == ("BTC/USDT", "sell")
    assert (position["sl_price"], position["tp_price"]) == ("110", "95")
    # The leader's next signal the other way: reversed, a buy, which nets the follower's short.
    closing = await acct.signal(symbol="BTCUSDT", direction="sell", sl_price="110")
    assert closing["executions"][0]["purpose"] == "exit", closing
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    assert (position["status"], position["closed_reason"]) == ("closed", "signal")


async def test_an_excluded_signal_is_recorded_skipped(user: Actor) -> None:
    acct = await paper_setup(
        user, price="100", symbols_denied=["BTC/USDT"], position_size_value="1000"
    )
    taken = await acct.signal()
    execution = taken["executions"][0]
    assert (execution["status"], execution["error_code"]) == ("skipped", "symbol_denied")
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert log["status"] == "skipped" and log["order_id"] is None
