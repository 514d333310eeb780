"""Who trades, with which settings and prices: API keys, presets, data connections and their
market data, and execution connections (accounts, with encrypted credentials)."""

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
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from execution_service.db import Money, UtcDateTime, Vocabulary, utcnow
from execution_service.enums import (
    Adapter,
    ConnectionStatus,
    ConnectionType,
    DataSourceType,
    FeedMode,
    MarketType,
    Role,
    SizeMode,
    SmallTrade,
    StopOutAction,
)
from execution_service.models.base import Base, Owned, Timestamps


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[Role] = mapped_column(Vocabulary(Role, 16))
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
    position_size_mode: Mapped[SizeMode] = mapped_column(Vocabulary(SizeMode, 20))
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
    # An opposite signal closes what the account holds in the symbol; this says whether the
    # rest then opens the other way (swap and margin accounts only).
    reverse_on_opposite: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # SL/TP rest at the venue as orders of their own wherever it can hold them (freqtrade's
    # `stoploss_on_exchange`); false: the monitor alone closes on them.
    stops_on_venue: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Break-even puts the stop this percent beyond the entry, to cover the fees.
    break_even_offset_percent: Mapped[Decimal | None] = mapped_column(Money)
    # A follower's rules (copy trading): how the signals of a leader are taken on this account.
    multiplier: Mapped[Decimal | None] = mapped_column(Money)
    symbols_allowed: Mapped[list[str] | None] = mapped_column(JSON)
    symbols_denied: Mapped[list[str] | None] = mapped_column(JSON)
    symbol_map: Mapped[dict[str, str] | None] = mapped_column(JSON)
    reverse: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    max_leverage: Mapped[Decimal | None] = mapped_column(Money)
    max_risk_percent: Mapped[Decimal | None] = mapped_column(Money)
    min_trade_notional: Mapped[Decimal | None] = mapped_column(Money)
    small_trades: Mapped[SmallTrade | None] = mapped_column(Vocabulary(SmallTrade, 20))
    # Drawdown stop-out: from the equity's peak (percent), or within a UTC day (amount).
    stop_out_drawdown_percent: Mapped[Decimal | None] = mapped_column(Money)
    stop_out_daily_loss: Mapped[Decimal | None] = mapped_column(Money)
    stop_out_action: Mapped[StopOutAction | None] = mapped_column(Vocabulary(StopOutAction, 20))


class DataConnection(Owned, Timestamps, Base):
    __tablename__ = "data_connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[DataSourceType] = mapped_column(Vocabulary(DataSourceType, 16))
    exchange: Mapped[str | None] = mapped_column(String(64))
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    api_base_url: Mapped[str | None] = mapped_column(String(500))
    market_type: Mapped[MarketType] = mapped_column(
        Vocabulary(MarketType, 16), default=MarketType.spot
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # A gateway login (mtapi), encrypted as an execution connection's credentials are.
    credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    credentials_key_id: Mapped[str | None] = mapped_column(String(32))
    api_key_hint: Mapped[str | None] = mapped_column(String(8))
    # What a fetching connection polls (beside its positions' symbols), and the bar timeframes
    # built from its ticks: [{"timeframe": "1m", "retention_days": 30}, ...].
    symbols: Mapped[list[str] | None] = mapped_column(JSON)
    timeframes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # Health: the last check (POST .../test), the last successful fetch, failures in a row.
    last_error: Mapped[str | None] = mapped_column(Text)
    last_tested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_fetched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When a feed worker may poll it next: a claim moves it past the poll, so several workers
    # never poll one connection at once; failures move it further (backoff).
    next_fetch_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Its price stream (`market_data.streams`): the mode its worker last recorded, and until when
    # that worker holds it (renewed while it lives; another process takes it over once lapsed).
    # While streaming, `next_fetch_at` is held at `streamed_until`: nobody polls it.
    mode: Mapped[FeedMode | None] = mapped_column(Vocabulary(FeedMode, 16))
    streamed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class MarketData(Base):
    """A bar (`timeframe` such as 1m) or a pushed price (`timeframe` = 'tick', close = price)."""

    __tablename__ = "market_data"
    __table_args__ = (
        UniqueConstraint("data_connection_id", "symbol", "timeframe", "timestamp"),
        Index("ix_market_data_latest", "data_connection_id", "symbol", "timestamp"),
        # The retention loop's deletes: expired ticks (and bars of a timeframe) oldest first.
        Index("ix_market_data_expiry", "timeframe", "timestamp"),
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


class MarketDataLatest(Base):
    """The newest point per (data connection, symbol), upserted with every ingest: the latest
    price is one primary-key lookup however much history `market_data` holds, and it outlives
    the retention of the ticks it came from. `close` is a tick's price or a bar's close."""

    __tablename__ = "market_data_latest"

    data_connection_id: Mapped[int] = mapped_column(
        ForeignKey("data_connections.id", ondelete="CASCADE"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    close: Mapped[Decimal] = mapped_column(Money)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ExecutionConnection(Owned, Timestamps, Base):
    __tablename__ = "execution_connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[ConnectionType] = mapped_column(Vocabulary(ConnectionType, 16))
    adapter: Mapped[Adapter] = mapped_column(Vocabulary(Adapter, 16))
    exchange: Mapped[str | None] = mapped_column(String(64))
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    api_base_url: Mapped[str | None] = mapped_column(String(500))
    market_type: Mapped[MarketType] = mapped_column(
        Vocabulary(MarketType, 16), default=MarketType.spot
    )
    # An operator-defined egress group's name (EXEC_EGRESS_PROXIES); None goes out directly.
    egress: Mapped[str | None] = mapped_column(String(32))
    preset_id: Mapped[int | None] = mapped_column(
        ForeignKey("trading_presets.id", ondelete="RESTRICT"), index=True
    )
    data_connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("data_connections.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[ConnectionStatus] = mapped_column(
        Vocabulary(ConnectionStatus, 16), default=ConnectionStatus.inactive
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    credentials_key_id: Mapped[str | None] = mapped_column(String(32))
    api_key_hint: Mapped[str | None] = mapped_column(String(8))
    paper_config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_tested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # Only closing trades are taken: set by hand, or by a drawdown stop-out.
    close_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The stop-out's record: the equity high-water mark and the day's opening equity it is
    # measured from, and when and why it stopped the account (cleared only by the API).
    peak_equity: Mapped[Decimal | None] = mapped_column(Money)
    day_equity: Mapped[Decimal | None] = mapped_column(Money)
    day_equity_on: Mapped[date | None] = mapped_column(Date)
    stopped_out_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    stop_out_reason: Mapped[str | None] = mapped_column(String(200))


class KeptBalance(Base):
    """An execution connection's balances as its venue last reported them: what sizing falls back
    on when the venue's request budget has no room for a fresh read (a fan-out to many accounts
    on one venue and IP). Shared by every process and kept across restarts; a copy older than
    the account's last execution is never used (our own fills are not booked into it)."""

    __tablename__ = "kept_balances"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("execution_connections.id", ondelete="CASCADE"), primary_key=True
    )
    # {currency: [free, used, total]}, each a decimal string
    balances: Mapped[dict[str, list[str]]] = mapped_column(JSON)
    read_at: Mapped[datetime] = mapped_column(UtcDateTime)
