"""Every table, in one module so Alembic sees them with one import. Money columns are `Money`."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from execution_service.db import Money, UtcDateTime, metadata, utcnow


class Base(DeclarativeBase):
    metadata = metadata


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Owned:
    """Rows belong to a platform user (`user_id`) or to the platform (`admin_id`)."""

    user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    admin_id: Mapped[int | None] = mapped_column(BigInteger)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class TradingPreset(Owned, Timestamps, Base):
    __tablename__ = "trading_presets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    position_size_mode: Mapped[str] = mapped_column(String(20))
    position_size_value: Mapped[Decimal] = mapped_column(Money)
    max_positions: Mapped[int | None] = mapped_column(Integer)
    max_positions_per_symbol: Mapped[int | None] = mapped_column(Integer)
    max_daily_loss_percent: Mapped[Decimal | None] = mapped_column(Money)
    max_position_notional: Mapped[Decimal | None] = mapped_column(Money)
    default_sl_percent: Mapped[Decimal | None] = mapped_column(Money)
    default_tp_percent: Mapped[Decimal | None] = mapped_column(Money)
    trailing_stop_percent: Mapped[Decimal | None] = mapped_column(Money)
    break_even_trigger_rr: Mapped[Decimal | None] = mapped_column(Money)
    leverage: Mapped[Decimal] = mapped_column(Money, default=Decimal(1))


class DataConnection(Owned, Timestamps, Base):
    __tablename__ = "data_connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))
    exchange: Mapped[str | None] = mapped_column(String(64))
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    api_base_url: Mapped[str | None] = mapped_column(String(500))
    market_type: Mapped[str] = mapped_column(String(16), default="spot")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class MarketData(Base):
    """A bar (`timeframe` such as 1m) or a pushed price (`timeframe` = 'tick', close = price)."""

    __tablename__ = "market_data"
    __table_args__ = (
        UniqueConstraint("data_connection_id", "symbol", "timeframe", "timestamp"),
        Index("ix_market_data_latest", "data_connection_id", "symbol", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    data_connection_id: Mapped[int] = mapped_column(
        ForeignKey("data_connections.id", ondelete="CASCADE")
    )
    symbol: Mapped[str] = mapped_column(String(64))
    timeframe: Mapped[str] = mapped_column(String(8))
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime)
    open: Mapped[Decimal | None] = mapped_column(Money)
    high: Mapped[Decimal | None] = mapped_column(Money)
    low: Mapped[Decimal | None] = mapped_column(Money)
    close: Mapped[Decimal] = mapped_column(Money)
    volume: Mapped[Decimal | None] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ExecutionConnection(Owned, Timestamps, Base):
    __tablename__ = "execution_connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))
    adapter: Mapped[str] = mapped_column(String(16))
    exchange: Mapped[str | None] = mapped_column(String(64))
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    api_base_url: Mapped[str | None] = mapped_column(String(500))
    market_type: Mapped[str] = mapped_column(String(16), default="spot")
    preset_id: Mapped[int | None] = mapped_column(
        ForeignKey("trading_presets.id", ondelete="RESTRICT"), index=True
    )
    data_connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("data_connections.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="inactive")
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    credentials_key_id: Mapped[str | None] = mapped_column(String(32))
    api_key_hint: Mapped[str | None] = mapped_column(String(8))
    paper_config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_tested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)


class PaperBalance(Base):
    __tablename__ = "paper_balances"
    __table_args__ = (UniqueConstraint("connection_id", "currency"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("execution_connections.id", ondelete="CASCADE")
    )
    currency: Mapped[str] = mapped_column(String(16))
    free: Mapped[Decimal] = mapped_column(Money)
    used: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))


class PaperHolding(Base):
    """Net position per symbol of a paper account (one-way mode, like a margin account)."""

    __tablename__ = "paper_holdings"
    __table_args__ = (UniqueConstraint("connection_id", "symbol"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("execution_connections.id", ondelete="CASCADE")
    )
    symbol: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(Money)  # signed: negative is short
    average_price: Mapped[Decimal] = mapped_column(Money)
    margin: Mapped[Decimal] = mapped_column(Money)


class PaperOrder(Base):
    """The paper exchange's own book: paper orders are found by client order id like real ones."""

    __tablename__ = "paper_orders"
    __table_args__ = (
        UniqueConstraint("connection_id", "client_order_id"),
        Index("ix_paper_orders_open", "connection_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("execution_connections.id", ondelete="CASCADE")
    )
    client_order_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(8))
    amount: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal | None] = mapped_column(Money)
    filled: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    average: Mapped[Decimal | None] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    fee_currency: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Signal(Owned, Base):
    __tablename__ = "signals"
    __table_args__ = (UniqueConstraint("owner_key", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "u:<user_id>", "a:<admin_id>" or "platform": one non-null owner for the idempotency key.
    owner_key: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str | None] = mapped_column(String(200))
    symbol: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))
    order_type: Mapped[str] = mapped_column(String(8))
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
    purpose: Mapped[str] = mapped_column(String(8))
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    order_id: Mapped[str | None] = mapped_column(String(100))
    symbol: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))
    order_type: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal | None] = mapped_column(Money)
    filled_quantity: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    average_price: Mapped[Decimal | None] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    fee_currency: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    response_data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # For an entry: the stops and trailing settings the position opens with (decimals as strings).
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    close_reason: Mapped[str | None] = mapped_column(String(20))
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
    direction: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Money)
    initial_quantity: Mapped[Decimal] = mapped_column(Money)
    entry_price: Mapped[Decimal] = mapped_column(Money)
    # Units per lot (MetaTrader); None is 1: quantity is then in units of the base asset.
    contract_size: Mapped[Decimal | None] = mapped_column(Money)
    current_price: Mapped[Decimal | None] = mapped_column(Money)
    sl_price: Mapped[Decimal | None] = mapped_column(Money)
    tp_price: Mapped[Decimal | None] = mapped_column(Money)
    take_profits: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    trailing_stop_percent: Mapped[Decimal | None] = mapped_column(Money)
    best_price: Mapped[Decimal | None] = mapped_column(Money)
    break_even_trigger_rr: Mapped[Decimal | None] = mapped_column(Money)
    break_even_done: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="open")
    pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    pnl_percentage: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    realized_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    fees: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    close_price: Mapped[Decimal | None] = mapped_column(Money)
    closed_reason: Mapped[str | None] = mapped_column(String(20))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    last_price_update_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


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
    max_drawdown_percent: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    balance: Mapped[Decimal | None] = mapped_column(Money)
    equity: Mapped[Decimal | None] = mapped_column(Money)
    is_final: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance: Mapped[str] = mapped_column(String(100))
    beat_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Event(Owned, Base):
    """The outbox: written in the transaction of the change it reports, read by the webhook
    worker and the live stream. `dispatched_at` is set once webhook deliveries exist for it."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)


class Webhook(Owned, Timestamps, Base):
    """A URL that receives events: a user's own, or (no user_id) every event of the platform."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    # None: every event type.
    event_types: Mapped[list[str] | None] = mapped_column(JSON)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    secret_key_id: Mapped[str] = mapped_column(String(32))


class WebhookDelivery(Base):
    """One event to one webhook: the retry state and the outcome of the latest attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
