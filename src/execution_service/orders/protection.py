"""Protection held at the venue: a position's SL and TP rest there as orders of their own
(`Purpose.protect`), wherever the venue can hold them (`VenueCapabilities.protection`), so a
position stays protected while this service is down or between two monitor ticks.

One pass (`protect_positions`, after each order-tracker pass, and first thing on start-up before
the service reports ready) keeps the venue's book in step with ours:
- a protective order whose position is no longer open is cancelled (its sibling filled, an exit
  closed the position, the venue closed it);
- an open position with an SL/TP and no resting order for it gets one: the leg's `pending` row is
  committed first, then sent; a refused leg is left to the monitor for `PROTECTION_RETRY`;
- each position records the levels the venue holds (`held_sl_price`, `held_tp_price`): the
  monitor emulates only what is not held there (a trailing stop, a ladder, a moved level).

A leg's fill is recorded by the order tracker like any order's (by client order id): it closes
the position (`closed_reason` sl / tp, the venue's price and fees). An exit of ours first cancels
the position's resting legs (`protection_legs.release_for_exit`): on spot they hold the
coins it sells.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.exc import IntegrityError

from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import utcnow
from execution_service.enums import (
    Direction,
    OrderStatus,
    OrderType,
    Protection,
)
from execution_service.exchanges.base import (
    ExchangeError,
    OrderResult,
    ProtectiveLeg,
    TemporaryError,
)
from execution_service.models import ExecutionConnection, ExecutionLog, ExecutionPosition
from execution_service.orders.lifecycle import Recording, apply_result, reject
from execution_service.orders.protection_legs import (
    HELD_COLUMNS,
    cancel_leg,
    hold_level,
    leg_level,
    leg_rows,
    lone_stop_held,
)
from execution_service.orders.repository import RESTING, OrderRepository
from execution_service.orders.repository.protection import ProtectionRepository
from execution_service.positions.rules import trailing_level

log = logging.getLogger(__name__)

# A leg the venue refused is not placed again for this long (the monitor emulates it meanwhile).
PROTECTION_RETRY = timedelta(seconds=60)
# The venue's stop follows a trailing stop (or break-even) the venue cannot trail itself: moved
# only when the level tightens by this fraction of it, and at most this many legs a position.
AMEND_STEP = Decimal("0.002")
MAX_LEGS = 30


@dataclass
class ProtectReport:
    placed: int = 0
    refused: int = 0
    cancelled: int = 0
    # Open positions with a level the venue could hold but does not (refused, unreachable).
    unprotected: int = 0


@dataclass
class _Placement:
    position: ExecutionPosition
    conn: ExecutionConnection
    legs: list[ExecutionLog]
    list_id: str


def holds_protection(ctx: AppContext, conn: ExecutionConnection) -> Protection:
    return ctx.adapters.capabilities(conn).protection


def wanted_legs(
    position: ExecutionPosition, protection: Protection, trailing: tuple[Decimal, Decimal] | None
) -> dict[OrderType, Decimal]:
    """The levels the venue should hold for a position: its SL, its single TP (a ladder of
    partial targets is the monitor's; on an OCO venue a lone TP stays with the monitor too), and
    its trailing stop's percent where the venue trails within that range (`trailing`)."""
    legs: dict[OrderType, Decimal] = {}
    pct = position.trailing_stop_percent
    if pct is not None and trailing is not None and trailing[0] <= pct <= trailing[1]:
        legs[OrderType.trailing] = pct
    stop = position.sl_price
    if pct is not None and OrderType.trailing not in legs:
        # The venue cannot trail it: its stop follows the level the monitor trails.
        best = position.best_price or position.entry_price
        trail = trailing_level(position.direction, best, pct)
        stop = trail if stop is None else _tighter(position.direction, stop, trail)
    if stop is not None:
        legs[OrderType.stop] = stop
    lone_tp_on_oco = protection == Protection.oco and OrderType.stop not in legs
    if position.tp_price is not None and not position.take_profits and not lone_tp_on_oco:
        legs[OrderType.target] = position.tp_price
    return legs


def _tighter(direction: str, a: Decimal, b: Decimal) -> Decimal:
    """The stop nearer the price: the higher for a long, the lower for a short."""
    return max(a, b) if direction == Direction.buy else min(a, b)


def stop_moves(
    position: ExecutionPosition, legs: list[ExecutionLog], wanted: dict[OrderType, Decimal]
) -> bool:
    """Whether the venue's stop should move to the wanted level: it tightened by `AMEND_STEP`
    (a trailing stop the venue cannot trail, a break-even move). A smaller move keeps the leg
    where it is (the wanted level becomes its own); a looser level is a PATCH's to make."""
    want = wanted.get(OrderType.stop)
    resting = [leg.price for leg in legs if leg.order_type == OrderType.stop and leg.price]
    if want is None or not resting or want in resting:
        return False
    current = resting[0]
    if _tighter(position.direction, want, current) == want and abs(want - current) >= (
        current * AMEND_STEP
    ):
        return True
    wanted[OrderType.stop] = current
    return False


async def protect_positions(ctx: AppContext, now: datetime | None = None) -> ProtectReport:
    now = now or utcnow()
    report = ProtectReport()
    await _cancel_orphans(ctx, report)
    placements = await _plan(ctx, now, report)
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)

    async def one(placement: _Placement) -> None:
        async with bound:
            await _place(ctx, placement, report)

    await asyncio.gather(*(one(p) for p in placements))
    ctx.unprotected_positions = report.unprotected
    return report


def protect_soon(ctx: AppContext) -> None:
    """Entries just filled on a venue that holds stops: a pass now, in the background (the
    signal's answer does not wait for it), folded into the one running if there is one. The
    order tracker's passes remain the safety net."""
    task = ctx.protection_task
    if task is not None and not task.done():
        ctx.protection_again = True
        return
    ctx.protection_task = asyncio.create_task(_soon(ctx))


async def _soon(ctx: AppContext) -> None:
    while True:
        ctx.protection_again = False
        try:
            await protect_positions(ctx)
        except Exception:
            log.exception("placing protective orders failed: the order tracker's pass retries")
        if not ctx.protection_again:
            return


async def settled(ctx: AppContext) -> None:
    """Wait for the background pass, if one runs (tests, shutdown)."""
    while ctx.protection_task is not None and not ctx.protection_task.done():
        await asyncio.wait({ctx.protection_task})


async def _plan(ctx: AppContext, now: datetime, report: ProtectReport) -> list[_Placement]:
    """Record what each position's venue holds, and commit the `pending` rows of what it lacks."""
    placements: list[_Placement] = []
    strays: list[tuple[ExecutionLog, ExecutionConnection]] = []
    async with ctx.session_factory() as session:
        protect_repo = ProtectionRepository(session)
        conns = {
            c.id: c
            for c in await protect_repo.holding_connections()
            if holds_protection(ctx, c) != Protection.emulated
        }
        positions = await protect_repo.to_protect(sorted(conns))
        ids = [p.id for p in positions]
        live: dict[int, list[ExecutionLog]] = {}
        for leg in await protect_repo.live_protection(ids):
            live.setdefault(leg.position_id or 0, []).append(leg)
        refused = await protect_repo.refused_protection_since(ids, now - PROTECTION_RETRY)
        alone: dict[tuple[int, str], bool] = {}
        counts = await protect_repo.protect_counts(ids)
        for position in positions:
            conn = conns[position.execution_connection_id]
            kind = holds_protection(ctx, conn)
            legs = live.get(position.id, [])
            caps = ctx.adapters.capabilities(conn)
            wanted = wanted_legs(position, kind, caps.trailing_percents)
            n = counts.get(position.id, 0)
            moved = kind == Protection.trigger_orders and n < MAX_LEGS
            moved = moved and stop_moves(position, legs, wanted)
            stray = [leg for leg in legs if leg.status in RESTING and _stray(leg, legs, wanted)]
            strays += [(leg, conn) for leg in stray]
            legs = [leg for leg in legs if leg not in stray]
            _note_held(position, legs)
            have = {leg.order_type for leg in legs}
            missing = {t: level for t, level in wanted.items() if t not in have}
            if moved:  # the new stop first; the old one is a stray once the new one rests
                missing[OrderType.stop] = wanted[OrderType.stop]
            if not missing:
                continue
            lone = kind == Protection.oco and set(missing) == {OrderType.stop}
            kept = lone and not await lone_stop_held(ctx, conn, position.symbol, alone)
            if position.id in refused or (kind == Protection.oco and have) or kept:
                report.unprotected += 1  # the monitor emulates it meanwhile
                continue
            rows, list_id = leg_rows(ctx, position, missing, n, caps.client_ids)
            session.add_all(rows)
            placements.append(_Placement(position, conn, rows, list_id))
        try:
            await session.commit()
        except IntegrityError:  # another worker planned the same legs (same client ids) first
            await session.rollback()
            log.info("protective orders: another worker is placing them; this pass places none")
            placements = []
    await _cancel_all(ctx, strays, report)
    return placements


def _stray(leg: ExecutionLog, legs: list[ExecutionLog], wanted: dict[OrderType, Decimal]) -> bool:
    """A resting leg no longer wanted: its level was removed, or another leg of its kind rests
    at the wanted level (an amend whose old leg's cancel failed, or whose new leg's answer was
    lost and found later)."""
    level = wanted.get(leg.order_type)
    if level is None:
        return True
    if leg_level(leg) == level:
        return False
    return any(
        o.order_type == leg.order_type and leg_level(o) == level for o in legs if o is not leg
    )


def _note_held(position: ExecutionPosition, legs: list[ExecutionLog]) -> None:
    """The levels resting at the venue now (a leg not yet confirmed is not held)."""
    held = {leg.order_type: leg_level(leg) for leg in legs if leg.status in RESTING}
    for kind, column in HELD_COLUMNS.items():
        if getattr(position, column) != held.get(kind):
            setattr(position, column, held.get(kind))


async def _place(ctx: AppContext, placement: _Placement, report: ProtectReport) -> None:
    legs, position = placement.legs, placement.position
    answers: list[OrderResult | ExchangeError]
    try:
        adapter = await ctx.adapters.for_connection(placement.conn)
        requests = [
            ProtectiveLeg(leg.order_type, leg_level(leg) or Decimal(0), leg.client_order_id)
            for leg in legs
        ]
        side, amount = legs[0].direction, position.quantity
        if adapter.capabilities.protection == Protection.oco and len(legs) == 2:
            answers = list(
                await adapter.place_protection(
                    position.symbol, side, amount, requests, placement.list_id
                )
            )
        else:
            answers = []
            for request in requests:
                try:
                    (one,) = await adapter.place_protection(
                        position.symbol, side, amount, [request], ""
                    )
                    answers.append(one)
                except ExchangeError as exc:
                    answers.append(exc)
    except CredentialsError as exc:
        answers = [ExchangeError(str(exc))] * len(legs)
    except ExchangeError as exc:
        answers = [exc] * len(legs)
    await _record(ctx, placement.conn, legs, answers, report)


async def _record(
    ctx: AppContext,
    conn: ExecutionConnection,
    legs: list[ExecutionLog],
    answers: list[OrderResult | ExchangeError],
    report: ProtectReport,
) -> None:
    async with ctx.session_factory() as session:
        repo = OrderRepository(session)
        recording = Recording(max_refusals=ctx.settings.exit_max_refusals)
        for leg, answer in zip(legs, answers, strict=True):
            row = await repo.lock(leg.id)
            if row is None or row.status != OrderStatus.pending:
                continue
            if isinstance(answer, TemporaryError):
                # Unknown outcome: the tracker finds the leg by its client order id.
                log.warning("protective order %s: %s", row.client_order_id, answer.message)
                continue
            if isinstance(answer, ExchangeError):
                reject(row, answer.code, answer.message, adapter=conn.adapter)
                report.refused += 1
                report.unprotected += 1
                log.warning(
                    "position %s: the venue refused its %s (%s): the monitor emulates it",
                    row.position_id,
                    row.order_type,
                    answer.message[:200],
                )
                continue
            row.submitted_at = utcnow()
            await apply_result(session, row, answer, adapter=conn.adapter, recording=recording)
            await hold_level(session, row)
            report.placed += 1
        await recording.finish(session)
        await session.commit()


async def _cancel_orphans(ctx: AppContext, report: ProtectReport) -> None:
    async with ctx.session_factory() as session:
        orphans = await ProtectionRepository(session).orphaned_protection()
    await _cancel_all(ctx, orphans, report)


async def _cancel_all(
    ctx: AppContext,
    legs: Sequence[tuple[ExecutionLog, ExecutionConnection]],
    report: ProtectReport,
) -> None:
    for leg, conn in legs:
        try:
            adapter = await ctx.adapters.for_connection(conn)
        except (CredentialsError, ExchangeError):
            continue
        if await cancel_leg(ctx, adapter, conn, leg):
            report.cancelled += 1
