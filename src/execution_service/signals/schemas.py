from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from execution_service.decimals import ONE
from execution_service.enums import Direction, OrderStatus, OrderType, Purpose
from execution_service.positions.schemas import TakeProfitRead
from execution_service.schemas import (
    Body,
    DecimalOut,
    Model,
    OwnerId,
    Percent,
    PositiveDecimal,
    RefId,
    Symbol,
)


class TakeProfit(Body):
    price: PositiveDecimal
    close_percent: Percent


class SignalCreate(Body):
    external_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    symbol: Symbol
    direction: Direction
    # A signal enters with a market or a limit order; stops are its SL/TP, not its order type.
    order_type: Literal[OrderType.market, OrderType.limit] = OrderType.market
    entry_price: PositiveDecimal | None = None
    sl_price: PositiveDecimal | None = None
    tp_price: PositiveDecimal | None = None
    take_profits: Annotated[list[TakeProfit], Field(min_length=1, max_length=10)] | None = None
    quantity: PositiveDecimal | None = None
    leverage: Annotated[PositiveDecimal, Field(ge=1, le=1000)] | None = Field(
        default=None,
        description="the leader's leverage: swap accounts trade at it (a follower's "
        "max_leverage skips more); unset, each account's preset says",
    )
    connection_ids: Annotated[list[RefId], Field(min_length=1, max_length=5000)] | None = None
    user_id: OwnerId | None = None
    admin_id: OwnerId | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "external_id": "strategy-7:2026-11-24T10:00",
                    "symbol": "BTC/USDT",
                    "direction": "buy",
                    "order_type": "market",
                    "sl_price": "64000",
                    "tp_price": "68000",
                }
            ]
        }
    }

    @model_validator(mode="after")
    def _stops(self) -> SignalCreate:
        if self.order_type is OrderType.limit and self.entry_price is None:
            raise ValueError("a limit order needs an entry_price")
        if self.tp_price is not None and self.take_profits:
            raise ValueError("give tp_price or take_profits, not both")
        if self.connection_ids and len(set(self.connection_ids)) != len(self.connection_ids):
            raise ValueError("connection_ids repeat a connection")
        if self.take_profits and sum(tp.close_percent for tp in self.take_profits) > 100:
            raise ValueError("take_profits close more than 100 percent")
        sign = ONE if self.direction is Direction.buy else -ONE
        targets = [self.tp_price] if self.tp_price else [tp.price for tp in self.take_profits or []]
        if self.entry_price is not None:
            if self.sl_price is not None and (self.entry_price - self.sl_price) * sign <= 0:
                raise ValueError(
                    f"sl_price must be on the losing side of the entry for a {self.direction}"
                )
            for tp in targets:
                if (tp - self.entry_price) * sign <= 0:
                    raise ValueError(
                        f"take profit must be on the winning side of the entry ({self.direction})"
                    )
        if self.sl_price is not None:
            for tp in targets:
                if (tp - self.sl_price) * sign <= 0:
                    raise ValueError("the stop loss is beyond the take profit")
        return self

    def plan_take_profits(self) -> list[dict[str, str]] | None:
        if not self.take_profits:
            return None
        return [
            {"price": str(tp.price), "close_percent": str(tp.close_percent)}
            for tp in self.take_profits
        ]


class ExecutionRead(Model):
    connection_id: int
    # entry: the order the signal opened (or refused); exit: one that closed a position the
    # other way (netting, `closed_reason: signal`).
    purpose: Purpose
    status: OrderStatus
    execution_log_id: int
    position_id: int | None
    quantity: DecimalOut
    price: DecimalOut | None
    error_code: str | None
    error_message: str | None


class SignalRead(Model):
    id: int
    external_id: str | None
    user_id: int | None
    admin_id: int | None
    symbol: str
    direction: Direction
    order_type: OrderType
    entry_price: DecimalOut | None
    sl_price: DecimalOut | None
    tp_price: DecimalOut | None
    take_profits: list[TakeProfitRead] | None
    quantity: DecimalOut | None
    created_at: datetime
    executions_total: int = Field(
        description="how many executions the signal has: one per target connection (filled, "
        "rejected, skipped, ...), plus the exits netting sent"
    )
    by_status: dict[str, int] = Field(
        description='executions_total by status, e.g. {"filled": 9990, "skipped": 10}'
    )
    executions_url: str = Field(
        description="every execution, paged: GET /api/v1/signals/{id}/executions?limit=&offset="
    )
    executions: list[ExecutionRead] = Field(
        description="the first executions in execution_log_id order: at most 100 in the answer "
        "to POST /signals and GET /signals/{id}, at most 20 per signal in GET /signals. When "
        "executions_total is larger, the rest are at executions_url"
    )


def take_profits_out(raw: list[dict[str, Any]] | None) -> list[TakeProfitRead] | None:
    if not raw:
        return None
    return [
        TakeProfitRead(price=Decimal(t["price"]), close_percent=Decimal(t["close_percent"]))
        for t in raw
    ]
