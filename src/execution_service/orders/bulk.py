"""A batch of outcomes recorded set-based: a paper fan-out's thousands of fills, or a mass close's
thousands of exits, in a few statements per chunk, not an ORM unit of work per order.

The rows were committed `pending` before the venue was asked (`orders.entries`); here, in one
transaction per chunk: the rows still `pending` are locked (ids only), the positions their fills
open inserted in one statement, every log's outcome written in one UPDATE, and their events
in one INSERT (`setbased`: over unnest arrays on PostgreSQL). Each order's values come
from the same functions as a single order's (`lifecycle.settle`, `fills.opening`), and its
metrics, log line and events are the same, in the same order (`order.rejected` as met, then
`position.opened`, then `order.filled`).

Exits (`record_exits`) go the same way: their positions are locked and read as plain values
(`PositionRepository.lock_rows`), booked by the same pure functions as a single exit's
(`fills.exit_booking`, `fills.released`), and written back in one UPDATE.

Only what those few statements can record goes here: entries with no position yet, answered
(filled, resting, refused) or not (left `pending`); exits the venue answered. A row that is no
longer `pending` (reconciliation got there first) goes through `record_outcomes`, which says so,
as does an order refused for its credentials (the connection is marked) and an exit whose
outcome is unknown or an error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.analytics import service as analytics
from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.enums import EventType, OrderStatus, Purpose
from execution_service.events import service as events
from execution_service.events.repository import EventRepository
from execution_service.exchanges.base import AuthFailed, OrderResult, TemporaryError
from execution_service.models import ExecutionConnection, ExecutionLog
from execution_service.orders import fills
from execution_service.orders.lifecycle import ENDED, Outcome, announced, count, settle
from execution_service.orders.outcomes import (
    fill_batch,
    observe,
    record_outcomes,
    stale_last_used,
)
from execution_service.orders.repository import OrderRepository
from execution_service.positions.repository import HeldRow, PositionRepository

CHUNK = 5000  # orders per transaction: below the drivers' bounds on parameters per IN list
# A simulated venue's orders are sent and recorded GROUP at a time, LANES groups at once: one
# group's statements run while another's Python books its fills.
GROUP = 2500
LANES = 2

# What recording an outcome may change on an entry's log: every row of a chunk writes them all.
WRITTEN = (
    "order_id",
    "status",
    "filled_quantity",
    "average_price",
    "fee",
    "fee_currency",
    "fees",
    "fee_in_quote",
    "response_data",
    "error_code",
    "error_message",
    "executed_at",
    "realized_pnl",
    "position_id",
    "submitted_at",
    "latency_ms",
)
# An exit's log besides: what it left behind (`plan`), and why the venue closed it.
EXIT_WRITTEN = (*WRITTEN, "plan", "close_reason")
# What booking and releasing exits may change on a position: every row of a chunk writes them.
POSITION_WRITTEN = (
    "quantity",
    "realized_pnl",
    "fees",
    "current_price",
    "pnl",
    "pnl_percentage",
    "status",
    "closed_reason",
    "closed_at",
    "close_price",
    "exit_refusals",
    "flagged_at",
)


def eligible(entry: ExecutionLog, outcome: Outcome) -> bool:
    """Recorded here (else by `record_outcomes`): an entry with no position, as committed."""
    return (
        entry.purpose == Purpose.entry
        and entry.position_id is None
        and entry.status == OrderStatus.pending
        and not isinstance(outcome.answer, AuthFailed)
    )


def eligible_exit(entry: ExecutionLog, outcome: Outcome) -> bool:
    """Recorded by `record_exits` (else by `record_outcomes`): an exit of a position, as
    committed, that the venue answered."""
    return (
        entry.purpose == Purpose.exit
        and entry.position_id is not None
        and entry.status == OrderStatus.pending
        and isinstance(outcome.answer, OrderResult)
    )


@dataclass
class _Chunk:
    opened: list[tuple[ExecutionLog, dict[str, Any], str, str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    days: set[tuple[int, date]] = field(default_factory=set)
    booked: dict[int, HeldRow] = field(default_factory=dict)  # exits' positions, by id


Recorder = Callable[
    [AppContext, Sequence[ExecutionLog], Sequence[Outcome], "set[tuple[int, date]] | None"],
    Awaitable[list[int]],
]


async def _in_chunks(
    ctx: AppContext,
    logs: Sequence[ExecutionLog],
    outcomes: Sequence[Outcome],
    record_chunk: Recorder,
    analytics_days: set[tuple[int, date]] | None = None,
) -> list[ExecutionLog]:
    recorded = list(logs)
    for start in range(0, len(logs), CHUNK):
        part = range(start, min(start + CHUNK, len(logs)))
        late = await record_chunk(
            ctx, [logs[i] for i in part], [outcomes[i] for i in part], analytics_days
        )
        if late:  # no longer pending: recorded (and reported) as single orders' are
            again = await record_outcomes(
                ctx, [outcomes[start + j] for j in late], analytics_days=analytics_days
            )
            for j, entry in zip(late, again, strict=True):
                recorded[start + j] = entry
    return recorded


async def record(
    ctx: AppContext,
    logs: Sequence[ExecutionLog],
    outcomes: Sequence[Outcome],
    analytics_days: set[tuple[int, date]] | None = None,
) -> list[ExecutionLog]:
    """A simulated venue's batch of outcomes (`logs[i]` the committed log of `outcomes[i]`):
    new entries' and answered exits' recorded set-based, any others as single orders' are
    (`record_outcomes`). Returns the logs as recorded, in the order given."""
    entries = [k for k, e in enumerate(logs) if eligible(e, outcomes[k])]
    exits = [k for k, e in enumerate(logs) if eligible_exit(e, outcomes[k])]
    chosen = set(entries) | set(exits)
    others = [k for k in range(len(logs)) if k not in chosen]
    recorded = list(logs)
    done = await record_entries(ctx, [logs[k] for k in entries], [outcomes[k] for k in entries])
    done += await record_exits(
        ctx, [logs[k] for k in exits], [outcomes[k] for k in exits], analytics_days
    )
    if others:
        done += await record_outcomes(
            ctx, [outcomes[k] for k in others], analytics_days=analytics_days
        )
    for k, entry in zip(entries + exits + others, done, strict=True):
        recorded[k] = entry
    return recorded


async def send_batch(
    ctx: AppContext,
    orders: Sequence[tuple[ExecutionLog, ExecutionConnection]],
    analytics_days: set[tuple[int, date]] | None = None,
) -> list[ExecutionLog]:
    """Committed `pending` orders on simulated venues: every order in one transaction of the
    venue's own (`outcomes.fill_batch`), the outcomes recorded here (`record`). Returns the
    logs as recorded, in the order given."""
    outcomes = await fill_batch(ctx, orders)
    return await record(ctx, [log for log, _ in orders], outcomes, analytics_days)


async def record_entries(
    ctx: AppContext, entries: Sequence[ExecutionLog], outcomes: Sequence[Outcome]
) -> list[ExecutionLog]:
    """`entries[i]` is the committed `pending` log of `outcomes[i]` (each `eligible`); returns
    them as recorded, in the order given."""
    return await _in_chunks(ctx, entries, outcomes, _record_chunk)


async def record_exits(
    ctx: AppContext,
    exits: Sequence[ExecutionLog],
    outcomes: Sequence[Outcome],
    analytics_days: set[tuple[int, date]] | None = None,
) -> list[ExecutionLog]:
    """`exits[i]` is the committed `pending` log of `outcomes[i]` (each `eligible_exit`);
    returns them as recorded, in the order given. `analytics_days`: see `Recording.finish`."""
    return await _in_chunks(ctx, exits, outcomes, _record_exit_chunk, analytics_days)


async def _record_chunk(
    ctx: AppContext,
    entries: Sequence[ExecutionLog],
    outcomes: Sequence[Outcome],
    analytics_days: set[tuple[int, date]] | None = None,
) -> list[int]:
    """Record one chunk; returns the positions (in `entries`) of the rows it left alone."""
    chunk = _Chunk()
    async with ctx.session_factory() as session:
        pending = await OrderRepository(session).lock_pending([e.id for e in entries])
        mine = [j for j, e in enumerate(entries) if e.id in pending]
        for j in mine:
            _settle(chunk, entries[j], outcomes[j])
        rows = [values for _, values, _, _ in chunk.opened]
        ids = await PositionRepository(session).insert_rows(rows)
        for (entry, values, _, _), position_id in zip(chunk.opened, ids, strict=True):
            entry.position_id = position_id
            entry.realized_pnl = values["realized_pnl"]  # the entry's fee, realised at the open
            payload = events.position_payload({**values, "id": position_id})
            chunk.events.append(events.row(EventType.position_opened, entry, payload))
        for entry, _, before, adapter in chunk.opened:
            count(entry, before, adapter)
            _announce(chunk, entry, before)
        mine_logs = [(entries[j], outcomes[j]) for j in mine]
        used = await _write(session, ctx, chunk, mine_logs, WRITTEN, analytics_days)
    return _finish(ctx, used, mine_logs, entries, mine)


async def _record_exit_chunk(
    ctx: AppContext,
    exits: Sequence[ExecutionLog],
    outcomes: Sequence[Outcome],
    analytics_days: set[tuple[int, date]] | None = None,
) -> list[int]:
    """Record one chunk of exits; returns the positions (in `exits`) of the rows it left alone."""
    chunk = _Chunk()
    async with ctx.session_factory() as session:
        pending = await OrderRepository(session).lock_pending([e.id for e in exits])
        mine = [j for j, e in enumerate(exits) if e.id in pending]
        held = await PositionRepository(session).lock_rows(
            [p for j in mine if (p := exits[j].position_id) is not None]
        )
        refusals = ctx.settings.exit_max_refusals
        for j in mine:
            position = held.get(exits[j].position_id or 0)
            _book_exit(chunk, exits[j], outcomes[j], position, refusals)
        now = utcnow()
        await PositionRepository(session).update_rows(
            [
                {"row_id": p.id, "updated_at": now} | {c: p[c] for c in POSITION_WRITTEN}
                for p in chunk.booked.values()
            ]
        )
        mine_logs = [(exits[j], outcomes[j]) for j in mine]
        used = await _write(session, ctx, chunk, mine_logs, EXIT_WRITTEN, analytics_days)
    return _finish(ctx, used, mine_logs, exits, mine)


async def _write(
    session: AsyncSession,
    ctx: AppContext,
    chunk: _Chunk,
    recorded: Sequence[tuple[ExecutionLog, Outcome]],
    columns: Sequence[str],
    analytics_days: set[tuple[int, date]] | None,
) -> dict[datetime, set[int]]:
    """The chunk's logs (one UPDATE), events (one INSERT), analytics days and `last_used_at`
    marks, committed; returns the marks written."""
    now = utcnow()
    await OrderRepository(session).update_rows(
        [
            {"row_id": e.id, "updated_at": now} | {c: getattr(e, c) for c in columns}
            for e, _ in recorded
        ]
    )
    await EventRepository(session).insert_rows(chunk.events)
    if analytics_days is not None:
        analytics_days |= chunk.days
    elif chunk.days:
        await analytics.refresh_days(session, chunk.days)
    used = stale_last_used(
        [(e.execution_connection_id, o.acknowledged_at) for e, o in recorded],
        ctx.last_used_written,
    )
    for at, conn_ids in used.items():
        await OrderRepository(session).touch_last_used(list(conn_ids), at)
    await session.commit()
    return used


def _finish(
    ctx: AppContext,
    used: dict[datetime, set[int]],
    recorded: Sequence[tuple[ExecutionLog, Outcome]],
    logs: Sequence[ExecutionLog],
    mine: Sequence[int],
) -> list[int]:
    """After the commit: the marks remembered, each order observed; the positions (in `logs`)
    of the rows left alone."""
    for at, conn_ids in used.items():
        ctx.last_used_written.update(dict.fromkeys(conn_ids, at))
    for entry, outcome in recorded:
        observe(outcome, entry)
    done = set(mine)
    return [j for j in range(len(logs)) if j not in done]


def _timing(entry: ExecutionLog, outcome: Outcome) -> None:
    entry.submitted_at = outcome.submitted_at
    start = outcome.received_at or entry.received_at or outcome.submitted_at
    entry.latency_ms = int((outcome.acknowledged_at - start).total_seconds() * 1000)


def _settle(chunk: _Chunk, entry: ExecutionLog, outcome: Outcome) -> None:
    """One order's outcome on its log, as `record_outcomes` records an entry's."""
    answer, adapter = outcome.answer, outcome.adapter
    before = entry.status
    _timing(entry, outcome)
    if isinstance(answer, OrderResult):
        fill = settle(entry, answer)
        if fill is not None:  # counted and announced once the position has its id
            chunk.opened.append((entry, fills.opening(entry, fill), before, adapter))
            day = fills.entry_day(entry)
            if day is not None:
                chunk.days.add(day)
            return
    elif isinstance(answer, TemporaryError):
        entry.error_message = f"outcome unknown, to reconcile: {answer.message}"[:1000]
        return
    else:
        entry.status = OrderStatus.rejected
        entry.error_code = answer.code
        entry.error_message = answer.message[:1000]
    count(entry, before, adapter)
    _announce(chunk, entry, before)


def _announce(chunk: _Chunk, entry: ExecutionLog, before: str) -> None:
    kind = announced(entry, before)
    if kind is not None:
        chunk.events.append(events.row(kind, entry, events.order_payload(entry)))


def _book_exit(
    chunk: _Chunk,
    entry: ExecutionLog,
    outcome: Outcome,
    position: HeldRow | None,
    max_refusals: int,
) -> None:
    """One exit's outcome on its log and its position's values, as `record_outcomes` records
    it (`lifecycle.apply_result`): its fill booked, the position released once the exit ends,
    and the same events in the same order."""
    answer = outcome.answer
    assert isinstance(answer, OrderResult)
    before = entry.status
    _timing(entry, outcome)
    fill = settle(entry, answer)
    if fill is not None and position is not None:
        reduction = fills.exit_booking(position, entry, fill, answer.realized_pnl)
        position.update(reduction.changes)
        chunk.booked[position.id] = position
        if reduction.closed and reduction.first_close:
            payload = events.position_payload(position)
            chunk.events.append(events.row(EventType.position_closed, position, payload))
        chunk.days.add(fills.fill_day(entry))
    if answer.status in ENDED and position is not None:
        changes = fills.released(position, entry, max_refusals)
        position.update(changes)
        chunk.booked[position.id] = position
        if changes.get("flagged_at") is not None:
            payload = fills.flagged(position, entry)
            chunk.events.append(events.row(EventType.position_flagged, position, payload))
    count(entry, before, outcome.adapter)
    _announce(chunk, entry, before)
