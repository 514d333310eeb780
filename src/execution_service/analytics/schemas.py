from __future__ import annotations

from datetime import date, datetime

from pydantic import Field

from execution_service.schemas import DecimalOut, Model


def _trades(period: str) -> str:
    return f"positions closed {period}, each one trade with its whole net PnL (fees included)"


def _net(period: str) -> str:
    return (
        f"PnL realised {period}, fees included, each fill on its own time: an entry's fee at "
        "the open, each partial exit at its fill, the rest at the close"
    )


DRAWDOWN_PERCENT = "percent of the running equity peak; null when the starting equity is unknown"


class DailyRead(Model):
    connection_id: int = Field(validation_alias="execution_connection_id")
    date: date
    total_trades: int = Field(description=_trades("this UTC day"))
    winning_trades: int
    losing_trades: int
    win_rate: DecimalOut = Field(description="percent")
    gross_profit: DecimalOut
    gross_loss: DecimalOut = Field(description="a positive magnitude")
    net_pnl: DecimalOut = Field(description=_net("this UTC day"))
    profit_factor: DecimalOut | None = Field(description="null when there were no losses")
    max_drawdown: DecimalOut = Field(description="of the day's realised equity curve")
    max_drawdown_percent: DecimalOut | None = Field(
        description="percent of the running equity peak from the opening equity; null when "
        "the day's opening equity is unknown"
    )
    opening_equity: DecimalOut | None = Field(
        description="the equity snapshot at the day's first activity (a signal, a fill, or the "
        "analytics worker's first snapshot, normally just after midnight UTC); never "
        "overwritten later that day; null until taken"
    )
    balance: DecimalOut | None = Field(
        description="cash in the quote currency at the latest snapshot; null until taken"
    )
    equity: DecimalOut | None = Field(
        description="balance plus open positions (their unrealised PnL; on a real spot "
        "account, the coins' value) at the latest snapshot; null until taken"
    )
    is_final: bool


class SummaryRead(Model):
    connection_id: int | None = Field(description="null: every connection the caller may see")
    since: datetime | None = Field(description="inclusive, UTC")
    until: datetime | None = Field(description="exclusive, UTC")
    starting_equity: DecimalOut | None = Field(
        description="the measured equity at the range's start (a day-opening snapshot); null "
        "when unknown"
    )
    total_trades: int = Field(description=_trades("in the range"))
    winning_trades: int
    losing_trades: int
    win_rate: DecimalOut = Field(description="percent")
    gross_profit: DecimalOut
    gross_loss: DecimalOut = Field(description="a positive magnitude")
    net_pnl: DecimalOut = Field(description=_net("in the range"))
    profit_factor: DecimalOut | None = Field(description="null when there were no losses")
    expectancy: DecimalOut = Field(description="the closed trades' average net PnL")
    average_win: DecimalOut
    average_loss: DecimalOut = Field(description="a positive magnitude")
    best_trade: DecimalOut | None
    worst_trade: DecimalOut | None
    max_drawdown: DecimalOut = Field(description="of the realised equity curve")
    max_drawdown_percent: DecimalOut | None = Field(description=DRAWDOWN_PERCENT)


class EquityPoint(Model):
    timestamp: datetime
    equity: DecimalOut
    pnl: DecimalOut = Field(
        description="what was realised at this point (an exit's PnL net of its fee, or an "
        "entry's fee); 0 at the start"
    )


class EquityRead(Model):
    connection_id: int | None
    since: datetime | None
    until: datetime | None
    starting_equity: DecimalOut | None = Field(
        description="the measured equity at the range's start; null: unknown, and the curve is "
        "cumulative PnL from 0"
    )
    points: list[EquityPoint]
