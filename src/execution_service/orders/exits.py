"""Exits: the orders that reduce or close positions, for the API's close, the monitor's stops and
targets, and everything later. One claim for all of them: under a row lock, a position still
`open` moves to `closing` together with its exit order's `pending` row, in one commit, so of any
number of callers (API, monitors in several processes) exactly one sends the exit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import utcnow
from execution_service.enums import CloseReason, OrderStatus, OrderType, Purpose
from execution_service.exchanges.base import ExchangeAdapter, ExchangeError
from execution_service.exchanges.capabilities import ClientIdFormat
from execution_service.models import ExecutionConnection, ExecutionLog, ExecutionPosition
from execution_service.orders import bulk, fills
from execution_service.orders.exit_venues import ExitVenue, Venues, size_exit
from execution_service.orders.ids import READABLE, exit_client_order_id
from execution_service.orders.lifecycle import Outcome, reject, send_deadline, submit
from execution_service.orders.outcomes import (
    OutcomeRecorder,
    record_outcomes,
    ticket_of,
)
from execution_service.orders.protection_legs import release_for_exit
from execution_service.orders.repository import OrderRepository
from execution_service.positions.book import exit_direction
from execution_service.positions.repository import (
    CHUNK,
    HeldRow,
    PositionRepository,
)
from execution_service.positions.rules import trailing_level

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExitRequest:
    position_id: int
    reason: CloseReason
    quantity: Decimal | None  # None: all that is open
    full: bool  # the exit is meant to close the position
    level: int | None = None  # the partial take-profit level it fills
    signal_id: int | None = None  # the signal it answers (netting); else the position's own


def exit_values(
    ctx: AppContext,
    position: ExecutionPosition | HeldRow,
    quantity: Decimal,
    reason: CloseReason,
    n: int,
    full_close: bool,
    fmt: ClientIdFormat = READABLE,
    signal_id: int | None = None,
) -> dict[str, Any]:
    """The columns of the `pending` row of the n-th exit order of a position (a batch's INSERT,
    or an `ExecutionLog` of its own)."""
    return dict(
        user_id=position.user_id,
        admin_id=position.admin_id,
        execution_connection_id=position.execution_connection_id,
        signal_id=signal_id if signal_id is not None else position.signal_id,
        position_id=position.id,
        purpose=Purpose.exit,
        client_order_id=exit_client_order_id(ctx.settings.client_order_prefix, position.id, n, fmt),
        symbol=position.symbol,
        direction=exit_direction(position.direction),
        order_type=OrderType.market,
        quantity=quantity,
        price=position.current_price,
        status=OrderStatus.pending,
        close_reason=reason,
        received_at=utcnow(),
        plan={"full_close": full_close},
    )


def trigger_level(position: ExecutionPosition | HeldRow, request: ExitRequest) -> Decimal | None:
    """The level a stop or target close fires at: the SL, the TP (or the ladder's level), the
    trailing stop's. None for any other close."""
    if request.reason == CloseReason.sl:
        return position.sl_price
    if request.reason == CloseReason.tp:
        if request.level is not None and position.take_profits:
            return Decimal(str(position.take_profits[request.level]["price"]))
        return position.tp_price
    if request.reason == CloseReason.trailing_stop and position.trailing_stop_percent:
        best = position.best_price or position.entry_price
        return trailing_level(position.direction, best, position.trailing_stop_percent)
    return None


async def claim(
    ctx: AppContext, requests: Sequence[ExitRequest], venues: Venues, *, skip_locked: bool
) -> list[ExecutionLog]:
    """Claim the positions still open and commit their exits' `pending` rows, a chunk per
    transaction (see `claim_in`)."""
    wanted = sorted(requests, key=lambda r: r.position_id)
    claimed: list[ExecutionLog] = []
    for i in range(0, len(wanted), CHUNK):
        async with ctx.session_factory() as session:
            batch = await claim_in(
                session, ctx, wanted[i : i + CHUNK], venues, skip_locked=skip_locked
            )
            await session.commit()
        claimed += batch
    return claimed


async def claim_in(
    session: AsyncSession,
    ctx: AppContext,
    requests: Sequence[ExitRequest],
    venues: Venues,
    *,
    skip_locked: bool,
) -> list[ExecutionLog]:
    """In the caller's transaction: the positions still open move to `closing` and their exits'
    `pending` rows are added; a position that another caller holds or already closes is left
    out. The quantity is sized by `exit_venues.size_exit`; one that rounds to nothing is not
    claimed. `skip_locked`: pass over rows another transaction holds (a monitor batch) rather
    than wait (the API and signals wait). The caller commits."""
    tolerance = Decimal(str(ctx.settings.spot_exit_tolerance_percent))
    wanted = {r.position_id: r for r in requests}
    positions = PositionRepository(session)
    rows = await positions.lock_open_rows(sorted(wanted), skip_locked=skip_locked)
    counts = await OrderRepository(session).exit_counts([p.id for p in rows])
    closing: list[int] = []
    levels_done: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] = []
    for position in rows:
        request = wanted[position.id]
        venue = venues.get((position.execution_connection_id, position.symbol), ExitVenue())
        size = size_exit(
            position.quantity,
            request.quantity,
            request.full,
            venue,
            position.current_price,
            tolerance,
        )
        if size.quantity <= 0:
            continue
        closing.append(position.id)
        if request.level is not None and position.take_profits:
            levels = [dict(t) for t in position.take_profits]
            levels[request.level]["done"] = True
            position["take_profits"] = levels
            levels_done.append({"row_id": position.id, "take_profits": levels})
        n = counts.get(position.id, 0) + 1
        values = exit_values(
            ctx,
            position,
            size.quantity,
            request.reason,
            n,
            size.full,
            venue.client_ids,
            request.signal_id,
        )
        level = trigger_level(position, request)
        if level is not None:  # a simulated venue fills it there, as a resting stop would
            values["plan"] = {**values["plan"], "level": str(level)}
        batch.append(values)
    # A few statements for the batch (a netting fan-out's thousands), not the ORM's unit of
    # work: the exits' rows come back detached, as the caller commits them.
    await positions.mark_closing(closing)
    await positions.update_rows(levels_done)
    return list(await OrderRepository(session).insert_rows(batch))


async def send_exit(
    ctx: AppContext,
    exit_log: ExecutionLog,
    adapter: ExchangeAdapter | None,
    conn: ExecutionConnection | None,
    *,
    analytics_days: set[tuple[int, date]] | None = None,
) -> ExecutionLog:
    """Send a claimed exit and record its outcome."""
    sent = await _submit_exit(ctx, exit_log, adapter, conn)
    if isinstance(sent, ExecutionLog):
        return sent
    (recorded,) = await record_outcomes(ctx, [sent], analytics_days=analytics_days)
    return recorded


async def _submit_exit(
    ctx: AppContext,
    exit_log: ExecutionLog,
    adapter: ExchangeAdapter | None,
    conn: ExecutionConnection | None,
) -> Outcome | ExecutionLog:
    """Send a claimed exit: its outcome, to record. Without an adapter (its credentials do not
    decrypt, its client cannot be built) the exit is refused and the position is open again:
    the log as recorded."""
    try:
        if conn is None:
            async with ctx.session_factory() as session:
                conn = await OrderRepository(session).connection(exit_log.execution_connection_id)
            assert conn is not None
        if adapter is None:
            adapter = await ctx.adapters.for_connection(conn)
    except (CredentialsError, ExchangeError) as exc:
        async with ctx.session_factory() as session:
            entry = await OrderRepository(session).lock(exit_log.id)
            assert entry is not None
            reject(
                entry, "credentials_error", str(exc), adapter=conn.adapter if conn else "unknown"
            )
            await fills.release_exit(session, entry, ctx.settings.exit_max_refusals)
            await session.commit()
            return entry
    if await release_for_exit(ctx, adapter, conn, exit_log):
        return await _closed_at_venue(ctx, exit_log, conn)
    ticket = await ticket_of(ctx, exit_log, adapter)
    send_by = send_deadline(ctx, exit_log)
    return await submit(adapter, exit_log, conn.adapter, None, ticket, send_by=send_by)


async def _closed_at_venue(
    ctx: AppContext, exit_log: ExecutionLog, conn: ExecutionConnection
) -> ExecutionLog:
    """A protective leg filled at the venue before this exit went out: the position is closed,
    the exit is refused unsent."""
    async with ctx.session_factory() as session:
        entry = await OrderRepository(session).lock(exit_log.id)
        assert entry is not None
        message = "the venue's stop or target closed the position first: not sent"
        reject(entry, "closed_at_venue", message, adapter=conn.adapter)
        await fills.release_exit(session, entry, ctx.settings.exit_max_refusals)
        await session.commit()
        return entry


async def send_all(
    ctx: AppContext,
    exit_logs: Sequence[ExecutionLog],
    adapters: dict[int, ExchangeAdapter | None],
    conns: dict[int, ExecutionConnection],
    analytics_days: set[tuple[int, date]] | None = None,
) -> list[ExecutionLog]:
    """Send claimed exits: those on simulated venues in one batch, the others concurrently
    under the configured bound; the logs as recorded, in the order given.
    `analytics_days`: see `lifecycle.Recording.finish`."""
    if not exit_logs:
        return []
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)
    out = list(exit_logs)
    batched = [i for i, e in enumerate(exit_logs) if _simulated(ctx, conns, e)]
    if len(batched) < 2 and not any("level" in (exit_logs[i].plan or {}) for i in batched):
        batched = []  # one order alone is quicker sent on its own, unless it fires at a level
    # Real venues' outcomes are recorded as they arrive, those that arrive together in one
    # transaction: a mass close (a crash through 1,000 accounts' stops, a netting signal) is not
    # a transaction per exit.
    recorder = OutcomeRecorder(ctx, out, analytics_days)

    async def one(i: int) -> None:
        conn_id = exit_logs[i].execution_connection_id
        async with bound:
            sent = await _submit_exit(ctx, exit_logs[i], adapters.get(conn_id), conns.get(conn_id))
        if isinstance(sent, ExecutionLog):
            out[i] = sent
        else:
            recorder.put(i, sent)

    async def singles(indexes: list[int]) -> list[BaseException | None]:
        try:
            return await asyncio.gather(*(one(i) for i in indexes), return_exceptions=True)
        finally:
            recorder.close()

    async def batch() -> None:
        if batched:
            await _send_batch(ctx, [(i, exit_logs[i]) for i in batched], conns, out, analytics_days)

    chosen = set(batched)
    indexes = [i for i in range(len(exit_logs)) if i not in chosen]
    sent, recording, batch_result = await asyncio.gather(
        singles(indexes), recorder.run(), batch(), return_exceptions=True
    )
    # Each failed row stays pending, for the order tracker to reconcile by client order id.
    errors = [r for r in (*(sent if isinstance(sent, list) else [sent]), recording) if r]
    failed = [exit_logs[i] for i in indexes if out[i] is exit_logs[i]] if errors else []
    if batch_result is not None:
        failed += [exit_logs[i] for i in batched]
        errors.append(batch_result)
    _log_failures(failed, len(exit_logs), [e for e in errors if isinstance(e, BaseException)])
    return out


async def _send_batch(
    ctx: AppContext,
    items: Sequence[tuple[int, ExecutionLog]],
    conns: dict[int, ExecutionConnection],
    out: list[ExecutionLog],
    analytics_days: set[tuple[int, date]] | None,
) -> None:
    """Simulated venues: every exit in one transaction of the venue's own, the outcomes
    recorded set-based (`orders.bulk`); `out[i]` becomes exit i's log as recorded."""
    pairs = [(e, conns[e.execution_connection_id]) for _, e in items]
    logs = await bulk.send_batch(ctx, pairs, analytics_days)
    for (i, _), recorded in zip(items, logs, strict=True):
        out[i] = recorded


def _simulated(
    ctx: AppContext, conns: dict[int, ExecutionConnection], exit_log: ExecutionLog
) -> bool:
    conn = conns.get(exit_log.execution_connection_id)
    return conn is not None and ctx.adapters.capabilities(conn).simulated


def _log_failures(failed: list[ExecutionLog], sent: int, errors: list[BaseException]) -> None:
    if failed and errors:  # each row stays pending, for the order tracker; one log line a tick
        log.error(
            "%d of %d exits failed unrecorded (first: %s)",
            len(failed),
            sent,
            failed[0].client_order_id,
            exc_info=errors[0],
        )
