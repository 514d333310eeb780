"""Sizing and pre-trade checks, table-driven; expected figures are worked out by hand."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from execution_service.enums import Direction, SizeMode
from execution_service.signals.sizing import (
    AccountState,
    Costs,
    Limits,
    MarketRules,
    Rejection,
    SizeRule,
    check_order,
    check_stops,
    default_stop,
    size_quantity,
)

FQ, FN, RP = SizeMode.fixed_quantity, SizeMode.fixed_notional, SizeMode.risk_percent


@pytest.mark.parametrize(
    ("rule", "price", "sl", "equity", "override", "step", "expected"),
    [
        # fixed quantity: the value itself, rounded down to the step
        (SizeRule(FQ, D("0.123456")), D("100"), None, D("0"), None, D("0.001"), D("0.123")),
        # fixed notional: 1000 / 100 = 10
        (SizeRule(FN, D("1000")), D("100"), None, D("0"), None, None, D("10")),
        # 1000 / 3 = 333.333.. -> step 0.01 -> 333.33
        (SizeRule(FN, D("1000")), D("3"), None, D("0"), None, D("0.01"), D("333.33")),
        # risk 1% of 10000 = 100 at risk; |100 - 95| = 5 per unit -> 20
        (SizeRule(RP, D("1")), D("100"), D("95"), D("10000"), None, None, D("20")),
        # a short: |100 - 104| = 4 per unit; 2% of 5000 = 100 -> 25
        (SizeRule(RP, D("2")), D("100"), D("104"), D("5000"), None, D("1"), D("25")),
        # a signal's quantity overrides the preset's sizing...
        (SizeRule(FN, D("1000")), D("100"), None, D("0"), D("3"), None, D("3")),
        # ...but not its notional cap: 3 * 100 = 300 > 250 -> 2.5
        (SizeRule(FN, D("1000"), D("250")), D("100"), None, D("0"), D("3"), None, D("2.5")),
        # cap on sized notional: 1000 at 100 = 10, capped at 500 -> 5
        (SizeRule(FN, D("1000"), D("500")), D("100"), None, D("0"), None, None, D("5")),
        # no preset, but a quantity: fine
        (SizeRule(None, None), D("100"), None, D("0"), D("0.5"), None, D("0.5")),
        # rounding never rounds up: 0.99999 -> 0.9 with step 0.1
        (SizeRule(FQ, D("0.99999")), D("1"), None, D("0"), None, D("0.1"), D("0.9")),
    ],
)
def test_size_quantity(rule, price, sl, equity, override, step, expected) -> None:  # type: ignore[no-untyped-def]
    got = size_quantity(
        rule, price=price, stop_loss=sl, equity=equity, override=override, amount_step=step
    )
    assert got == expected and str(got) == str(expected)


@pytest.mark.parametrize(
    ("direction", "price", "sl", "costs", "step", "expected", "loss"),
    [
        # 1 % of 10000 = 100 at risk. Fee 0.1 %, slippage 0.1 % each way, long 100 -> SL 95:
        # entry fill 100.1, exit fill 94.905; per unit 5.195 + 0.001 x 195.005 = 5.390005;
        # 100 / 5.390005 = 18.5528... -> step 0.01 -> 18.55; loss 18.55 x 5.390005 = 99.985...
        (
            Direction.buy,
            D(100),
            D(95),
            Costs(D("0.001"), D("0.001"), D("0.001")),
            D("0.01"),
            D("18.55"),
            D("99.98459275"),
        ),
        # The same short, 100 -> SL 105: fills 99.9 and 105.105; 5.205 + 0.001 x 205.005
        # = 5.410005 per unit; 100 / 5.410005 = 18.484... -> 18.48; loss 99.9768924.
        (
            Direction.sell,
            D(100),
            D(105),
            Costs(D("0.001"), D("0.001"), D("0.001")),
            D("0.01"),
            D("18.48"),
            D("99.9768924"),
        ),
        # A limit entry pays no entry slippage: fills 100 and 94.905 -> 5.095 + 0.194905
        # = 5.289905 per unit; 100 / 5.289905 = 18.9039... -> 18.9; loss 99.9792045.
        (
            Direction.buy,
            D(100),
            D(95),
            Costs(D("0.001"), D(0), D("0.001")),
            D("0.1"),
            D("18.9"),
            D("99.9792045"),
        ),
    ],
)
def test_risk_percent_counts_fees_and_slippage(  # type: ignore[no-untyped-def]
    direction, price, sl, costs, step, expected, loss
) -> None:
    got = size_quantity(
        SizeRule(RP, D(1)),
        price=price,
        stop_loss=sl,
        equity=D(10000),
        override=None,
        amount_step=step,
        direction=direction,
        costs=costs,
    )
    assert got == expected
    # A stop-out loses the 1 % asked, within one step of the per-unit loss (5.39 x 0.01).
    assert got * costs.loss_at_stop(direction, price, sl) == loss
    assert D(100) - loss < step * costs.loss_at_stop(direction, price, sl)


def test_the_notional_cap_holds_at_the_expected_fill_price() -> None:
    # A cap of 3000 at 100 with 5 bps of slippage: fills at 100.05, so 3000 / 100.05
    # = 29.985... -> step 0.001 -> 29.985 (29.985 x 100.05 = 2999.99925 <= 3000, not 3001.50).
    got = size_quantity(
        SizeRule(FQ, D(30), D(3000)),
        price=D(100),
        stop_loss=None,
        equity=D(0),
        override=None,
        amount_step=D("0.001"),
        costs=Costs(D(0), D("0.0005"), D("0.0005")),
    )
    assert got == D("29.985")


def test_funds_pay_the_margin_and_the_fee() -> None:
    # 10 x 100 = 1000 at 1x plus a 0.1 % fee of 1 needs 1001: 1000 free is not enough.
    with pytest.raises(Rejection) as info:
        check_order(Limits(), OK_STATE, MarketRules(), D(10), D(100), D("0.001"))
    assert info.value.code == "insufficient_funds"
    # 9.99 x 100 = 999 + 0.999 = 999.999 fits.
    check_order(Limits(), OK_STATE, MarketRules(), D("9.99"), D(100), D("0.001"))


@pytest.mark.parametrize(
    ("rule", "price", "sl", "override", "code"),
    [
        (SizeRule(None, None), D("100"), None, None, "no_preset"),
        (SizeRule(RP, D("1")), D("100"), None, None, "missing_stop_loss"),
        (SizeRule(RP, D("1")), D("100"), D("100"), None, "invalid_stops"),
        (SizeRule(FN, D("1")), D("0"), None, None, "no_price"),
    ],
)
def test_size_refusals(rule, price, sl, override, code) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Rejection) as info:
        size_quantity(
            rule, price=price, stop_loss=sl, equity=D("1000"), override=override, amount_step=None
        )
    assert info.value.code == code


OK_STATE = AccountState(
    open_positions=0, open_for_symbol=0, realized_today=D("0"), equity=D("1000"), free=D("1000")
)


@pytest.mark.parametrize(
    ("limits", "state", "market", "qty", "price", "code"),
    [
        (
            Limits(max_positions=2),
            AccountState(2, 0, D(0), D(1000), D(1000)),
            MarketRules(),
            D(1),
            D(1),
            "max_positions",
        ),
        (
            Limits(max_positions_per_symbol=1),
            AccountState(1, 1, D(0), D(1000), D(1000)),
            MarketRules(),
            D(1),
            D(1),
            "max_positions_per_symbol",
        ),
        # lost 50 today, equity now 950: day start 1000, 5% of it = 50 -> refused
        (
            Limits(max_daily_loss_percent=D(5)),
            AccountState(0, 0, D(-50), D(950), D(950)),
            MarketRules(),
            D(1),
            D(1),
            "daily_loss_limit",
        ),
        (
            Limits(),
            OK_STATE,
            MarketRules(min_amount=D("0.01")),
            D("0.009"),
            D(100),
            "below_minimum",
        ),
        (Limits(), OK_STATE, MarketRules(), D("0"), D(100), "below_minimum"),
        # 0.05 * 100 = 5 < 10 notional minimum
        (Limits(), OK_STATE, MarketRules(min_cost=D(10)), D("0.05"), D(100), "below_minimum"),
        # 11 * 100 = 1100 > 1000 free
        (Limits(), OK_STATE, MarketRules(), D(11), D(100), "insufficient_funds"),
        # leverage 2: 2001 > 1000 * 2
        (Limits(leverage=D(2)), OK_STATE, MarketRules(), D("20.01"), D(100), "insufficient_funds"),
    ],
)
def test_check_order_refusals(limits, state, market, qty, price, code) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Rejection) as info:
        check_order(limits, state, market, qty, price)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("limits", "state", "market", "qty", "price"),
    [
        (
            Limits(max_positions=3),
            AccountState(2, 2, D(0), D(1000), D(1000)),
            MarketRules(),
            D(1),
            D(1),
        ),
        # lost 49.99 of a 1000 day start: under 5%
        (
            Limits(max_daily_loss_percent=D(5)),
            AccountState(0, 0, D("-49.99"), D("950.01"), D(950)),
            MarketRules(),
            D(1),
            D(1),
        ),
        # exactly the free balance is allowed; leverage 2 allows 2000
        (Limits(), OK_STATE, MarketRules(min_amount=D(1), min_cost=D(10)), D(10), D(100)),
        (Limits(leverage=D(2)), OK_STATE, MarketRules(), D(20), D(100)),
    ],
)
def test_check_order_passes(limits, state, market, qty, price) -> None:  # type: ignore[no-untyped-def]
    check_order(limits, state, market, qty, price)


@pytest.mark.parametrize(
    ("direction", "price", "percent", "tp", "expected"),
    [
        (Direction.buy, D(100), D(2), False, D(98)),
        (Direction.buy, D(100), D(4), True, D(104)),
        (Direction.sell, D(100), D(2), False, D(102)),
        (Direction.sell, D(100), D(4), True, D(96)),
        (Direction.buy, D(100), None, False, None),
    ],
)
def test_default_stops(direction, price, percent, tp, expected) -> None:  # type: ignore[no-untyped-def]
    assert default_stop(direction, price, percent, take_profit=tp) == expected


def test_check_stops() -> None:
    check_stops(Direction.buy, D(100), D(99), D(101))
    check_stops(Direction.sell, D(100), D(101), D(99))
    for direction, sl, tp in [
        (Direction.buy, D(100), None),
        (Direction.buy, None, D(99)),
        (Direction.sell, D(99), None),
        (Direction.sell, None, D(100)),
    ]:
        with pytest.raises(Rejection) as info:
            check_stops(direction, D(100), sl, tp)
        assert info.value.code == "invalid_stops"
