"""An order's new fill applied to the position book, in the transaction that records it on the
order's execution log: `positions.book` says what changes, this module saves it once.

An entry's first fill opens a position (inserted with the batch's others in one statement by
`open_positions`), a later one grows it; an exit's fill shrinks or closes it. An exit that ends
releases its position: what is left is `open` again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.db import utcnow
from execution_service.decimals import ZERO, normalize
from execution_service.enums import CloseReason, EventType, OrderStatus, PositionStatus, Purpose
from execution_service.events import service as events
from execution_service.models import ExecutionLog, ExecutionPosition
from execution_service.positions import book
from execution_service.positions.repository import HeldRow, PositionRepository

log = logging.getLogger(__name__)
DEFAULT_MAX_REFUSALS = 5


def quote_of(symbol: str) -> str:
    """`BTC/USDT` and `BTC/USDT:USDT` -> `USDT`."""
    return symbol.partition("/")[2].split(":", 1)[0]


def position_terms(
    symbol: str,
    filled: Decimal,
    price: Decimal,
    fees: dict[str, Decimal],
    fee_prices: dict[str, Decimal],
) -> book.Fill:
    """What a fill adds to a position: the quantity actually held, and its fees (`fees`: what
    this fill paid per currency) in the quote currency.

    A spot exchange that takes its fee from the bought base asset (Binance does) leaves us holding
    less than filled; that fee is worth fee x price in quote. A fee in a third currency (BNB) is
    worth its quote price at the fill (`fee_prices`, from the venue's FEE/QUOTE ticker); one the
    venue could not price counts 0, and stays on the execution log.
    """
    base, quote = symbol.partition("/")[0], quote_of(symbol)
    held, in_quote = filled, ZERO
    for currency, fee in fees.items():
        if currency == quote:
            in_quote += fee
        elif currency == base:
            held -= fee
            in_quote += fee * price
        else:
            in_quote += fee * fee_prices.get(currency, ZERO)
    return book.Fill(normalize(held), price, normalize(in_quote))


def fees_by_currency(
    fees: dict[str, Any] | None, fee: Decimal | None, currency: str | None, quote: str
) -> dict[str, Decimal]:
    """An order's fees per currency: as the venue listed them, or its one fee (in the quote
    currency where the venue did not say)."""
    if fees:
        return {k: Decimal(str(v)) for k, v in fees.items()}
    return {currency or quote: fee} if fee else {}


@dataclass(frozen=True)
class Booked:
    """What applying a fill leaves to the recording transaction."""

    opens: dict[str, Any] | None = None  # an entry's first fill: the position to insert
    # (connection, day) of the analytics row the fill changes: an exit's (partial too), on the
    # day it filled; an entry's only when it fills on a later day than it was recorded (a
    # resting order across midnight: that day's first activity may be this fill).
    closed_day: tuple[int, date] | None = None


def fill_day(entry: ExecutionLog) -> tuple[int, date]:
    """(connection, day) of the analytics row a fill changes: the day it filled."""
    return entry.execution_connection_id, (entry.executed_at or utcnow()).date()


def entry_day(entry: ExecutionLog) -> tuple[int, date] | None:
    day = fill_day(entry)
    recorded = entry.created_at.date() if entry.created_at is not None else day[1]
    return day if day[1] > recorded else None


def _save(position: ExecutionPosition, changes: book.Changes, entry: ExecutionLog) -> None:
    """Apply a fill's changes, and put what it realised on its order's log too (`realised`)."""
    realised(entry, position.realized_pnl, changes)
    for column, value in changes.items():
        setattr(position, column, value)


def realised(entry: ExecutionLog, before: Decimal, changes: book.Changes) -> None:
    """What a fill realised goes on its order's log too: analytics attribute PnL to the day it
    was realised, partial exits included."""
    moved = changes.get("realized_pnl", before) - before
    if moved:
        entry.realized_pnl = normalize((entry.realized_pnl or ZERO) + moved)


class Held(book.PositionState, Protocol):
    """What booking an exit reads of its position besides the book's columns."""

    @property
    def opened_at(self) -> datetime: ...
    @property
    def exit_refusals(self) -> int | None: ...
    @property
    def flagged_at(self) -> datetime | None: ...


def exit_booking(
    position: Held, entry: ExecutionLog, fill: book.Fill, broker_pnl: Decimal | None
) -> book.Reduction:
    """What an exit's new fill does to its position (no I/O); the log gets what it realised and,
    where an exit meant to close everything left some behind, what stayed and its worth. The
    caller applies the changes: to the row (`apply_fill`), or to a batch's values
    (`orders.bulk_exits`)."""
    plan = entry.plan or {}
    reduction = book.reduced(
        position,
        fill,
        broker_pnl=broker_pnl,
        full_close=bool(plan.get("full_close")) and entry.status == OrderStatus.filled,
        reason=entry.close_reason or CloseReason.manual,
        # Closed when the fill happened, the moment its PnL is booked on (never before the open).
        now=max(entry.executed_at or utcnow(), position.opened_at),
    )
    if reduction.dust is not None:  # the log says what stayed behind, and what it is worth
        value = normalize(reduction.dust * fill.price * book.per_unit(position))
        entry.plan = {**plan, "dust": str(reduction.dust), "dust_value": str(value)}
    realised(entry, position.realized_pnl, reduction.changes)
    return reduction


async def apply_fill(
    session: AsyncSession, entry: ExecutionLog, fill: book.Fill, broker_pnl: Decimal | None
) -> Booked:
    """`entry` already carries the order's new status and totals."""
    positions = PositionRepository(session)
    if entry.purpose == Purpose.entry:
        if entry.position_id is None:
            return Booked(opens=opening(entry, fill), closed_day=entry_day(entry))
        position = await positions.lock(entry.position_id)
        assert position is not None
        _save(position, book.added(position, fill, book.EntryPlan.of(entry.plan)), entry)
        return Booked(closed_day=entry_day(entry))
    if entry.position_id is None:
        return Booked()
    position = await positions.lock(entry.position_id)
    if position is None:
        return Booked()
    reduction = exit_booking(position, entry, fill, broker_pnl)
    for column, value in reduction.changes.items():
        setattr(position, column, value)
    if reduction.closed and reduction.first_close:
        events.record(
            session, EventType.position_closed, position, events.position_payload(position)
        )
    return Booked(closed_day=fill_day(entry))


def opening(entry: ExecutionLog, fill: book.Fill) -> dict[str, Any]:
    return dict(
        user_id=entry.user_id,
        admin_id=entry.admin_id,
        execution_connection_id=entry.execution_connection_id,
        signal_id=entry.signal_id,
        execution_log_id=entry.id,
        symbol=entry.symbol,
        direction=entry.direction,
        **book.opened(book.EntryPlan.of(entry.plan), fill, utcnow(), entry.direction),
    )


async def open_positions(
    session: AsyncSession, opened: Sequence[tuple[ExecutionLog, dict[str, Any]]]
) -> list[ExecutionPosition]:
    """Insert new positions (one multi-row INSERT), link each entry log to its position and
    announce `position.opened`, in the caller's transaction."""
    if not opened:
        return []
    positions = await PositionRepository(session).insert_many([values for _, values in opened])
    for (entry, _), position in zip(opened, positions, strict=True):
        entry.position_id = position.id
        entry.realized_pnl = position.realized_pnl  # the entry's fee, realised at the open
        payload = events.position_payload(position)
        events.record(session, EventType.position_opened, position, payload)
    return positions


async def release_exit(
    session: AsyncSession, entry: ExecutionLog, max_refusals: int = DEFAULT_MAX_REFUSALS
) -> None:
    """An exit order ended (filled in part, cancelled, refused): what is left is open again.
    An exit that ended with nothing filled counts as refused; `max_refusals` in a row flag the
    position (the monitor then stops sending exits for it, and an operator is told). One that
    filled anything starts the count again."""
    if entry.position_id is None:
        return
    position = await PositionRepository(session).lock(entry.position_id)
    if position is None:
        return
    changes = released(position, entry, max_refusals)
    for column, value in changes.items():
        setattr(position, column, value)
    if "flagged_at" in changes and changes["flagged_at"] is not None:
        events.record(session, EventType.position_flagged, position, flagged(position, entry))


def released(position: Held, entry: ExecutionLog, max_refusals: int) -> dict[str, Any]:
    """The changes an ended exit makes to its position (no I/O): see `release_exit`."""
    changes: dict[str, Any] = {}
    if position.status == PositionStatus.closing:
        changes["status"] = PositionStatus.open if position.quantity > 0 else PositionStatus.closed
    if entry.filled_quantity > 0:
        return changes | {"exit_refusals": 0, "flagged_at": None}
    refusals = (position.exit_refusals or 0) + 1
    changes["exit_refusals"] = refusals
    if refusals >= max_refusals and position.flagged_at is None:
        changes["flagged_at"] = utcnow()
    return changes


def flagged(position: ExecutionPosition | HeldRow, entry: ExecutionLog) -> dict[str, Any]:
    """A position just flagged (`released` set `flagged_at`), said in the log: the payload of
    its `position.flagged` event."""
    log.error(
        "position %s: %d exits refused in a row (last: %s): flagged for an operator",
        position.id,
        position.exit_refusals,
        entry.error_code,
    )
    return {**events.position_payload(position), "exit_refusals": position.exit_refusals}
