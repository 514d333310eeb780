from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    AwareDatetime,
    Field,
    SecretStr,
    Strict,
    model_validator,
)

from execution_service.enums import DataSourceType, FeedMode, MarketType
from execution_service.exchanges.kinds import DATA_KINDS
from execution_service.schemas import (
    Body,
    DecimalOut,
    Flag,
    Model,
    Name,
    NonNegativeDecimal,
    OwnerId,
    PositiveDecimal,
    Symbol,
    in_range,
)

ExchangeId = Annotated[str, Field(min_length=2, max_length=64, pattern=r"^[a-z0-9_]+$")]
Timeframe = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,2}[smhdwM]$")]
HistoryTimeframe = Annotated[str, Field(pattern=r"^(tick|[1-9][0-9]{0,2}[smhdwM])$")]
MAX_POINTS = 10_000


Credentials = dict[
    Annotated[str, Field(min_length=1, max_length=32)], Annotated[SecretStr, Field(max_length=4096)]
]
Symbols = Annotated[list[Symbol], Field(max_length=500)]


class TimeframeSetting(Body):
    timeframe: Timeframe
    retention_days: Annotated[int, Strict(), Field(ge=1, le=36500)] | None = Field(
        default=None, description="default: EXEC_MARKET_DATA_BAR_RETENTION_DAYS"
    )


Timeframes = Annotated[list[TimeframeSetting], Field(max_length=20)]


def _unique_timeframes(timeframes: list[TimeframeSetting] | None) -> None:
    names = [t.timeframe for t in timeframes or []]
    if len(set(names)) != len(names):
        raise ValueError("a timeframe is listed twice")


class DataConnectionCreate(Body):
    name: Name
    type: DataSourceType = DataSourceType.manual
    exchange: ExchangeId | None = None
    credentials: Credentials | None = Field(default=None, description="write-only (mtapi)")
    sandbox: Flag = False
    api_base_url: AnyHttpUrl | None = None
    market_type: MarketType = MarketType.spot
    symbols: Symbols | None = Field(
        default=None, description="ccxt, mtapi: fetched even without positions"
    )
    timeframes: Timeframes | None = Field(
        default=None,
        description="bars built from the connection's ticks (ccxt, mtapi), kept retention_days",
    )
    user_id: OwnerId | None = None
    admin_id: OwnerId | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"name": "my prices", "type": "manual"},
                {
                    "name": "binance tickers",
                    "type": "ccxt",
                    "exchange": "binance",
                    "symbols": ["BTC/USDT", "ETH/USDT"],
                    "timeframes": [{"timeframe": "1m", "retention_days": 30}],
                },
                {
                    "name": "fx quotes",
                    "type": "mtapi",
                    "api_base_url": "https://mtapi.example",
                    "credentials": {"user": "7001234", "password": "...", "host": "mt.example"},
                    "symbols": ["EUR/USD"],
                },
            ]
        }
    }

    @model_validator(mode="after")
    def _consistent(self) -> DataConnectionCreate:
        access = DATA_KINDS[self.type].access
        access.check_credentials(set(self.credentials or {}))
        if access.needs_exchange and not self.exchange:
            raise ValueError(f"a {self.type} data connection needs an exchange id")
        if access.needs_base_url and not self.api_base_url:
            raise ValueError(f"a {self.type} data connection needs the gateway's api_base_url")
        _unique_timeframes(self.timeframes)
        return self


class DataConnectionUpdate(Body):
    name: Name | None = None
    exchange: ExchangeId | None = None
    credentials: Credentials | None = Field(default=None, description="replaces all credentials")
    sandbox: Flag | None = None
    api_base_url: AnyHttpUrl | None = None
    market_type: MarketType | None = None
    is_active: Flag | None = None
    symbols: Symbols | None = None
    timeframes: Timeframes | None = None

    model_config = {"json_schema_extra": {"examples": [{"name": "my prices", "is_active": False}]}}

    @model_validator(mode="after")
    def _consistent(self) -> DataConnectionUpdate:
        _unique_timeframes(self.timeframes)
        return self


class DataConnectionRead(Model):
    id: int
    user_id: int | None
    admin_id: int | None
    name: str
    type: DataSourceType
    exchange: str | None
    sandbox: bool
    api_base_url: str | None
    market_type: MarketType
    is_active: bool
    credentials_set: bool = False
    api_key_hint: str | None = None
    symbols: list[str] | None = None
    timeframes: list[TimeframeSetting] | None = None
    last_error: str | None = None
    last_tested_at: datetime | None = None
    last_fetched_at: datetime | None = None
    consecutive_failures: int = 0
    stale: bool = Field(
        default=False,
        description="a fetching connection that has fetched nothing for "
        "EXEC_MARKET_DATA_STALE_SECONDS",
    )
    mode: FeedMode | None = Field(
        default=None,
        description="how a fetching connection gets its prices now: `streaming` (pushed by its "
        "venue) or `polling` (fetched every poll: its venue does not stream, or its stream is "
        "down or silent); null for a manual connection",
    )
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return data
        fields = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
        fields["credentials_set"] = bool(data.credentials_encrypted)
        fields["consecutive_failures"] = data.consecutive_failures or 0
        return fields


class DataConnectionTestResult(Model):
    ok: bool
    latency_ms: int
    error: str | None


# An offset is required, and the instant must lie in the range the service stores.
InstantAware = Annotated[AwareDatetime, AfterValidator(in_range)]


class PricePoint(Body):
    symbol: Symbol
    price: PositiveDecimal
    timestamp: InstantAware | None = Field(default=None, description="default: now (UTC)")


class Bar(Body):
    symbol: Symbol
    timeframe: Timeframe
    timestamp: InstantAware
    open: PositiveDecimal
    high: PositiveDecimal
    low: PositiveDecimal
    close: PositiveDecimal
    volume: NonNegativeDecimal = Field(default=Decimal(0))

    @model_validator(mode="after")
    def _ohlc(self) -> Bar:
        if not (self.low <= min(self.open, self.close) and self.high >= max(self.open, self.close)):
            raise ValueError("a bar needs low <= open, close <= high")
        return self


class MarketDataIngest(Body):
    prices: Annotated[list[PricePoint], Field(max_length=MAX_POINTS)] = []
    bars: Annotated[list[Bar], Field(max_length=MAX_POINTS)] = []

    model_config = {
        "json_schema_extra": {
            "examples": [{"prices": [{"symbol": "BTC/USDT", "price": "65000.5"}]}]
        }
    }

    @model_validator(mode="after")
    def _something(self) -> MarketDataIngest:
        if not self.prices and not self.bars:
            raise ValueError("send `prices` or `bars`")
        return self


class IngestResult(Model):
    stored: int


class LatestPrice(Model):
    symbol: str
    price: DecimalOut
    timestamp: datetime


class MarketDataRow(Model):
    """A tick (`close` is its price; no open, high, low or volume) or a bar."""

    timestamp: datetime
    open: DecimalOut | None = None
    high: DecimalOut | None = None
    low: DecimalOut | None = None
    close: DecimalOut
    volume: DecimalOut | None = None


class MarketDataPage(Model):
    """A page of one symbol's history, oldest first. `built`: the bars were built from the
    stored ticks for this request (none of this timeframe are stored)."""

    symbol: str
    timeframe: str
    built: bool
    items: list[MarketDataRow]
    total: int
    limit: int
    offset: int
