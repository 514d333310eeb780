"""Entries: a signal's orders on its target connections. The signal decides each one
(`signals.decision`); here they become `pending` rows (committed by the caller with the signal,
before any order leaves) or refusals, are sent, and their outcomes recorded.

Orders on simulated venues go as one batch when there are several; the others each through
their own adapter, `signal_concurrency` at a time, bounded per account as well. Outcomes are
recorded as they come, those that arrive together in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service import observability
from execution_service.context import AppContext
from execution_service.enums import OrderStatus, Purpose
from execution_service.events import service as events
from execution_service.events.repository import EventRepository
from execution_service.exchanges.base import (
    ExchangeAdapter,
)
from execution_service.exchanges.capabilities import VenueCapabilities
from execution_service.models import ExecutionConnection, ExecutionLog
from execution_service.orders import bulk
from execution_service.orders.ids import entry_client_order_id
from execution_service.orders.lifecycle import announced, count, reject, send_deadline, submit
from execution_service.orders.outcomes import OutcomeRecorder
from execution_service.orders.repository import OrderRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str
    skipped: bool = False  # a follower's rules excluded it (recorded `skipped`, not `rejected`)


@dataclass(frozen=True)
class EntryOrder:
    """One connection's entry as the signal decided it: the order, or why there is none."""

    conn: ExecutionConnection
    caps: VenueCapabilities
    quantity: Decimal
    price: Decimal | None
    plan: dict[str, Any] | None
    refusal: Refusal | None = None
    adapter: ExchangeAdapter | None = None  # the client sizing used (None: simulated, refused)
    # The signal as this account takes it, where a follower's rules changed it (symbol map,
    # reverse); None: as sent.
    symbol: str | None = None
    direction: str | None = None


@dataclass(frozen=True)
class Signal:
    """What every entry of the signal shares."""

    id: int
    symbol: str
    direction: str
    order_type: str
    received_at: datetime


async def insert_entries(
    session: AsyncSession, ctx: AppContext, signal: Signal, orders: Sequence[EntryOrder]
) -> list[ExecutionLog]:
    """One row per order, in the caller's transaction and one statement: `pending`, or refused
    (`rejected`, `skipped`) with its code, counted and announced. Returns them as recorded, in
    order (detached: the caller commits them, and they are recorded later in sessions of their
    own)."""
    prefix = ctx.settings.client_order_prefix
    rows = [
        dict(
            user_id=o.conn.user_id,
            admin_id=o.conn.admin_id,
            execution_connection_id=o.conn.id,
            signal_id=signal.id,
            purpose=Purpose.entry,
            client_order_id=entry_client_order_id(prefix, signal.id, o.conn.id, o.caps.client_ids),
            symbol=o.symbol or signal.symbol,
            direction=o.direction or signal.direction,
            order_type=signal.order_type,
            quantity=o.quantity,
            price=o.price,
            plan=o.plan,
            received_at=signal.received_at,
            **_refused(o.refusal),
        )
        for o in orders
    ]
    logs = list(await OrderRepository(session).insert_rows(rows))
    refused = []
    for entry, order in zip(logs, orders, strict=True):
        if order.refusal is not None:  # as `lifecycle.reject` records a refusal
            count(entry, OrderStatus.pending, order.conn.adapter)
            kind = announced(entry, OrderStatus.pending)
            if kind is not None:
                refused.append(events.row(kind, entry, events.order_payload(entry)))
    await EventRepository(session).insert_rows(refused)
    return logs


def _refused(refusal: Refusal | None) -> dict[str, Any]:
    if refusal is None:
        return dict(status=OrderStatus.pending, error_code=None, error_message=None)
    return dict(
        status=OrderStatus.skipped if refusal.skipped else OrderStatus.rejected,
        error_code=refusal.code,
        error_message=refusal.message[:1000],
    )


async def refuse_unsent(
    ctx: AppContext,
    entries: Sequence[ExecutionLog],
    orders: Sequence[EntryOrder],
    connection_ids: set[int],
    refusal: Refusal,
) -> list[ExecutionLog]:
    """Refuse the committed `pending` entries of these connections before they are sent;
    returns every entry as recorded, in order."""
    out = list(entries)
    doomed = [
        i
        for i, e in enumerate(entries)
        if e.status == OrderStatus.pending and e.execution_connection_id in connection_ids
    ]
    if not doomed:
        return out
    async with ctx.session_factory() as session:
        locked = await OrderRepository(session).lock_many([entries[i].id for i in doomed])
        for i in doomed:
            entry = locked[entries[i].id]
            if entry.status == OrderStatus.pending:
                reject(entry, refusal.code, refusal.message, adapter=orders[i].conn.adapter)
            out[i] = entry
        await session.commit()
    return out


async def send_entries(
    ctx: AppContext,
    entries: Sequence[ExecutionLog],
    orders: Sequence[EntryOrder],
    received_at: datetime,
) -> list[ExecutionLog]:
    """Send every committed `pending` entry and record the outcomes; returns the logs as
    recorded, in the order given (refused ones as they were)."""
    recorded = list(entries)
    pending = [i for i, e in enumerate(entries) if e.status == OrderStatus.pending]
    batched = [i for i in pending if orders[i].caps.simulated]
    if len(batched) < 2:
        batched = []
    chosen = set(batched)
    sender = _Sender(ctx, received_at, recorded)
    singles = [(i, entries[i], orders[i]) for i in pending if i not in chosen]
    jobs = [sender.send_all(singles), sender.record()]
    lanes = asyncio.Semaphore(bulk.LANES)

    async def lane(group: list[int]) -> None:
        async with lanes:
            await _send_batch(ctx, [(i, entries[i], orders[i]) for i in group], recorded)

    for start in range(0, len(batched), bulk.GROUP):
        jobs.append(lane(batched[start : start + bulk.GROUP]))
    await _all_or_none(*jobs)
    return recorded


class _Sender:
    """Entries sent each through its own adapter, `signal_concurrency` at a time; their
    outcomes recorded as they come (`OutcomeRecorder`)."""

    def __init__(self, ctx: AppContext, received_at: datetime, recorded: list[ExecutionLog]):
        self.ctx = ctx
        self.received_at = received_at
        self.recorder = OutcomeRecorder(ctx, recorded)
        self.bound = asyncio.Semaphore(ctx.settings.signal_concurrency)

    async def send_all(self, items: Sequence[tuple[int, ExecutionLog, EntryOrder]]) -> None:
        try:
            await asyncio.gather(*(self.send(*item) for item in items))
        finally:
            self.recorder.close()

    async def send(self, i: int, entry: ExecutionLog, order: EntryOrder) -> None:
        observability.connection_id.set(order.conn.id)
        async with self.bound:
            adapter = order.adapter or await self.ctx.adapters.for_connection(order.conn)
            send_by = send_deadline(self.ctx, entry)
            outcome = await submit(
                adapter, entry, order.conn.adapter, self.received_at, send_by=send_by
            )
            self.recorder.put(i, outcome)

    async def record(self) -> None:
        await self.recorder.run()


async def _all_or_none(*jobs: Coroutine[Any, Any, None]) -> None:
    """Run the jobs together; if one fails, cancel the others and raise its error. Here: the
    outcomes can no longer be recorded (the database failed, or the request was cancelled), so
    nothing more is sent. Every row is committed `pending`; an order cut off in flight is
    reconciled by client order id, one never sent is rejected after the grace."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _send_batch(
    ctx: AppContext,
    items: Sequence[tuple[int, ExecutionLog, EntryOrder]],
    recorded: list[ExecutionLog],
) -> None:
    """Simulated venues: every order in one transaction of the venue's own; the outcomes
    recorded set-based (`orders.bulk`)."""
    logs = await bulk.send_batch(ctx, [(entry, order.conn) for _, entry, order in items])
    for (i, _, _), entry in zip(items, logs, strict=True):
        recorded[i] = entry
