"""Performance figures. Pure functions: no I/O, Decimal only.

Two inputs, because a position's PnL is realised in steps (its entry fee at the open, each
partial exit at its fill, the rest at the close) that may fall on different days:
- trades: each closed position's net PnL (after every fee), counted when it closes. The trade
  statistics come from these: counts, win rate, gross profit and loss, profit factor,
  expectancy, average win and loss, best and worst trade;
- realised: each booking's PnL in time order (execution logs' `realized_pnl`: an entry's fee as a
  negative figure, an exit's gross PnL minus its fee). `net_pnl`, the equity curve and the
  drawdowns come from these, so a range's or a day's net is what was realised in it.

Conventions:
- a zero trade counts in `total_trades` only, neither as a win nor as a loss;
- `gross_loss` and `average_loss` are positive magnitudes. gross_profit - gross_loss is the closed
  trades' net; `net_pnl` differs from it when a range holds part of a position's bookings (a fee
  of a position still open, a partial exit before a close outside the range);
- `profit_factor` is None when there are no losses: it is undefined, and a sentinel such as 999
  would read as a real figure;
- ratios (win rate, profit factor, expectancy, averages, drawdown percent) are quantized to 8
  decimal places (half-even) and normalized; sums and the absolute drawdown are exact;
- the equity curve is starting equity + cumulative realised PnL, from 0 when the starting equity
  is unknown. `max_drawdown` is its largest peak-to-trough fall. `max_drawdown_percent` is the
  largest (peak - trough) / peak * 100; it is None when the starting equity is unknown (a percent
  of cumulative PnL alone means nothing), and a point whose running peak is <= 0 adds nothing (a
  fall from a non-positive peak has no meaningful percent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from execution_service.decimals import HUNDRED, ZERO, normalize

PLACES = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class Summary:
    total_trades: int
    winning_trades: int
    losing_trades: int
    win_rate: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    net_pnl: Decimal
    profit_factor: Decimal | None
    expectancy: Decimal
    average_win: Decimal
    average_loss: Decimal
    best_trade: Decimal | None
    worst_trade: Decimal | None
    max_drawdown: Decimal
    max_drawdown_percent: Decimal | None


def rounded(value: Decimal) -> Decimal:
    return normalize(value.quantize(PLACES, rounding=ROUND_HALF_EVEN))


def ratio(numerator: Decimal, denominator: Decimal | int) -> Decimal:
    """numerator / denominator to 8 places; 0 for an empty denominator (no trades, no wins)."""
    if not denominator:
        return ZERO
    return rounded(numerator / denominator)


def drawdowns(
    starting_equity: Decimal | None, pnls: list[Decimal]
) -> tuple[Decimal, Decimal | None]:
    """(largest absolute fall, largest percent fall) of the curve; see the module docstring."""
    equity = starting_equity if starting_equity is not None else ZERO
    peak, worst, worst_percent = equity, ZERO, ZERO
    for pnl in pnls:
        equity += pnl
        peak = max(peak, equity)
        fall = peak - equity
        worst = max(worst, fall)
        if starting_equity is not None and peak > 0:
            worst_percent = max(worst_percent, fall * HUNDRED / peak)
    percent = rounded(worst_percent) if starting_equity is not None else None
    return normalize(worst), percent


def summarize(
    pnls: list[Decimal], starting_equity: Decimal | None, realised: list[Decimal] | None = None
) -> Summary:
    """pnls: the closed trades' net PnL, in close order. realised: the bookings in time order
    (the order shapes the drawdown); None when they are the trades themselves (each position
    booked whole at its close)."""
    bookings = pnls if realised is None else realised
    wins = [p for p in pnls if p > 0]
    losses = [-p for p in pnls if p < 0]
    gross_profit, gross_loss, net = sum(wins, ZERO), sum(losses, ZERO), sum(bookings, ZERO)
    max_drawdown, max_drawdown_percent = drawdowns(starting_equity, bookings)
    return Summary(
        total_trades=len(pnls),
        winning_trades=len(wins),
        losing_trades=len(losses),
        win_rate=ratio(HUNDRED * len(wins), len(pnls)),
        gross_profit=normalize(gross_profit),
        gross_loss=normalize(gross_loss),
        net_pnl=normalize(net),
        profit_factor=ratio(gross_profit, gross_loss) if losses else None,
        expectancy=ratio(gross_profit - gross_loss, len(pnls)),
        average_win=ratio(gross_profit, len(wins)),
        average_loss=ratio(gross_loss, len(losses)),
        best_trade=normalize(max(pnls)) if pnls else None,
        worst_trade=normalize(min(pnls)) if pnls else None,
        max_drawdown=max_drawdown,
        max_drawdown_percent=max_drawdown_percent,
    )


def equity_curve(
    starting_equity: Decimal | None, points: list[tuple[datetime, Decimal]]
) -> list[tuple[datetime, Decimal]]:
    """Equity after each (time, pnl) booking: starting equity (0 if unknown) + cumulative PnL."""
    equity = starting_equity if starting_equity is not None else ZERO
    curve: list[tuple[datetime, Decimal]] = []
    for at, pnl in points:
        equity += pnl
        curve.append((at, normalize(equity)))
    return curve
