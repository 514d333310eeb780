from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import Field, TypeAdapter, computed_field, model_validator
from pydantic_core import to_json

from execution_service.decimals import normalize, to_str
from execution_service.enums import CloseReason, Direction, PositionStatus
from execution_service.positions.rules import trailing_level
from execution_service.schemas import Body, DecimalOut, Model, Percent, PositiveDecimal


class TakeProfitRead(Model):
    """One level of a take-profit ladder: its price and the percent of the position it closes."""

    price: DecimalOut
    close_percent: DecimalOut


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
    held_sl_price: DecimalOut | None = Field(
        description="the SL level resting at the venue as an order of its own (null: none "
        "there; the monitor closes on `sl_price` wherever it differs)"
    )
    held_tp_price: DecimalOut | None = Field(
        description="the TP level resting at the venue (null: none there; the monitor "
        "closes on `tp_price` wherever it differs)"
    )
    held_trailing_percent: DecimalOut | None = Field(
        description="the trailing stop's percent where the venue trails it itself (null: the "
        "monitor trails it)"
    )
    take_profits: list[TakeProfitRead] | None
    trailing_stop_percent: DecimalOut | None
    best_price: DecimalOut | None = Field(
        description="the best price since the open (highest for a long, lowest for a short): "
        "the trailing stop's high-water mark"
    )
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
    leverage: DecimalOut = Field(description="what it was opened with: 1 on a spot account")
    liquidation_price: DecimalOut | None = Field(
        description="where the venue (or the paper simulator) liquidates it; null on spot"
    )
    funding_fees: DecimalOut = Field(
        description="funding settled on it, received positive and paid negative (in realized_pnl)"
    )
    exit_refusals: int = Field(description="exit orders the venue refused in a row")
    flagged_at: datetime | None = Field(
        description="set once its exits were refused EXEC_EXIT_MAX_REFUSALS times in a row: the "
        "monitor stops sending them and an operator must look (event `position.flagged`)"
    )

    @computed_field(  # type: ignore[prop-decorator]
        description="pnl as a percent of the margin it ties up: pnl_percentage x leverage"
    )
    @property
    def return_on_margin(self) -> DecimalOut:
        return return_on_margin(self.pnl_percentage, self.leverage)

    @computed_field(  # type: ignore[prop-decorator]
        description="the price the trailing stop closes at: trailing_stop_percent away from "
        "best_price (the entry before the first mark); null without a trailing stop"
    )
    @property
    def trailing_stop_price(self) -> DecimalOut | None:
        return trailing_stop_level(
            self.direction, self.best_price, self.entry_price, self.trailing_stop_percent
        )


def return_on_margin(pnl_percentage: Decimal, leverage: Decimal) -> Decimal:
    """The margin is the entry notional over the leverage, so the return on it is the return on
    the notional times the leverage: exact, no division."""
    return normalize(pnl_percentage * leverage)


def trailing_stop_level(
    direction: str, best: Decimal | None, entry: Decimal, percent: Decimal | None
) -> Decimal | None:
    """Where the trailing stop stands: `rules.trailing_level` from the high-water mark, which
    the rules take to be the entry while no price has marked the position yet."""
    if percent is None:
        return None
    return trailing_level(direction, entry if best is None else best, percent)


# --- the list read, built from plain rows -----------------------------------------------------
# A page of 50 validated through PositionRead costs more than the query: the list endpoint instead
# turns rows into JSON directly, with the same fields, order and strings as PositionRead (a test
# holds the two paths equal), so the OpenAPI schema stays `Page[PositionRead]`.

LIST_FIELDS: tuple[str, ...] = (
    *PositionRead.model_fields,
    *PositionRead.model_computed_fields,  # pydantic writes these last
)
LIST_SOURCES = {"connection_id": "execution_connection_id"}  # field -> column, where they differ
MONEY_FIELDS = frozenset(
    {
        "quantity",
        "initial_quantity",
        "entry_price",
        "current_price",
        "sl_price",
        "tp_price",
        "held_sl_price",
        "held_tp_price",
        "held_trailing_percent",
        "trailing_stop_percent",
        "best_price",
        "break_even_trigger_rr",
        "pnl",
        "pnl_percentage",
        "realized_pnl",
        "fees",
        "close_price",
        "leverage",
        "liquidation_price",
        "funding_fees",
    }
)
# Fields computed from others, not stored: the list read computes them as the model does.
DERIVED_FIELDS = frozenset(PositionRead.model_computed_fields)


_TAKE_PROFITS: TypeAdapter[list[TakeProfitRead]] = TypeAdapter(list[TakeProfitRead])


def position_item(row: Sequence[Any]) -> dict[str, Any]:
    """A row with LIST_FIELDS' values in order, money already as strings, derived fields empty
    (extra trailing columns are ignored), as PositionRead's JSON object."""
    item = dict(zip(LIST_FIELDS, row, strict=False))
    rom = return_on_margin(Decimal(item["pnl_percentage"]), Decimal(item["leverage"]))
    item["return_on_margin"] = to_str(rom)
    if item["trailing_stop_percent"] is not None:
        level = trailing_stop_level(
            item["direction"],
            None if item["best_price"] is None else Decimal(item["best_price"]),
            Decimal(item["entry_price"]),
            Decimal(item["trailing_stop_percent"]),
        )
        item["trailing_stop_price"] = None if level is None else to_str(level)
    if item["take_profits"] is not None:
        # Rare, and free-form JSON: through the model, as PositionRead does.
        tps = _TAKE_PROFITS.validate_python(item["take_profits"])
        item["take_profits"] = _TAKE_PROFITS.dump_python(tps, mode="json")
    return item


def page_json(rows: Sequence[Sequence[Any]], total: int, limit: int, offset: int) -> bytes:
    """`Page[PositionRead]` as JSON bytes."""
    items = [position_item(row) for row in rows]
    return to_json({"items": items, "total": total, "limit": limit, "offset": offset})


def items_json(items: str | None, total: int, limit: int, offset: int) -> bytes:
    """`Page[PositionRead]` as JSON bytes, around items the database wrote as compact JSON."""
    return f'{{"items":[{items or ""}],"total":{total},"limit":{limit},"offset":{offset}}}'.encode()


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
