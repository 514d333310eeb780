"""The monitor's rules, table-driven; every expected figure worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from execution_service.market_data.sources import Move, Quote
from execution_service.positions.rules import (
    Close,
    Level,
    PositionView,
    evaluate,
    evaluate_path,
    trailing_level,
)

LONG = PositionView(
    "buy", entry=D(100), quantity=D(10), initial_quantity=D(10), sl=D(95), tp=D(110)
)
SHORT = PositionView(
    "sell", entry=D(100), quantity=D(10), initial_quantity=D(10), sl=D(105), tp=D(90)
)


@pytest.mark.parametrize(
    ("view", "price", "close"),
    [
        (LONG, D(100), None),
        (LONG, D("95.01"), None),
        (LONG, D(95), Close("sl", D(10), True)),  # at the stop is a hit
        (LONG, D(80), Close("sl", D(10), True)),  # a gap through it too
        (LONG, D("109.99"), None),
        (LONG, D(110), Close("tp", D(10), True)),
        (SHORT, D(105), Close("sl", D(10), True)),
        (SHORT, D("104.99"), None),
        (SHORT, D(90), Close("tp", D(10), True)),
        (SHORT, D(89), Close("tp", D(10), True)),
    ],
)
def test_stop_loss_and_take_profit(view: PositionView, price: D, close: Close | None) -> None:
    assert evaluate(view, price).close == close


def test_trailing_stop_follows_the_best_price() -> None:
    view = PositionView("buy", D(100), D(2), D(2), trailing_percent=D(5), best=D(100))
    step = evaluate(view, D(120))  # new best 120, stop 114
    assert step.best == D(120) and step.close is None
    assert trailing_level("buy", D(120), D(5)) == D(114)
    view = PositionView("buy", D(100), D(2), D(2), trailing_percent=D(5), best=step.best)
    assert evaluate(view, D("114.01")).close is None
    assert evaluate(view, D(114)).close == Close("trailing_stop", D(2), True)
    short = PositionView("sell", D(100), D(2), D(2), trailing_percent=D(10), best=D(80))
    assert trailing_level("sell", D(80), D(10)) == D(88)
    assert evaluate(short, D(87)).close is None and evaluate(short, D(70)).best == D(70)
    assert evaluate(short, D(88)).close == Close("trailing_stop", D(2), True)


def test_break_even_moves_the_stop_to_the_entry() -> None:
    # risk 100 - 95 = 5; trigger at 1.5 R = 7.5 of profit -> price 107.5
    view = PositionView("buy", D(100), D(1), D(1), sl=D(95), break_even_rr=D("1.5"))
    assert evaluate(view, D("107.49")).sl == D(95)
    moved = evaluate(view, D("107.5"))
    assert moved.sl == D(100) and moved.break_even_done and moved.close is None
    done = PositionView(
        "buy", D(100), D(1), D(1), sl=D(100), break_even_rr=D("1.5"), break_even_done=True
    )
    assert evaluate(done, D(100)).close == Close("sl", D(1), True)
    short = PositionView("sell", D(100), D(1), D(1), sl=D(104), break_even_rr=D(1))
    assert evaluate(short, D(96)).sl == D(100) and evaluate(short, D("96.01")).sl == D(104)


def test_partial_take_profits() -> None:
    levels = (Level(D(110), D(50)), Level(D(120), D(30)), Level(D(130), D(20)))
    view = PositionView("buy", D(100), D(10), D(10), sl=D(90), levels=levels)
    assert evaluate(view, D(109)).close is None
    assert evaluate(view, D(110)).close == Close("tp", D(5), False, 0)  # 50% of 10
    after_first = PositionView(
        "buy", D(100), D(5), D(10), sl=D(90), levels=(Level(D(110), D(50), True), *levels[1:])
    )
    assert evaluate(after_first, D(121)).close == Close(
        "tp", D(3), False, 1
    )  # 30% of the initial 10
    last = PositionView(
        "buy",
        D(100),
        D(2),
        D(10),
        sl=D(90),
        levels=(Level(D(110), D(50), True), Level(D(120), D(30), True), levels[2]),
    )
    assert evaluate(last, D(130)).close == Close(
        "tp", D(2), True, 2
    )  # the last level takes the rest
    short = PositionView(
        "sell", D(100), D(4), D(4), levels=(Level(D(90), D(25)), Level(D(80), D(75)))
    )
    assert evaluate(short, D(90)).close == Close("tp", D(1), False, 0)


def test_break_even_counts_from_the_initial_risk_and_clears_the_fees() -> None:
    # The SL was tightened by hand from 90 to 98 after the open: the trigger is still measured
    # from the risk taken, 100 - 90 = 10; at 1 R the price must reach 110, not 102.
    view = PositionView(
        "buy",
        D(100),
        D(1),
        D(1),
        sl=D(98),
        break_even_rr=D(1),
        initial_sl=D(90),
        break_even_offset=D("0.2"),
    )
    assert evaluate(view, D(109)).sl == D(98)
    # At 110 the stop moves past the entry by 0.2 %: 100 x 1.002 = 100.2, which pays a
    # round trip of 0.1 % fees each way.
    moved = evaluate(view, D(110))
    assert (moved.sl, moved.break_even_done) == (D("100.2"), True)
    short = PositionView(
        "sell",
        D(200),
        D(1),
        D(1),
        sl=D(210),
        break_even_rr=D(2),
        initial_sl=D(210),
        break_even_offset=D("0.5"),
    )
    # risk 10, 2 R = 20 -> 180; the stop goes to 200 x (1 - 0.005) = 199.
    assert evaluate(short, D(180)).sl == D(199)


@pytest.mark.parametrize(
    ("levels", "quantity", "price", "close"),
    [
        # 50 % then 30 %: a ladder of 80 % leaves a runner. At the second level 30 % of the
        # initial 10 = 3 closes and 2 keep running (the SL and trailing stop manage them).
        ((Level(D(110), D(50), True), Level(D(120), D(30))), D(5), D(120), ("tp", D(3), False)),
        # A ladder of 100 %: the last level takes what is left (2, not 20 % of 10 exactly
        # if a fill was short).
        ((Level(D(110), D(80), True), Level(D(120), D(20))), D(2), D(120), ("tp", D(2), True)),
        # A runner's level that asks for more than is left takes what is left.
        ((Level(D(110), D(60), True), Level(D(120), D(30))), D(2), D(120), ("tp", D(2), True)),
    ],
)
def test_a_ladder_under_100_percent_leaves_a_runner(
    levels: tuple[Level, ...], quantity: D, price: D, close: tuple[str, D, bool]
) -> None:
    view = PositionView("buy", D(100), quantity, D(10), sl=D(90), levels=levels)
    decided = evaluate(view, price).close
    assert decided is not None
    assert (decided.reason, decided.quantity, decided.full) == close


@pytest.mark.parametrize(
    ("view", "price", "reason"),
    [
        # A long liquidated at 90.45 with its SL at 95: a gap to 90 goes through both, and the
        # venue's liquidation comes first; 94 is the SL's.
        (
            PositionView("buy", D(100), D(1), D(1), sl=D(95), liquidation=D("90.45")),
            D(90),
            "liquidation",
        ),
        (PositionView("buy", D(100), D(1), D(1), sl=D(95), liquidation=D("90.45")), D(94), "sl"),
        (PositionView("buy", D(100), D(1), D(1), liquidation=D("90.45")), D("90.46"), None),
        (
            PositionView("sell", D(100), D(1), D(1), liquidation=D("109.45")),
            D("109.45"),
            "liquidation",
        ),
    ],
)
def test_liquidation(view: PositionView, price: D, reason: str | None) -> None:
    close = evaluate(view, price).close
    assert (close.reason if close else None) == reason


def test_the_stop_wins_over_everything() -> None:
    view = PositionView(
        "buy", D(100), D(1), D(1), sl=D(95), tp=D(110), trailing_percent=D(1), best=D(100)
    )
    assert evaluate(view, D(94)).close == Close("sl", D(1), True)


T0 = datetime(2026, 12, 1, tzinfo=UTC)


def tick(price: str, second: int = 0) -> Move:
    return Move.tick(T0 + timedelta(seconds=second), D(price))


def bar(low: str, high: str, close: str, second: int = 0) -> Move:
    return Move(T0 + timedelta(seconds=second), D(close), D(low), D(high))


@pytest.mark.parametrize(
    ("view", "path", "close", "best"),
    [
        # Two prices in one tick, 110 then 104: the trailing stop (5 %) rose to 110 x 0.95 =
        # 104.5 at the first and is hit by the second; the latest price alone (104 against the
        # old best 100, stop 95) would have missed it.
        (
            PositionView("buy", D(100), D(1), D(1), trailing_percent=D(5), best=D(100)),
            (tick("110", 1), tick("104", 2)),
            Close("trailing_stop", D(1), True),
            D(110),
        ),
        # A bar whose low (90) crossed the SL (95) but closed at 99: the low hits it, before the
        # bar's high (101) is judged, so the best is still the entry (100).
        (LONG, (bar("90", "101", "99"),), Close("sl", D(10), True), D(100)),
        # SL 95 and TP 110 both inside one bar (94 .. 111): the SL is taken as hit first.
        (LONG, (bar("94", "111", "105"),), Close("sl", D(10), True), D(100)),
        (SHORT, (bar("89", "106", "95"),), Close("sl", D(10), True), D(100)),
        # A bar that stays between the stops: nothing, and the best is its high (102).
        (LONG, (bar("96", "102", "100"),), None, D(102)),
        # The short's best is the bar's low (91), short of the TP at 90.
        (SHORT, (bar("91", "104", "100"),), None, D(91)),
        # The first close ends the path: a TP at 110, then a drop to the SL later in the path.
        (LONG, (tick("110", 1), tick("90", 2)), Close("tp", D(10), True), D(110)),
    ],
)
def test_every_price_of_a_path_is_judged_in_order(
    view: PositionView, path: tuple[Move, ...], close: Close | None, best: D
) -> None:
    decision = evaluate_path(view, path)
    assert (decision.close, decision.best) == (close, best)


def test_break_even_moved_early_in_a_path_can_close_later_in_it() -> None:
    # Entry 100, SL 96 (risk 4), break-even at 2R: 108 moves the SL to 100, then 100 hits it.
    view = PositionView("buy", D(100), D(1), D(1), sl=D(96), break_even_rr=D(2))
    decision = evaluate_path(view, (tick("108", 1), tick("100", 2)))
    assert decision.close == Close("sl", D(1), True) and decision.sl == D(100)


def test_a_position_judges_only_the_moves_since_its_last_mark() -> None:
    quote = Quote(D(99), T0 + timedelta(seconds=3), (tick("90", 1), tick("99", 3)))
    assert quote.since(T0 + timedelta(seconds=1)) == (tick("99", 3),)
    assert quote.since(None) == quote.path
    assert quote.since(T0 + timedelta(seconds=3)) == (Move.tick(quote.at, D(99)),)  # no news
    assert (quote.low, quote.high) == (D(90), D(99))
