from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AnyHttpUrl, AwareDatetime, Field, model_validator

from execution_service.enums import DataSourceType, MarketType
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
)

ExchangeId = Annotated[str, Field(min_length=2, max_length=64, pattern=r"^[a-z0-9_]+$")]
Timeframe = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,2}[smhdwM]$")]
MAX_POINTS = 10_000


class DataConnectionCreate(Body):
    name: Name
    type: DataSourceType = DataSourceType.manual
    exchange: ExchangeId | None = None
    sandbox: Flag = False
    api_base_url: AnyHttpUrl | None = None
    market_type: MarketType = MarketType.spot
    user_id: OwnerId | None = None
    admin_id: OwnerId | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"name": "my prices", "type": "manual"},
                {"name": "binance tickers", "type": "ccxt", "exchange": "binance"},
            ]
        }
    }

    @model_validator(mode="after")
    def _exchange_for_ccxt(self) -> DataConnectionCreate:
        if self.type is DataSourceType.ccxt and not self.exchange:
            raise ValueError("a ccxt data connection needs an exchange id")
        return self


class DataConnectionUpdate(Body):
    name: Name | None = None
    exchange: ExchangeId | None = None
    sandbox: Flag | None = None
    api_base_url: AnyHttpUrl | None = None
    market_type: MarketType | None = None
    is_active: Flag | None = None

    model_config = {"json_schema_extra": {"examples": [{"name": "my prices", "is_active": False}]}}


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
    created_at: datetime
    updated_at: datetime


class PricePoint(Body):
    symbol: Symbol
    price: PositiveDecimal
    timestamp: AwareDatetime | None = Field(default=None, description="default: now (UTC)")


class Bar(Body):
    symbol: Symbol
    timeframe: Timeframe
    timestamp: AwareDatetime
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
