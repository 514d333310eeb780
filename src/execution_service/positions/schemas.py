from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from execution_service.enums import CloseReason, Direction, PositionStatus
from execution_service.schemas import Body, DecimalOut, Model, Percent, PositiveDecimal
from execution_service.signals.schemas import TakeProfitRead


class PositionRead(Model):
    id: int
    connection_id: int = Field(validation_alias="execution_connection_id")
    user_id: int | None
    signal_id: int | None
    execution_log_id: int
    symbol: str
    direction: Direction
    quantity: DecimalOut
    initial_quantity: DecimalOut
    entry_price: DecimalOut
    current_price: DecimalOut | None
    sl_price: DecimalOut | None
    tp_price: DecimalOut | None
    take_profits: list[TakeProfitRead] | None
    trailing_stop_percent: DecimalOut | None
    break_even_trigger_rr: DecimalOut | None
    status: PositionStatus
    pnl: DecimalOut
    pnl_percentage: DecimalOut
    realized_pnl: DecimalOut
    fees: DecimalOut
    close_price: DecimalOut | None
    closed_reason: CloseReason | None
    opened_at: datetime
    closed_at: datetime | None
    last_price_update_at: datetime | None


class PositionUpdate(Body):
    sl_price: PositiveDecimal | None = None
    tp_price: PositiveDecimal | None = None
    trailing_stop_percent: Percent | None = None

    model_config = {"json_schema_extra": {"examples": [{"sl_price": "64500"}]}}

    @model_validator(mode="after")
    def _something(self) -> PositionUpdate:
        if not self.model_fields_set:
            raise ValueError("give sl_price, tp_price or trailing_stop_percent")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class PositionClose(Body):
    quantity: PositiveDecimal | None = Field(default=None, description="default: all of it")

    model_config = {"json_schema_extra": {"examples": [{"quantity": "0.01"}]}}
