"""What a fill does to positions: an entry opens or grows one, an exit shrinks or closes it.

Called inside the transaction that records the fill on its execution log, so the log and the
position never disagree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.analytics import service as analytics
from execution_service.db import utcnow
from execution_service.decimals import ZERO, normalize
from execution_service.enums import EventType
from execution_service.events import service as events
from execution_service.models import ExecutionLog, ExecutionPosition
from execution_service.positions.pnl import average_price, gross_pnl, pnl_percent

# (connection, day) analytics rows whose refresh a batch of closes has put off until it ends.
_DEFERRED: ContextVar[set[tuple[int, date]] | None] = ContextVar("deferred_analytics", default=None)


@contextmanager
def analytics_deferred() -> Iterator[set[tuple[int, date]]]:
    """Closes inside this block (and the tasks it starts) do not refresh the day's analytics row
    each; they collect (connection, day) here, for the caller to refresh once per batch."""
    days: set[tuple[int, date]] = set()
    token = _DEFERRED.set(days)
    try:
        yield days
    finally:
        _DEFERRED.reset(token)


def _dec(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


async def apply_entry_fill(
    session: AsyncSession, log: ExecutionLog, quantity: Decimal, price: Decimal, fee: Decimal
) -> ExecutionPosition:
    if log.position_id is not None:
        position = await session.get(ExecutionPosition, log.position_id, with_for_update=True)
        assert position is not None
        position.entry_price = average_price(
            position.quantity, position.entry_price, quantity, price
        )
        position.quantity = normalize(position.quantity + quantity)
        position.initial_quantity = normalize(position.initial_quantity + quantity)
        position.fees = normalize(position.fees + fee)
        position.realized_pnl = normalize(position.realized_pnl - fee)
        return position
    (position,) = await open_positions(session, [(log, new_position(log, quantity, price, fee))])
    return position


def new_position(
    log: ExecutionLog, quantity: Decimal, price: Decimal, fee: Decimal
) -> dict[str, Any]:
    """The columns of the position an entry's first fill opens."""
    plan = log.plan or {}
    now = utcnow()
    return dict(
        user_id=log.user_id,
        admin_id=log.admin_id,
        execution_connection_id=log.execution_connection_id,
        signal_id=log.signal_id,
        execution_log_id=log.id,
        symbol=log.symbol,
        direction=log.direction,
        quantity=quantity,
        initial_quantity=quantity,
        entry_price=price,
        contract_size=_dec(plan.get("contract_size")),
        current_price=price,
        sl_price=_dec(plan.get("sl_price")),
        tp_price=_dec(plan.get("tp_price")),
        take_profits=plan.get("take_profits"),
        trailing_stop_percent=_dec(plan.get("trailing_stop_percent")),
        break_even_trigger_rr=_dec(plan.get("break_even_trigger_rr")),
        best_price=price,
        status="open",
        pnl=ZERO,
        pnl_percentage=ZERO,
        # Fees are a realised cost from the first fill: the closed figure is net of all of them.
        realized_pnl=normalize(-fee),
        fees=fee,
        opened_at=now,
        last_price_update_at=now,
    )


async def open_positions(
    session: AsyncSession, opened: Sequence[tuple[ExecutionLog, dict[str, Any]]]
) -> list[ExecutionPosition]:
    """Insert new positions (one multi-row INSERT), link each entry log to its position and
    announce `position.opened`, in the caller's transaction."""
    if not opened:
        return []
    # No autoflush: the logs' own changes are written once, with their position ids, later.
    with session.no_autoflush:
        stmt = insert(ExecutionPosition).returning(ExecutionPosition, sort_by_parameter_order=True)
        positions = list(await session.scalars(stmt, [values for _, values in opened]))
    for (log, _), position in zip(opened, positions, strict=True):
        log.position_id = position.id
        payload = events.position_payload(position)
        events.record(session, EventType.position_opened, position, payload)
    return positions


async def apply_exit_fill(
    session: AsyncSession,
    log: ExecutionLog,
    quantity: Decimal,
    price: Decimal,
    fee: Decimal,
    broker_pnl: Decimal | None = None,
) -> ExecutionPosition | None:
    """`broker_pnl`: the profit a broker reports for this close in the account currency
    (MetaTrader); it is the truth where it exists, ahead of our own price arithmetic."""
    if log.position_id is None:
        return None
    position = await _locked(session, log.position_id)
    if position is None:
        return None
    quantity = min(quantity, position.quantity)
    gross = broker_pnl
    if gross is None:
        gross = gross_pnl(
            position.direction, position.entry_price, price, quantity, per_unit(position)
        )
    position.realized_pnl = normalize(position.realized_pnl + gross - fee)
    position.fees = normalize(position.fees + fee)
    position.quantity = normalize(position.quantity - quantity)
    position.current_price = price
    full_close = bool((log.plan or {}).get("full_close")) and log.status == "filled"
    if position.quantity > 0 and full_close:
        # What is left is below the market's amount step (e.g. a spot fee taken in the base
        # asset): it cannot be sold, so the position ends here and the log says what stayed.
        log.plan = {**(log.plan or {}), "dust": str(position.quantity)}
        position.quantity = Decimal(0)
    if position.quantity == 0:
        first_close = position.status != "closed"  # a late fill on a closed position is no news
        close(position, price, log.close_reason or "manual")
        if first_close:
            payload = events.position_payload(position)
            events.record(session, EventType.position_closed, position, payload)
        # Today's analytics row follows every close: in the same transaction, or once at the end
        # of a batch of closes (the monitor's), which would otherwise recompute it per close.
        day = (position.closed_at or utcnow()).date()
        deferred = _DEFERRED.get()
        if deferred is not None:
            deferred.add((position.execution_connection_id, day))
        else:
            await analytics.refresh_day(session, position.execution_connection_id, day)
    return position


def close(position: ExecutionPosition, price: Decimal, reason: str) -> None:
    position.status = "closed"
    position.closed_reason = reason
    position.closed_at = utcnow()
    position.close_price = price
    position.pnl = position.realized_pnl
    position.pnl_percentage = pnl_percent(
        position.realized_pnl, position.entry_price, position.initial_quantity, per_unit(position)
    )


def per_unit(position: ExecutionPosition) -> Decimal:
    return position.contract_size or Decimal(1)


async def release_exit(session: AsyncSession, log: ExecutionLog) -> None:
    """An exit order ended (filled in part, cancelled, refused): what is left is open again."""
    if log.position_id is None:
        return
    position = await _locked(session, log.position_id)
    if position is not None and position.status == "closing":
        position.status = "open" if position.quantity > 0 else "closed"


async def _locked(session: AsyncSession, position_id: int) -> ExecutionPosition | None:
    """The position, locked for this transaction: read `FOR UPDATE` once per transaction, then
    reused (a fill and the release of its exit order lock the same row in one transaction)."""
    tx = session.get_transaction()
    locked: dict[int, tuple[object, ExecutionPosition]] = session.info.setdefault(
        "locked_positions", {}
    )
    held = locked.get(position_id)
    if held is not None and tx is not None and held[0] is tx:
        return held[1]
    position = await session.get(ExecutionPosition, position_id, with_for_update=True)
    if position is not None and tx is not None:
        locked[position_id] = (tx, position)
    return position


async def exit_counts(session: AsyncSession, position_ids: Sequence[int]) -> dict[int, int]:
    """`exit_count` of many positions in one query (absent: none)."""
    rows = await session.execute(
        select(ExecutionLog.position_id, func.count())
        .where(ExecutionLog.position_id.in_(position_ids), ExecutionLog.purpose == "exit")
        .group_by(ExecutionLog.position_id)
    )
    return {pid: n for pid, n in rows if pid is not None}


async def exit_count(session: AsyncSession, position_id: int) -> int:
    rows = await session.scalars(
        select(ExecutionLog.id).where(
            ExecutionLog.position_id == position_id, ExecutionLog.purpose == "exit"
        )
    )
    return len(rows.all())
