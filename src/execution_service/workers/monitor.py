"""Position monitor: one tick reads every open position, fetches one price per (source, symbol),
writes prices and unrealised PnL in bulk, and closes what the rules say to close.

A close is claimed `open -> closing` under `FOR UPDATE SKIP LOCKED` together with the exit
order's `pending` row, so with several worker processes on PostgreSQL each position is closed by
exactly one of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update

from execution_service import metrics
from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import Money, UtcDateTime, utcnow
from execution_service.decimals import round_down
from execution_service.exchanges.base import ExchangeError
from execution_service.models import ExecutionConnection, ExecutionLog, ExecutionPosition
from execution_service.positions import fills
from execution_service.positions import service as positions
from execution_service.positions.pnl import gross_pnl, pnl_percent
from execution_service.positions.rules import Close, Level, PositionView, evaluate
from execution_service.workers.prices import Quote, fetch_prices, group_symbols, source_of

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
    metrics.OPEN_POSITIONS.set(report.positions)
    if not rows:
        return _timed(report, started)
    connections = {conn.id: conn for _, conn in rows}
    sources = {p.id: source_of(conn) for p, conn in rows}
    quotes = await fetch_prices(
        ctx, group_symbols([(sources[p.id], p.symbol) for p, _ in rows]), connections
    )
    now = utcnow()
    max_age = timedelta(seconds=ctx.settings.monitor_max_price_age_seconds)
    updates: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    closes: list[tuple[ExecutionPosition, Close]] = []
    for position, _ in rows:
        quote: Quote | None = quotes.get((sources[position.id], position.symbol))
        if quote is None:
            continue
        if now - quote.at > max_age:
            report.stale += 1  # an old price is not acted on
            continue
        report.priced += 1
        decision = evaluate(view_of(position), quote.price)
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
        if decision.break_even_done and not position.break_even_done:
            moves.append({"pid": position.id, "sl": decision.sl})
        if decision.close is not None:
            closes.append((position, decision.close))
    async with ctx.session_factory() as session:
        if updates:
            await session.execute(_PRICE_UPDATE, updates)
        if moves:
            await session.execute(_BREAK_EVEN, moves)
        await session.commit()
    closes = await _not_cooling_down(ctx, closes, now)
    if closes:
        report.closes = await close_many(ctx, closes)
    return _timed(report, started)


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


async def close_many(ctx: AppContext, closes: list[tuple[ExecutionPosition, Close]]) -> list[int]:
    """Claim, then send every exit concurrently under the configured bound."""
    steps = await _amount_steps(ctx, closes)
    claimed = await _claim(ctx, closes, steps)
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)

    async def send(exit_log: ExecutionLog) -> None:
        async with bound:
            await positions.send_exit(ctx, exit_log)

    await asyncio.gather(*(send(e) for e in claimed))
    return [e.position_id for e in claimed if e.position_id is not None]


async def _amount_steps(
    ctx: AppContext, closes: list[tuple[ExecutionPosition, Close]]
) -> dict[tuple[int, str], Decimal | None]:
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
            adapter = await ctx.adapters.for_connection(conns[key[0]])
            steps[key] = (await adapter.market(position.symbol)).amount_step
        except (CredentialsError, ExchangeError):
            steps[key] = None  # the exit is still attempted and recorded
    return steps


async def _claim(
    ctx: AppContext,
    closes: list[tuple[ExecutionPosition, Close]],
    steps: dict[tuple[int, str], Decimal | None],
) -> list[ExecutionLog]:
    wanted = {p.id: close for p, close in closes}
    claimed: list[ExecutionLog] = []
    async with ctx.session_factory() as session:
        rows = await session.scalars(
            select(ExecutionPosition)
            .where(ExecutionPosition.id.in_(list(wanted)), ExecutionPosition.status == "open")
            .with_for_update(skip_locked=True)
        )
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
            n = await fills.exit_count(session, position.id) + 1
            claimed.append(
                positions.new_exit_log(ctx, position, quantity, close.reason, n, close.full)
            )
        session.add_all(claimed)
        await session.commit()
    return claimed
