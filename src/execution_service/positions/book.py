"""What a fill or a price does to a position: pure functions from (position, fill or price) to
the column values that change. No I/O: the order lifecycle (`orders/fills.py`) saves the changes
once, in the transaction that records the fill on its execution log, so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from execution_service.decimals import ONE, ZERO, normalize
from execution_service.enums import Direction, PositionStatus
from execution_service.positions.pnl import (
    average_price,
    gross_pnl,
    liquidation_price,
    margin_of,
    pnl_percent,
)

Changes = dict[str, Any]  # column name -> new value


class PositionState(Protocol):
    """The columns the book reads (an `ExecutionPosition` row satisfies it)."""

    @property
    def direction(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def initial_quantity(self) -> Decimal: ...
    @property
    def entry_price(self) -> Decimal: ...
    @property
    def contract_size(self) -> Decimal | None: ...
    @property
    def realized_pnl(self) -> Decimal: ...
    @property
    def fees(self) -> Decimal: ...
    @property
    def leverage(self) -> Decimal: ...
    @property
    def liquidation_price(self) -> Decimal | None: ...


@dataclass(frozen=True)
class Fill:
    """What one report of an order adds: the quantity actually held or given up, its average
    price, and the fee in the quote currency (`orders.fills.position_terms`)."""

    quantity: Decimal
    price: Decimal
    fee: Decimal


@dataclass(frozen=True)
class EntryPlan:
    """What the entry order carries for the position it opens (its execution log's `plan`)."""

    sl_price: Decimal | None = None
    tp_price: Decimal | None = None
    take_profits: list[dict[str, Any]] | None = None
    trailing_stop_percent: Decimal | None = None
    break_even_trigger_rr: Decimal | None = None
    contract_size: Decimal | None = None
    leverage: Decimal = ONE
    break_even_offset_percent: Decimal | None = None
    # Where the venue's liquidation is simulated here (paper swap): its maintenance margin rate.
    maintenance_margin_rate: Decimal | None = None

    @classmethod
    def of(cls, plan: dict[str, Any] | None) -> EntryPlan:
        plan = plan or {}
        return cls(
            _dec(plan.get("sl_price")),
            _dec(plan.get("tp_price")),
            plan.get("take_profits"),
            _dec(plan.get("trailing_stop_percent")),
            _dec(plan.get("break_even_trigger_rr")),
            _dec(plan.get("contract_size")),
            _dec(plan.get("leverage")) or ONE,
            _dec(plan.get("break_even_offset_percent")),
            _dec(plan.get("maintenance_margin_rate")),
        )

    def liquidation_at(self, direction: str, entry: Decimal) -> Decimal | None:
        if self.maintenance_margin_rate is None:
            return None
        return liquidation_price(direction, entry, self.leverage, self.maintenance_margin_rate)


def _dec(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def per_unit(position: Markable) -> Decimal:
    """What one unit of quantity stands for: a lot's contract size (MetaTrader), else 1."""
    return position.contract_size or ONE


def opened(plan: EntryPlan, fill: Fill, now: datetime, direction: str) -> Changes:
    """The columns of the position an entry's first fill opens (owner, ids and symbol are the
    entry's, added by the caller)."""
    return dict(
        quantity=fill.quantity,
        initial_quantity=fill.quantity,
        entry_price=fill.price,
        contract_size=plan.contract_size,
        current_price=fill.price,
        sl_price=plan.sl_price,
        tp_price=plan.tp_price,
        take_profits=plan.take_profits,
        trailing_stop_percent=plan.trailing_stop_percent,
        break_even_trigger_rr=plan.break_even_trigger_rr,
        break_even_offset_percent=plan.break_even_offset_percent,
        initial_sl_price=plan.sl_price,
        best_price=fill.price,
        leverage=plan.leverage,
        liquidation_price=plan.liquidation_at(direction, fill.price),
        status=PositionStatus.open,
        pnl=ZERO,
        pnl_percentage=ZERO,
        # Fees are a realised cost from the first fill: the closed figure is net of all of them.
        realized_pnl=normalize(-fill.fee),
        fees=fill.fee,
        opened_at=now,
        last_price_update_at=now,
    )


def added(position: PositionState, fill: Fill, plan: EntryPlan) -> Changes:
    """A later fill of the entry order grows the position at the average price (its
    liquidation price moves with it)."""
    entry = average_price(position.quantity, position.entry_price, fill.quantity, fill.price)
    return dict(
        entry_price=entry,
        liquidation_price=plan.liquidation_at(position.direction, entry),
        quantity=normalize(position.quantity + fill.quantity),
        initial_quantity=normalize(position.initial_quantity + fill.quantity),
        fees=normalize(position.fees + fill.fee),
        realized_pnl=normalize(position.realized_pnl - fill.fee),
    )


@dataclass(frozen=True)
class Reduction:
    changes: Changes
    closed: bool  # the position ends with this fill
    first_close: bool  # ... and was not closed before (a late fill on a closed one is no news)
    dust: Decimal | None = None  # what an exit meant to close all of could not sell


def reduced(
    position: PositionState,
    fill: Fill,
    *,
    broker_pnl: Decimal | None,
    full_close: bool,
    reason: str,
    now: datetime,
) -> Reduction:
    """An exit's fill shrinks the position and books the realised PnL; at zero it closes.

    `broker_pnl`: the profit the venue reports for this close in the account currency
    (MetaTrader), the truth where it exists, ahead of our own price arithmetic. `full_close`: the
    exit order was meant to close everything and is complete, so what is left is below the
    market's amount step (e.g. a spot fee taken in the base asset) and cannot be sold."""
    quantity = min(fill.quantity, position.quantity)
    gross = broker_pnl if broker_pnl is not None else _exit_pnl(position, fill.price, quantity)
    realized = normalize(position.realized_pnl + gross - fill.fee)
    left = normalize(position.quantity - quantity)
    changes: Changes = dict(
        realized_pnl=realized,
        fees=normalize(position.fees + fill.fee),
        quantity=left,
        current_price=fill.price,
    )
    dust = None
    if left > 0 and full_close:
        # The rest is held still (worth `dust` at this price) but cannot be sold: its PnL at
        # this price counts, so the position's figure is not short by what the entry paid for it.
        dust, left = left, Decimal(0)
        unit = per_unit(position)
        realized = normalize(
            realized + gross_pnl(position.direction, position.entry_price, fill.price, dust, unit)
        )
        changes.update(quantity=left, realized_pnl=realized)
    if left != 0:
        # Still open: the unrealised PnL is the rest's, at the fill's price, not the old size's.
        marked = mark(_Left(position, left), fill.price)
        changes.update(pnl=marked.pnl, pnl_percentage=marked.pnl_percentage)
        return Reduction(changes, closed=False, first_close=False, dust=dust)
    changes.update(
        status=PositionStatus.closed,
        closed_reason=reason,
        closed_at=now,
        close_price=fill.price,
        pnl=realized,
        pnl_percentage=pnl_percent(
            realized, position.entry_price, position.initial_quantity, per_unit(position)
        ),
    )
    first = position.status != PositionStatus.closed
    return Reduction(changes, closed=True, first_close=first, dust=dust)


def _exit_pnl(position: PositionState, price: Decimal, quantity: Decimal) -> Decimal:
    unit = per_unit(position)
    gross = gross_pnl(position.direction, position.entry_price, price, quantity, unit)
    if position.liquidation_price is None:
        return gross
    # Isolated margin: what is closed loses at most the margin posted for it (past the
    # liquidation price the venue's liquidation takes the rest, not the account).
    return max(gross, -margin_of(position.entry_price, quantity, position.leverage, unit))


@dataclass(frozen=True)
class _Left:
    """A position as it is after a partial exit: what `mark` reads."""

    position: PositionState
    quantity: Decimal

    @property
    def direction(self) -> str:
        return self.position.direction

    @property
    def entry_price(self) -> Decimal:
        return self.position.entry_price

    @property
    def contract_size(self) -> Decimal | None:
        return self.position.contract_size


@dataclass(frozen=True)
class Mark:
    """A position marked to a price: its unrealised PnL and that PnL as a percent of the entry
    notional (the set-based marking in `positions/repository/marking.py` computes the same in
    SQL, and a property test holds the two equal)."""

    pnl: Decimal
    pnl_percentage: Decimal


class Markable(Protocol):
    @property
    def direction(self) -> str: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def entry_price(self) -> Decimal: ...
    @property
    def contract_size(self) -> Decimal | None: ...


def mark(position: Markable, price: Decimal) -> Mark:
    unit = per_unit(position)
    pnl = gross_pnl(position.direction, position.entry_price, price, position.quantity, unit)
    return Mark(pnl, pnl_percent(pnl, position.entry_price, position.quantity, unit))


def exit_direction(direction: str) -> Direction:
    return Direction(direction).opposite
