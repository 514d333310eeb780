"""Position monitor: one tick fetches one price per (source, symbol), marks every open position
to it (price, unrealised PnL, trailing high-water mark) in bulk, and closes what the rules say to
close. On PostgreSQL the marking is one set-based statement that also picks the few positions a
rule may act on (`marks`); on SQLite every position is evaluated in Python.

A close is claimed `open -> closing` under `FOR UPDATE SKIP LOCKED` together with the exit
order's `pending` row, so with several worker processes on PostgreSQL each position is closed by
exactly one of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update

from execution_service import metrics
from execution_service.analytics import service as analytics
from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import Money, UtcDateTime, utcnow
from execution_service.decimals import round_down
from execution_service.exchanges.base import ExchangeAdapter, ExchangeError
from execution_service.models import ExecutionConnection, ExecutionLog, ExecutionPosition
from execution_service.positions import fills
from execution_service.positions import service as positions
from execution_service.positions.pnl import gross_pnl, pnl_percent
from execution_service.positions.rules import Close, Decision, Level, PositionView, evaluate
from execution_service.workers import marks
from execution_service.workers.prices import Quote, Source, fetch_prices, group_symbols, source_of

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    positions: int = 0
    priced: int = 0
    stale: int = 0
    closes: list[int] = field(default_factory=list)
    seconds: float = 0.0


def view_of(p: ExecutionPosition) -> PositionView:
    levels = tuple(
        Level(Decimal(t["price"]), Decimal(t["close_percent"]), bool(t.get("done")))
        for t in p.take_profits or []
    )
    return PositionView(
        p.direction,
        p.entry_price,
        p.quantity,
        p.initial_quantity,
        p.sl_price,
        p.tp_price,
        levels,
        p.trailing_stop_percent,
        p.best_price,
        p.break_even_trigger_rr,
        p.break_even_done,
    )


_t = cast(Table, ExecutionPosition.__table__)
_PRICE_UPDATE = (
    update(_t)
    .where(_t.c.id == bindparam("pid"), _t.c.status == "open")
    .values(
        current_price=bindparam("cp", type_=Money()),
        pnl=bindparam("upnl", type_=Money()),
        pnl_percentage=bindparam("upct", type_=Money()),
        best_price=bindparam("best", type_=Money()),
        last_price_update_at=bindparam("at", type_=UtcDateTime()),
    )
)
_BREAK_EVEN = (
    update(_t)
    .where(_t.c.id == bindparam("pid"), _t.c.status == "open", _t.c.break_even_done.is_(False))
    .values(sl_price=bindparam("sl", type_=Money()), break_even_done=True)
)


async def monitor_tick(ctx: AppContext) -> TickReport:
    started = time.perf_counter()
    report = TickReport()
    now = utcnow()
    mark = _mark_in_sql if ctx.engine.dialect.name == "postgresql" else mark_in_python
    closes = await mark(ctx, report, now)
    metrics.OPEN_POSITIONS.set(report.positions)
    closes = await _not_cooling_down(ctx, closes, now)
    if closes:
        report.closes = await close_many(ctx, closes)
    return _timed(report, started)


def _fresh(
    ctx: AppContext, quote: Quote | None, now: datetime, report: TickReport, count: int
) -> bool:
    if quote is None:
        return False
    if now - quote.at > timedelta(seconds=ctx.settings.monitor_max_price_age_seconds):
        report.stale += count  # an old price is not acted on
        return False
    report.priced += count
    return True


async def _mark_in_sql(
    ctx: AppContext, report: TickReport, now: datetime
) -> list[tuple[ExecutionPosition, Close]]:
    """PostgreSQL: one grouped read of what to price, one set-based UPDATE that marks every open
    position and returns those a rule may act on; only those are loaded and evaluated."""
    is_conn, sid = marks.source_columns()
    async with ctx.session_factory() as session:
        groups = (
            await session.execute(
                select(is_conn, sid, ExecutionPosition.symbol, func.count())
                .join(
                    ExecutionConnection,
                    ExecutionConnection.id == ExecutionPosition.execution_connection_id,
                )
                .where(ExecutionPosition.status == "open")
                .group_by(is_conn, sid, ExecutionPosition.symbol)
            )
        ).all()
        counts: dict[tuple[Source, str], int] = {
            (("conn" if own else "data", source_id), symbol): n
            for own, source_id, symbol, n in groups
        }
        report.positions = sum(counts.values())
        if not counts:
            return []
        own_ids = [source_id for (kind, source_id), _ in counts if kind == "conn"]
        connections = {
            c.id: c
            for c in await session.scalars(
                select(ExecutionConnection).where(ExecutionConnection.id.in_(own_ids))
            )
        }
    quotes = await fetch_prices(ctx, group_symbols(list(counts)), connections)
    fresh = {
        key: (q.price, q.at)
        for key, n in counts.items()
        if _fresh(ctx, q := quotes.get(key), now, report, n) and q is not None
    }
    closes: list[tuple[ExecutionPosition, Close]] = []
    async with ctx.session_factory() as session:
        candidates = await marks.mark_in_sql(session, fresh)
        moves: list[dict[str, Any]] = []
        ids = sorted(candidates)
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            for position in await session.scalars(
                select(ExecutionPosition).where(ExecutionPosition.id.in_(chunk))
            ):
                _decide(position, candidates[position.id], moves, closes)
        if moves:
            await session.execute(_BREAK_EVEN, moves)
        await session.commit()
    return closes


_CHUNK = 5000  # ids per IN list: far below the driver's bound on parameters


def _decide(
    position: ExecutionPosition,
    price: Decimal,
    moves: list[dict[str, Any]],
    closes: list[tuple[ExecutionPosition, Close]],
) -> Decision:
    decision = evaluate(view_of(position), price)
    if decision.break_even_done and not position.break_even_done:
        moves.append({"pid": position.id, "sl": decision.sl})
    if decision.close is not None:
        closes.append((position, decision.close))
    return decision


async def mark_in_python(
    ctx: AppContext, report: TickReport, now: datetime
) -> list[tuple[ExecutionPosition, Close]]:
    """SQLite (text Money, floating-point SQL arithmetic): every open position is read, marked
    and evaluated here, and written back in one executemany."""
    async with ctx.session_factory() as session:
        rows = (
            await session.execute(
                select(ExecutionPosition, ExecutionConnection)
                .join(
                    ExecutionConnection,
                    ExecutionConnection.id == ExecutionPosition.execution_connection_id,
                )
                .where(ExecutionPosition.status == "open")
            )
        ).all()
    report.positions = len(rows)
    if not rows:
        return []
    connections = {conn.id: conn for _, conn in rows}
    sources = {p.id: source_of(conn) for p, conn in rows}
    quotes = await fetch_prices(
        ctx, group_symbols([(sources[p.id], p.symbol) for p, _ in rows]), connections
    )
    updates: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    closes: list[tuple[ExecutionPosition, Close]] = []
    for position, _ in rows:
        quote = quotes.get((sources[position.id], position.symbol))
        if not _fresh(ctx, quote, now, report, 1) or quote is None:
            continue
        decision = _decide(position, quote.price, moves, closes)
        unit = fills.per_unit(position)
        upnl = gross_pnl(
            position.direction, position.entry_price, quote.price, position.quantity, unit
        )
        updates.append(
            {
                "pid": position.id,
                "cp": quote.price,
                "upnl": upnl,
                "upct": pnl_percent(upnl, position.entry_price, position.quantity, unit),
                "best": decision.best,
                "at": quote.at,
            }
        )
    async with ctx.session_factory() as session:
        if updates:
            await session.execute(_PRICE_UPDATE, updates)
        if moves:
            await session.execute(_BREAK_EVEN, moves)
        await session.commit()
    return closes


def _timed(report: TickReport, started: float) -> TickReport:
    report.seconds = time.perf_counter() - started
    metrics.MONITOR_TICK.observe(report.seconds)
    return report


async def _not_cooling_down(
    ctx: AppContext, closes: list[tuple[ExecutionPosition, Close]], now: datetime
) -> list[tuple[ExecutionPosition, Close]]:
    """A position whose last exit was refused waits `exit_retry_seconds` before the next attempt:
    an exchange that is down gets one exit order per position per interval, not one per tick."""
    if not closes:
        return closes
    since = now - timedelta(seconds=ctx.settings.exit_retry_seconds)
    async with ctx.session_factory() as session:
        recent = set(
            await session.scalars(
                select(ExecutionLog.position_id).where(
                    ExecutionLog.position_id.in_([p.id for p, _ in closes]),
                    ExecutionLog.purpose == "exit",
                    ExecutionLog.status == "rejected",
                    ExecutionLog.updated_at >= since,
                )
            )
        )
    return [(p, c) for p, c in closes if p.id not in recent]


# Exits claimed (committed `pending`) at a time: each group is sent before the next is claimed,
# so no exit waits in our queue past its send deadline (`logs.send_deadline`) behind thousands
# of others committed at the same moment.
CLAIM_GROUP = 500


async def close_many(ctx: AppContext, closes: list[tuple[ExecutionPosition, Close]]) -> list[int]:
    """Claim, then send every exit concurrently under the configured bound, a group at a time.
    The day's analytics row of each connection is refreshed once after the batch, not once per
    close."""
    adapters, steps = await _adapters_and_steps(ctx, closes)
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)

    async def send(exit_log: ExecutionLog) -> None:
        async with bound:
            adapter = adapters.get(exit_log.execution_connection_id)
            await positions.send_exit(ctx, exit_log, adapter)

    closed: list[int] = []
    with fills.analytics_deferred() as days:
        for start in range(0, len(closes), CLAIM_GROUP):
            claimed = await _claim(ctx, closes[start : start + CLAIM_GROUP], steps)
            results = await asyncio.gather(*(send(e) for e in claimed), return_exceptions=True)
            _log_failures(claimed, results)
            closed += [e.position_id for e in claimed if e.position_id is not None]
    await _refresh_analytics(ctx, days)
    return closed


def _log_failures(claimed: list[ExecutionLog], results: list[BaseException | None]) -> None:
    failed = [(e, r) for e, r in zip(claimed, results, strict=True) if isinstance(r, Exception)]
    if failed:  # each row stays pending, for the order tracker to reconcile; one log line a tick
        first, error = failed[0]
        log.error(
            "%d of %d exits failed unrecorded (first: %s)",
            len(failed),
            len(claimed),
            first.client_order_id,
            exc_info=error,
        )


async def _refresh_analytics(ctx: AppContext, days: set[tuple[int, date]]) -> None:
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)

    async def one(connection_id: int, day: date) -> None:
        async with bound:
            try:
                async with ctx.session_factory() as session:
                    await analytics.refresh_day(session, connection_id, day)
                    await session.commit()
            except Exception:  # the analytics worker recomputes the row on its next tick
                log.exception(
                    "analytics: refreshing connection %s for %s failed", connection_id, day
                )

    await asyncio.gather(*(one(c, d) for c, d in sorted(days)))


async def _adapters_and_steps(
    ctx: AppContext, closes: list[tuple[ExecutionPosition, Close]]
) -> tuple[dict[int, ExchangeAdapter], dict[tuple[int, str], Decimal | None]]:
    """One adapter per connection and one amount step per (connection, symbol). A connection
    without an adapter is left out: its exits are still claimed, and refused by `send_exit`."""
    adapters: dict[int, ExchangeAdapter] = {}
    steps: dict[tuple[int, str], Decimal | None] = {}
    async with ctx.session_factory() as session:
        ids = {p.execution_connection_id for p, _ in closes}
        conns = {
            c.id: c
            for c in await session.scalars(
                select(ExecutionConnection).where(ExecutionConnection.id.in_(ids))
            )
        }
    for position, _ in closes:
        key = (position.execution_connection_id, position.symbol)
        if key in steps:
            continue
        try:
            adapter = adapters.get(key[0]) or await ctx.adapters.for_connection(conns[key[0]])
            adapters[key[0]] = adapter
            steps[key] = (await adapter.market(position.symbol)).amount_step
        except (CredentialsError, ExchangeError):
            steps[key] = None  # the exit is still attempted and recorded
    return adapters, steps


async def _claim(
    ctx: AppContext,
    closes: list[tuple[ExecutionPosition, Close]],
    steps: dict[tuple[int, str], Decimal | None],
) -> list[ExecutionLog]:
    wanted = {p.id: close for p, close in closes}
    claimed: list[ExecutionLog] = []
    ids = sorted(wanted)
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        async with ctx.session_factory() as session:
            rows = (
                await session.scalars(
                    select(ExecutionPosition)
                    .where(ExecutionPosition.id.in_(chunk), ExecutionPosition.status == "open")
                    .with_for_update(skip_locked=True)
                )
            ).all()
            counts = await fills.exit_counts(session, [p.id for p in rows])
            batch: list[ExecutionLog] = []
            for position in rows:
                close = wanted[position.id]
                step = steps.get((position.execution_connection_id, position.symbol))
                quantity = round_down(min(close.quantity, position.quantity), step)
                if quantity <= 0:
                    continue
                position.status = "closing"
                if close.level is not None and position.take_profits:
                    levels = [dict(t) for t in position.take_profits]
                    levels[close.level]["done"] = True
                    position.take_profits = levels
                n = counts.get(position.id, 0) + 1
                batch.append(
                    positions.new_exit_log(ctx, position, quantity, close.reason, n, close.full)
                )
            session.add_all(batch)
            await session.commit()
        claimed += batch
    return claimed
