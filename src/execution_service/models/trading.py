"""What is traded: signals, execution logs (one row per order), positions and the daily
analytics."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from execution_service.db import Money, UtcDateTime, Vocabulary, utcnow
from execution_service.enums import (
    CloseReason,
    Direction,
    OrderStatus,
    OrderType,
    PositionStatus,
    Purpose,
)
from execution_service.models.base import Base, Owned, Timestamps


class Signal(Owned, Base):
    __tablename__ = "signals"
    __table_args__ = (UniqueConstraint("owner_key", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "u:<user_id>", "a:<admin_id>" or "platform": one non-null owner for the idempotency key.
    owner_key: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str | None] = mapped_column(String(200))
    symbol: Mapped[str] = mapped_column(String(64))
    direction: Mapped[Direction] = mapped_column(Vocabulary(Direction, 8))
    order_type: Mapped[OrderType] = mapped_column(Vocabulary(OrderType, 8))
    entry_price: Mapped[Decimal | None] = mapped_column(Money)
    sl_price: Mapped[Decimal | None] = mapped_column(Money)
    tp_price: Mapped[Decimal | None] = mapped_column(Money)
    take_profits: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    quantity: Mapped[Decimal | None] = mapped_column(Money)
    connection_ids: Mapped[list[int]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)


class ExecutionLog(Owned, Timestamps, Base):
    __tablename__ = "execution_logs"
    __table_args__ = (
        Index("ix_execution_logs_conn_status", "execution_connection_id", "status"),
        Index("ix_execution_logs_status", "status"),
        # What a connection realised in a range (analytics, the daily loss limit).
        Index("ix_execution_logs_conn_executed", "execution_connection_id", "executed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    execution_connection_id: Mapped[int] = mapped_column(
        ForeignKey("execution_connections.id", ondelete="RESTRICT")
    )
    signal_id: Mapped[int | None] = mapped_column(
        ForeignKey("signals.id", ondelete="RESTRICT"), index=True
    )
    # Not a foreign key: positions reference logs (the seed's relation); this back-reference
    # would make a cycle that SQLite cannot create.
    position_id: Mapped[int | None] = mapped_column(Integer, index=True)
    purpose: Mapped[Purpose] = mapped_column(Vocabulary(Purpose, 8))
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    order_id: Mapped[str | None] = mapped_column(String(100))
    symbol: Mapped[str] = mapped_column(String(64))
    direction: Mapped[Direction] = mapped_column(Vocabulary(Direction, 8))
    order_type: Mapped[OrderType] = mapped_column(Vocabulary(OrderType, 8))
    quantity: Mapped[Decimal] = mapped_column(Money)
    # A limit's price; a protective order's level (its trigger, or an OCO limit leg's price).
    price: Mapped[Decimal | None] = mapped_column(Money)
    filled_quantity: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    average_price: Mapped[Decimal | None] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    fee_currency: Mapped[str | None] = mapped_column(String(16))
    # Every fee currency's total (strings), and their sum in the quote currency as booked.
    fees: Mapped[dict[str, str] | None] = mapped_column(JSON)
    fee_in_quote: Mapped[Decimal | None] = mapped_column(Money)
    status: Mapped[OrderStatus] = mapped_column(Vocabulary(OrderStatus, 20))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    response_data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The PnL this order's fills realised (fees included), on the day they did.
    realized_pnl: Mapped[Decimal | None] = mapped_column(Money)
    # For an entry: the stops and trailing settings the position opens with (decimals as strings).
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    close_reason: Mapped[CloseReason | None] = mapped_column(Vocabulary(CloseReason, 20))
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    executed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ExecutionPosition(Owned, Timestamps, Base):
    __tablename__ = "execution_positions"
    __table_args__ = (
        Index("ix_execution_positions_status_conn", "status", "execution_connection_id"),
        Index("ix_execution_positions_conn_symbol", "execution_connection_id", "symbol", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    execution_connection_id: Mapped[int] = mapped_column(
        ForeignKey("execution_connections.id", ondelete="RESTRICT")
    )
    signal_id: Mapped[int | None] = mapped_column(ForeignKey("signals.id", ondelete="RESTRICT"))
    execution_log_id: Mapped[int] = mapped_column(
        ForeignKey("execution_logs.id", ondelete="RESTRICT"), unique=True
    )
    symbol: Mapped[str] = mapped_column(String(64))
    direction: Mapped[Direction] = mapped_column(Vocabulary(Direction, 8))
    quantity: Mapped[Decimal] = mapped_column(Money)
    initial_quantity: Mapped[Decimal] = mapped_column(Money)
    entry_price: Mapped[Decimal] = mapped_column(Money)
    # Units per lot (MetaTrader); None is 1: quantity is then in units of the base asset.
    contract_size: Mapped[Decimal | None] = mapped_column(Money)
    current_price: Mapped[Decimal | None] = mapped_column(Money)
    sl_price: Mapped[Decimal | None] = mapped_column(Money)
    tp_price: Mapped[Decimal | None] = mapped_column(Money)
    take_profits: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # The SL and TP levels resting at the venue (`orders.protection`); the monitor emulates a
    # level only where it differs from the one held (None: nothing held).
    held_sl_price: Mapped[Decimal | None] = mapped_column(Money)
    held_tp_price: Mapped[Decimal | None] = mapped_column(Money)
    # The trailing stop's percent where the venue trails it itself (a trailing order).
    held_trailing_percent: Mapped[Decimal | None] = mapped_column(Money)
    trailing_stop_percent: Mapped[Decimal | None] = mapped_column(Money)
    best_price: Mapped[Decimal | None] = mapped_column(Money)
    break_even_trigger_rr: Mapped[Decimal | None] = mapped_column(Money)
    break_even_done: Mapped[bool] = mapped_column(Boolean, default=False)
    # Break-even is measured from the risk taken at the open (the SL then), and moves the stop
    # past the entry by this percent of it (the fees).
    initial_sl_price: Mapped[Decimal | None] = mapped_column(Money)
    break_even_offset_percent: Mapped[Decimal | None] = mapped_column(Money)
    status: Mapped[PositionStatus] = mapped_column(
        Vocabulary(PositionStatus, 16), default=PositionStatus.open
    )
    pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    pnl_percentage: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    realized_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    fees: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    close_price: Mapped[Decimal | None] = mapped_column(Money)
    closed_reason: Mapped[CloseReason | None] = mapped_column(Vocabulary(CloseReason, 20))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    last_price_update_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The leverage it was opened with (its margin is the entry notional over it; 1 on spot), and
    # where the venue liquidates it.
    leverage: Mapped[Decimal] = mapped_column(Money, default=Decimal(1), server_default="1")
    liquidation_price: Mapped[Decimal | None] = mapped_column(Money)
    # Funding settled on it (received positive, paid negative), already in realized_pnl.
    funding_fees: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    # The venue's funding settled up to this time is booked (derivatives venues).
    funding_synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Exit orders the venue refused in a row; past the limit the position is flagged.
    exit_refusals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    flagged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ExecutionAnalytics(Base):
    __tablename__ = "execution_analytics"
    __table_args__ = (UniqueConstraint("execution_connection_id", "date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    execution_connection_id: Mapped[int] = mapped_column(
        ForeignKey("execution_connections.id", ondelete="CASCADE")
    )
    date: Mapped[date] = mapped_column(Date)
    total_trades: Mapped[int] = mapped_column(Integer, default=0)
    winning_trades: Mapped[int] = mapped_column(Integer, default=0)
    losing_trades: Mapped[int] = mapped_column(Integer, default=0)
    win_rate: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    gross_profit: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    gross_loss: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    net_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    profit_factor: Mapped[Decimal | None] = mapped_column(Money)
    max_drawdown: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    # None while the day's opening equity is unknown (a percent of nothing means nothing).
    max_drawdown_percent: Mapped[Decimal | None] = mapped_column(Money)
    # The equity at the day's first activity (a signal, a fill, the worker's first snapshot,
    # normally just after midnight UTC): set once, never overwritten later that day.
    opening_equity: Mapped[Decimal | None] = mapped_column(Money)
    balance: Mapped[Decimal | None] = mapped_column(Money)  # cash in the quote currency
    equity: Mapped[Decimal | None] = mapped_column(Money)  # balance + open PnL (latest snapshot)
    is_final: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
