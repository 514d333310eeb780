from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from execution_service.enums import Direction, OrderStatus, OrderType, Purpose
from execution_service.positions.schemas import PositionRead
from execution_service.schemas import Body, DecimalOut, Flag, Model, OwnerId


class ExecutionLogRead(Model):
    id: int
    connection_id: int = Field(validation_alias="execution_connection_id")
    user_id: int | None
    signal_id: int | None
    position_id: int | None
    purpose: Purpose
    client_order_id: str
    order_id: str | None
    symbol: str
    direction: Direction
    order_type: OrderType
    quantity: DecimalOut
    price: DecimalOut | None
    filled_quantity: DecimalOut
    average_price: DecimalOut | None
    fee: DecimalOut
    fee_currency: str | None
    status: OrderStatus
    error_code: str | None
    error_message: str | None
    close_reason: str | None
    latency_ms: int | None
    submitted_at: datetime | None
    executed_at: datetime | None
    created_at: datetime
    fees: dict[str, DecimalOut] | None = Field(
        default=None, description="every fee currency's total, where the fills paid in several"
    )
    fee_in_quote: DecimalOut | None = Field(
        default=None, description="all fees in the quote currency at the fills' time, as booked"
    )


class ExecutionLogDetail(ExecutionLogRead):
    response_data: dict[str, Any] | None


class PositionCloseResult(Model):
    position: PositionRead
    execution: ExecutionLogRead


class CloseAll(Body):
    """What `POST /close-all` closes: the caller's own accounts; an admin or service key names
    one `user_id`, or every owner with `every_owner: true`."""

    user_id: OwnerId | None = None
    every_owner: Flag = False


class CloseAllResult(Model):
    """What a kill switch started: the cancels and exits, each an execution log. Calling it again
    starts nothing more."""

    connections: int
    cancelled: int
    closing: int
    failed: int = Field(description="resting orders the venue could not be asked to cancel")
    executions: list[ExecutionLogRead]
