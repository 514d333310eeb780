from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AnyHttpUrl, Field, SecretStr, model_validator

from execution_service.enums import Adapter, ConnectionStatus, ConnectionType, MarketType
from execution_service.exchanges.kinds import KINDS
from execution_service.market_data.schemas import ExchangeId
from execution_service.schemas import (
    Body,
    DecimalOut,
    Flag,
    Model,
    Name,
    NonNegativeDecimal,
    OwnerId,
    RefId,
)

Credentials = dict[
    Annotated[str, Field(min_length=1, max_length=32)], Annotated[SecretStr, Field(max_length=4096)]
]


class PaperSettings(Body):
    balance: dict[Annotated[str, Field(pattern=r"^[A-Z0-9]{2,16}$")], NonNegativeDecimal] | None = (
        Field(default=None, max_length=50, description='default {"USDT": "10000"}')
    )
    fee_rate: Annotated[NonNegativeDecimal, Field(le=Decimal("0.1"))] = Decimal(0)
    slippage_bps: Annotated[NonNegativeDecimal, Field(le=1000)] = Decimal(0)
    maintenance_margin_percent: Annotated[Decimal, Field(gt=0, le=50)] = Field(
        default=Decimal("0.5"),
        description="swap accounts: isolated positions are liquidated when their margin plus "
        "PnL falls to this percent of their notional",
    )


EgressName = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$",
        description="an egress group the operator defined (EXEC_EGRESS_PROXIES), ccxt only: "
        "its own source IP, and its own request budget per venue",
    ),
]


def check_credentials(adapter: Adapter, credentials: dict[str, SecretStr] | None) -> None:
    KINDS[adapter].check_credentials(set(credentials or {}))


class ConnectionCreate(Body):
    name: Name
    type: ConnectionType = ConnectionType.crypto
    adapter: Adapter
    exchange: ExchangeId | None = None
    credentials: Credentials | None = Field(default=None, description="write-only")
    sandbox: Flag = False
    api_base_url: AnyHttpUrl | None = None
    market_type: MarketType = MarketType.spot
    egress: EgressName | None = None
    preset_id: RefId | None = None
    data_connection_id: RefId | None = None
    paper: PaperSettings | None = None
    user_id: OwnerId | None = None
    admin_id: OwnerId | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "paper account",
                    "adapter": "paper",
                    "preset_id": 1,
                    "data_connection_id": 1,
                    "paper": {"balance": {"USDT": "10000"}, "fee_rate": "0.001"},
                },
                {
                    "name": "binance main",
                    "adapter": "ccxt",
                    "exchange": "binance",
                    "credentials": {"api_key": "...", "api_secret": "..."},
                    "preset_id": 1,
                },
            ]
        }
    }

    @model_validator(mode="after")
    def _consistent(self) -> ConnectionCreate:
        kind = KINDS[self.adapter]
        check_credentials(self.adapter, self.credentials)
        if kind.needs_exchange and not self.exchange:
            raise ValueError(f"{self.adapter} connections need an exchange id")
        if kind.needs_base_url and not self.api_base_url:
            raise ValueError(f"{self.adapter} connections need the gateway's api_base_url")
        if self.paper is not None and not kind.simulated:
            raise ValueError("`paper` settings apply to paper connections only")
        return self


class ConnectionUpdate(Body):
    name: Name | None = None
    credentials: Credentials | None = Field(default=None, description="replaces all credentials")
    sandbox: Flag | None = None
    api_base_url: AnyHttpUrl | None = None
    market_type: MarketType | None = None
    egress: EgressName | None = None
    preset_id: RefId | None = None
    data_connection_id: RefId | None = None
    fee_rate: Annotated[NonNegativeDecimal, Field(le=Decimal("0.1"))] | None = None
    slippage_bps: Annotated[NonNegativeDecimal, Field(le=1000)] | None = None
    close_only: Flag | None = Field(
        default=None, description="take closing trades only (a stop-out sets it too)"
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"name": "main account", "preset_id": 2},
                {"credentials": {"api_key": "...", "api_secret": "..."}},
            ]
        }
    }


class ConnectionRead(Model):
    id: int
    user_id: int | None
    admin_id: int | None
    name: str
    type: ConnectionType
    adapter: Adapter
    exchange: str | None
    sandbox: bool
    api_base_url: str | None
    market_type: MarketType
    egress: str | None = Field(description="the egress group it goes out by (null: direct)")
    preset_id: int | None
    data_connection_id: int | None
    status: ConnectionStatus
    is_active: bool
    credentials_set: bool
    api_key_hint: str | None
    paper: dict[str, DecimalOut] | None = None
    last_error: str | None
    last_tested_at: datetime | None
    last_used_at: datetime | None
    consecutive_failures: int
    close_only: bool = Field(description="only closing trades are taken (by hand, or a stop-out)")
    peak_equity: DecimalOut | None = None
    stopped_out_at: datetime | None = None
    stop_out_reason: str | None = None
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return data
        fields = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
        fields["credentials_set"] = bool(data.credentials_encrypted)
        config = data.paper_config
        fields["paper"] = {k: Decimal(str(v)) for k, v in config.items()} if config else None
        return fields


class ConnectionTestResult(Model):
    ok: bool
    latency_ms: int
    error: str | None


class BalanceRead(Model):
    free: DecimalOut
    used: DecimalOut
    total: DecimalOut
