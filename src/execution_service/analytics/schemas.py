from __future__ import annotations

from datetime import date, datetime

from pydantic import Field

from execution_service.schemas import DecimalOut, Model


class DailyRead(Model):
    connection_id: int = Field(validation_alias="execution_connection_id")
    date: date
    total_trades: int
    winning_trades: int
    losing_trades: int
    win_rate: DecimalOut = Field(description="percent")
    gross_profit: DecimalOut
    gross_loss: DecimalOut = Field(description="a positive magnitude")
    net_pnl: DecimalOut
    profit_factor: DecimalOut | None = Field(description="null when there were no losses")
    max_drawdown: DecimalOut
    max_drawdown_percent: DecimalOut
    balance: DecimalOut | None
    equity: DecimalOut | None
    is_final: bool


class SummaryRead(Model):
    connection_id: int | None = Field(description="null: every connection the caller may see")
    since: datetime | None = Field(description="inclusive, UTC")
    until: datetime | None = Field(description="exclusive, UTC")
    starting_equity: DecimalOut | None
    total_trades: int
    winning_trades: int
    losing_trades: int
    win_rate: DecimalOut = Field(description="percent")
    gross_profit: DecimalOut
    gross_loss: DecimalOut = Field(description="a positive magnitude")
    net_pnl: DecimalOut
    profit_factor: DecimalOut | None = Field(description="null when there were no losses")
    expectancy: DecimalOut
    average_win: DecimalOut
    average_loss: DecimalOut = Field(description="a positive magnitude")
    best_trade: DecimalOut | None
    worst_trade: DecimalOut | None
    max_drawdown: DecimalOut
    max_drawdown_percent: DecimalOut


class EquityPoint(Model):
    timestamp: datetime
    equity: DecimalOut
    pnl: DecimalOut = Field(description="the trade closed at this point; 0 at the start")


class EquityRead(Model):
    connection_id: int | None
    since: datetime | None
    until: datetime | None
    starting_equity: DecimalOut | None = Field(description="null: the curve is cumulative PnL")
    points: list[EquityPoint]
