"""A batch of new entries' outcomes recorded set-based: a paper fan-out's thousands of fills in a
few statements per chunk, not an ORM unit of work per order.

The rows were committed `pending` before the venue was asked (`orders.entries`); here, in one
transaction per chunk: the rows still `pending` are locked (ids only), the positions their fills
open inserted in one statement, every log's outcome written in one UPDATE, and their events
in one INSERT (`events.setbased`: over unnest arrays on PostgreSQL). Each order's values come
from the same functions as a single order's (`lifecycle.settle`, `fills.opening`), and its
metrics, log line and events are the same, in the same order (`order.rejected` as met, then
`position.opened`, then `order.filled`).

Only what those few statements can record goes here: entries with no position yet, answered
(filled, resting, refused) or not (left `pending`). A row that is no longer `pending`
(reconciliation got there first) goes through `record_outcomes`, which says so, as does an
order refused for its credentials (the connection is marked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from execution_service.analytics import service as analytics
from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.enums import EventType, OrderStatus, Purpose
from execution_service.events import service as events
from execution_service.events.repository import EventRepository
from execution_service.exchanges.base import AuthFailed, OrderResult, TemporaryError
from execution_service.models import ExecutionLog
from execution_service.orders import fills
from execution_service.orders.lifecycle import Outcome, announced, count, settle
from execution_service.orders.outcomes import observe, record_outcomes, stale_last_used
from execution_service.orders.repository import OrderRepository
from execution_service.positions.repository import PositionRepository

CHUNK = 5000  # orders per transaction: below the drivers' bounds on parameters per IN list

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


def eligible(entry: ExecutionLog, outcome: Outcome) -> bool:
    """Recorded here (else by `record_outcomes`): an entry with no position, as committed."""
    return (
        entry.purpose == Purpose.entry
        and entry.position_id is None
        and entry.status == OrderStatus.pending
        and not isinstance(outcome.answer, AuthFailed)
    )


@dataclass
class _Chunk:
    opened: list[tuple[ExecutionLog, dict[str, Any], str, str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    days: set[tuple[int, date]] = field(default_factory=set)


async def record_entries(
    ctx: AppContext, entries: Sequence[ExecutionLog], outcomes: Sequence[Outcome]
) -> list[ExecutionLog]:
    """`entries[i]` is the committed `pending` log of `outcomes[i]` (each `eligible`); returns
    them as recorded, in the order given."""
    recorded = list(entries)
    for start in range(0, len(entries), CHUNK):
        part = range(start, min(start + CHUNK, len(entries)))
        late = await _record_chunk(ctx, [entries[i] for i in part], [outcomes[i] for i in part])
        if late:  # no longer pending: recorded (and reported) as single orders' are
            logs = await record_outcomes(ctx, [outcomes[start + j] for j in late])
            for j, entry in zip(late, logs, strict=True):
                recorded[start + j] = entry
    return recorded


async def _record_chunk(
    ctx: AppContext, entries: Sequence[ExecutionLog], outcomes: Sequence[Outcome]
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
        now = utcnow()
        await OrderRepository(session).update_rows(
            [
                {"row_id": entries[j].id, "updated_at": now}
                | {c: getattr(entries[j], c) for c in WRITTEN}
                for j in mine
            ]
        )
        await EventRepository(session).insert_rows(chunk.events)
        if chunk.days:
            await analytics.refresh_days(session, chunk.days)
        used = stale_last_used(
            [(entries[j].execution_connection_id, outcomes[j].acknowledged_at) for j in mine],
            ctx.last_used_written,
        )
        for at, conn_ids in used.items():
            await OrderRepository(session).touch_last_used(list(conn_ids), at)
        await session.commit()
    for at, conn_ids in used.items():
        ctx.last_used_written.update(dict.fromkeys(conn_ids, at))
    for j in mine:
        observe(outcomes[j], entries[j])
    done = set(mine)
    return [j for j in range(len(entries)) if j not in done]


def _settle(chunk: _Chunk, entry: ExecutionLog, outcome: Outcome) -> None:
    """One order's outcome on its log, as `record_outcomes` records an entry's."""
    answer, adapter = outcome.answer, outcome.adapter
    before = entry.status
    entry.submitted_at = outcome.submitted_at
    start = outcome.received_at or entry.received_at or outcome.submitted_at
    entry.latency_ms = int((outcome.acknowledged_at - start).total_seconds() * 1000)
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
