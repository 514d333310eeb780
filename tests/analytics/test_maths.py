"""The performance figures, table-driven; every expected figure is worked out by hand beside it."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from execution_service.analytics.maths import Summary, equity_curve, summarize
from execution_service.decimals import to_str

# The contract's summary fields, in its order.
FIELDS = [
    "total_trades",
    "winning_trades",
    "losing_trades",
    "win_rate",
    "gross_profit",
    "gross_loss",
    "net_pnl",
    "profit_factor",
    "expectancy",
    "average_win",
    "average_loss",
    "best_trade",
    "worst_trade",
    "max_drawdown",
    "max_drawdown_percent",
]


def row(*values: object) -> dict[str, str | None]:
    return dict(zip(FIELDS, (None if v is None else str(v) for v in values), strict=True))


CASES = [
    pytest.param(
        ["100", "-50", "30", "-20", "0"],
        "1000",
        # wins 100, 30 -> 2; losses -50, -20 -> 2; the 0 trade counts in total only -> 5
        # win_rate 2/5*100 = 40; gross_profit 100+30 = 130; gross_loss 50+20 = 70; net 60
        # profit_factor 130/70 = 1.857142857... -> 1.85714286; expectancy 60/5 = 12
        # average_win 130/2 = 65; average_loss 70/2 = 35; best 100; worst -50
        # curve 1000, 1100, 1050, 1080, 1060, 1060: peak 1100, trough 1050 -> drawdown 50
        # percent 50/1100*100 = 4.545454545... -> 4.54545455
        row(5, 2, 2, 40, 130, 70, 60, "1.85714286", 12, 65, 35, 100, -50, 50, "4.54545455"),
        id="mixed",
    ),
    pytest.param(
        ["10", "20"],
        None,
        # 2 trades, both wins: win_rate 100; gross 30 / 0; net 30; no losses -> profit_factor None
        # expectancy 30/2 = 15; average_win 15; average_loss 0 (none); best 20; worst 10
        # curve (from 0, no starting equity) 0, 10, 30 only rises -> drawdown 0; percent
        # unknown without a starting equity -> None
        row(2, 2, 0, 100, 30, 0, 30, None, 15, 15, 0, 20, 10, 0, None),
        id="no-losses",
    ),
    pytest.param(
        [],
        "1000",
        # nothing: every count and sum 0, win_rate 0, profit_factor None, best/worst None
        row(0, 0, 0, 0, 0, 0, 0, None, 0, 0, 0, None, None, 0, 0),
        id="no-trades",
    ),
    pytest.param(
        ["-25"],
        "500",
        # 1 trade, a loss: win_rate 0; gross 0 / 25; net -25; profit_factor 0/25 = 0
        # expectancy -25/1 = -25; average_win 0; average_loss 25; best = worst = -25
        # curve 500, 475 -> drawdown 25; percent 25/500*100 = 5
        row(1, 0, 1, 0, 0, 25, -25, 0, -25, 0, 25, -25, -25, 25, 5),
        id="one-trade",
    ),
    pytest.param(
        ["-50", "20"],
        None,
        # 2 trades, 1 win, 1 loss; win_rate 1/2*100 = 50; gross 20 / 50; net -30
        # profit_factor 20/50 = 0.4; expectancy -30/2 = -15; averages 20/1 = 20, 50/1 = 50
        # best 20; worst -50; curve from 0: 0, -50, -30 -> drawdown 50; no starting equity ->
        # percent None (unknown, not 0)
        row(2, 1, 1, 50, 20, 50, -30, "0.4", -15, 20, 50, 20, -50, 50, None),
        id="unknown-starting-equity",
    ),
    pytest.param(
        ["-10", "5", "-20"],
        "0",
        # 3 trades, 1 win, 2 losses; gross 5 / 10+20 = 30; net -25
        # win_rate 1/3*100 = 33.333333333... -> 33.33333333; profit_factor 5/30 = 0.1666666666...
        # -> 0.16666667; expectancy -25/3 = -8.333333333... -> -8.33333333
        # average_win 5/1 = 5; average_loss 30/2 = 15; best 5; worst -20
        # curve 0, -10, -5, -25: the peak stays 0 (<= 0) -> percent 0; drawdown 0 - (-25) = 25
        row(3, 1, 2, "33.33333333", 5, 30, -25, "0.16666667", "-8.33333333", 5, 15, 5, -20, 25, 0),
        id="non-positive-peak",
    ),
    pytest.param(
        ["-20", "920", "-100"],
        "100",
        # 3 trades, 1 win, 2 losses; gross 920 / 20+100 = 120; net 800
        # win_rate 1/3*100 -> 33.33333333; profit_factor 920/120 = 7.6666666666... -> 7.66666667
        # expectancy 800/3 = 266.666666666... -> 266.66666667; average_win 920/1 = 920
        # average_loss 120/2 = 60; best 920; worst -100
        # curve 100, 80, 1000, 900: falls 20 (from 100) and 100 (from 1000) -> drawdown 100
        # percents 20/100*100 = 20 and 100/1000*100 = 10 -> 20: the largest percent is not
        # the largest absolute fall
        row(
            3,
            1,
            2,
            "33.33333333",
            920,
            120,
            800,
            "7.66666667",
            "266.66666667",
            920,
            60,
            920,
            -100,
            100,
            20,
        ),
        id="percent-and-absolute-peaks-differ",
    ),
    pytest.param(
        ["0.1", "0.2", "-0.3"],
        "1000.5",
        # 3 trades, 2 wins, 1 loss; gross 0.1+0.2 = 0.3 / 0.3; net 0 (floats give 5.55e-17)
        # win_rate 2/3*100 = 66.666666666... -> 66.66666667; profit_factor 0.3/0.3 = 1
        # expectancy 0/3 = 0; average_win 0.3/2 = 0.15; average_loss 0.3/1 = 0.3
        # best 0.2; worst -0.3
        # curve 1000.5, 1000.6, 1000.8, 1000.5 -> drawdown 0.3
        # percent 0.3/1000.8*100 = 30/1000.8 = 0.03 - 0.024/1000.8 = 0.0299760191... -> 0.02997602
        row(
            3,
            2,
            1,
            "66.66666667",
            "0.3",
            "0.3",
            0,
            1,
            0,
            "0.15",
            "0.3",
            "0.2",
            "-0.3",
            "0.3",
            "0.02997602",
        ),
        id="exact-decimals",
    ),
]


@pytest.mark.parametrize(("pnls", "start", "expected"), CASES)
def test_summarize(pnls: list[str], start: str | None, expected: dict[str, str | None]) -> None:
    summary = summarize([Decimal(p) for p in pnls], None if start is None else Decimal(start))
    got = {
        k: None if v is None else (to_str(v) if isinstance(v, Decimal) else str(v))
        for k, v in asdict(summary).items()
    }
    assert got == expected


def test_the_summary_has_exactly_the_contracts_fields() -> None:
    assert [f.name for f in fields(Summary)] == FIELDS


def test_figures_are_decimals_without_trailing_zeros() -> None:
    summary = summarize([Decimal("100.00"), Decimal("-50.0")], Decimal("1000"))
    # 1 win of 2 -> 50, not 50.00000000; sums keep no padding either
    assert str(summary.win_rate) == "50" and str(summary.gross_profit) == "100"
    assert all(isinstance(v, Decimal | int | None) for v in asdict(summary).values())
    assert not any(isinstance(v, float) for v in asdict(summary).values())


T = [datetime(2026, 1, 5, h, tzinfo=UTC) for h in (9, 10, 11)]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # 1000 + 100 = 1100; 1100 - 50 = 1050; 1050 + 0.5 = 1050.5
        ("1000", ["1100", "1050", "1050.5"]),
        # unknown starting equity: cumulative PnL from 0 -> 100, 50, 50.5
        (None, ["100", "50", "50.5"]),
    ],
)
def test_equity_curve(start: str | None, expected: list[str]) -> None:
    points = list(zip(T, [Decimal("100"), Decimal("-50"), Decimal("0.5")], strict=True))
    curve = equity_curve(None if start is None else Decimal(start), points)
    assert [at for at, _ in curve] == T
    assert [to_str(e) for _, e in curve] == expected


def test_equity_curve_of_nothing_is_empty() -> None:
    assert equity_curve(Decimal("1000"), []) == []
