from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field, Strict, model_validator

from execution_service.enums import SizeMode, SmallTrade, StopOutAction
from execution_service.schemas import (
    Body,
    DecimalOut,
    Flag,
    Model,
    Name,
    NonNegativeDecimal,
    OwnerId,
    Percent,
    PositiveDecimal,
    Symbol,
)

Count = Annotated[int, Strict(), Field(ge=1, le=100_000)]  # `true` is not 1
Symbols = Annotated[list[Symbol], Field(max_length=500)]
Leverage = Annotated[PositiveDecimal, Field(ge=1, le=1000)]


class PresetFields(Body):
    max_positions: Count | None = None
    max_positions_per_symbol: Count | None = None
    max_daily_loss_percent: Percent | None = None
    max_position_notional: PositiveDecimal | None = None
    default_sl_percent: Percent | None = None
    default_tp_percent: Annotated[PositiveDecimal, Field(le=10_000)] | None = None
    trailing_stop_percent: Percent | None = None
    break_even_trigger_rr: Annotated[PositiveDecimal, Field(le=1000)] | None = None
    # Break-even puts the stop this percent beyond the entry (covering the fees), not at it.
    break_even_offset_percent: Annotated[NonNegativeDecimal, Field(le=10)] | None = None
    # A follower's rules (copy trading): README "Copy trading", docs/decisions.md.
    multiplier: Annotated[PositiveDecimal, Field(le=100)] | None = Field(
        default=None, description="times the computed size (or the signal's quantity)"
    )
    symbols_allowed: Symbols | None = Field(default=None, description="only these (after map)")
    symbols_denied: Symbols | None = Field(default=None, description="never these (after map)")
    symbol_map: Annotated[dict[Symbol, Symbol], Field(max_length=500)] | None = Field(
        default=None, description='the signal\'s symbol -> this account\'s, e.g. "XAUUSD": "GOLD"'
    )
    max_leverage: Leverage | None = Field(
        default=None, description="a signal asking for more leverage is skipped"
    )
    max_risk_percent: Percent | None = Field(
        default=None, description="of equity at the SL per trade: the size is cut to fit"
    )
    min_trade_notional: PositiveDecimal | None = None
    small_trades: SmallTrade | None = Field(
        default=None,
        description="a trade under the minimum (the venue's or min_trade_notional): skipped, or "
        "raised to the minimum; unset, it is refused below_minimum",
    )
    stop_out_drawdown_percent: Percent | None = Field(
        default=None, description="equity this far below its peak stops the account"
    )
    stop_out_daily_loss: PositiveDecimal | None = Field(
        default=None, description="equity this much below the day's opening stops the account"
    )
    stop_out_action: StopOutAction | None = Field(
        default=None, description="close_only (the default) or close_and_pause"
    )


def _check_size(mode: SizeMode | None, value: Decimal | None) -> None:
    if mode is SizeMode.risk_percent and value is not None and value > 100:
        raise ValueError("risk_percent position_size_value is a percent of equity: at most 100")


class PresetCreate(PresetFields):
    name: Name
    position_size_mode: SizeMode
    position_size_value: PositiveDecimal
    leverage: Leverage = Decimal(1)
    # An opposite signal closes what is held; then, on swap and margin accounts, opens the
    # other way with the rest if this is true.
    reverse_on_opposite: Flag = False
    # SL and TP rest at the venue as orders of their own where it can hold them (they protect
    # the position while this service is down); false: only the monitor closes on them.
    stops_on_venue: Flag = True
    # Follower: take the leader's signals the other way (SL and TP swapped).
    reverse: Flag = False
    user_id: OwnerId | None = None
    admin_id: OwnerId | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "1% risk",
                    "position_size_mode": "risk_percent",
                    "position_size_value": "1",
                    "max_positions": 5,
                    "default_sl_percent": "2",
                    "default_tp_percent": "4",
                }
            ]
        }
    }

    @model_validator(mode="after")
    def _size(self) -> PresetCreate:
        _check_size(self.position_size_mode, self.position_size_value)
        return self


class PresetUpdate(PresetFields):
    name: Name | None = None
    position_size_mode: SizeMode | None = None
    position_size_value: PositiveDecimal | None = None
    leverage: Leverage | None = None
    reverse_on_opposite: Flag | None = None
    stops_on_venue: Flag | None = None
    reverse: Flag | None = None

    model_config = {
        "json_schema_extra": {"examples": [{"max_positions": 3, "default_sl_percent": "1.5"}]}
    }


class PresetRead(Model):
    id: int
    user_id: int | None
    admin_id: int | None
    name: str
    position_size_mode: SizeMode
    position_size_value: DecimalOut
    max_positions: int | None
    max_positions_per_symbol: int | None
    max_daily_loss_percent: DecimalOut | None
    max_position_notional: DecimalOut | None
    default_sl_percent: DecimalOut | None
    default_tp_percent: DecimalOut | None
    trailing_stop_percent: DecimalOut | None
    break_even_trigger_rr: DecimalOut | None
    break_even_offset_percent: DecimalOut | None
    leverage: DecimalOut
    reverse_on_opposite: bool
    stops_on_venue: bool
    multiplier: DecimalOut | None
    symbols_allowed: list[str] | None
    symbols_denied: list[str] | None
    symbol_map: dict[str, str] | None
    reverse: bool
    max_leverage: DecimalOut | None
    max_risk_percent: DecimalOut | None
    min_trade_notional: DecimalOut | None
    small_trades: SmallTrade | None
    stop_out_drawdown_percent: DecimalOut | None
    stop_out_daily_loss: DecimalOut | None
    stop_out_action: StopOutAction | None
    created_at: datetime
    updated_at: datetime
