"""Watching open positions: mark every one to the latest price of its source (price, unrealised
PnL, trailing high-water mark), move stops to break-even, and say which a rule closes. The
closes themselves are orders (`orders.exits`); the prices come from the caller (`fetch`), so
the book does no exchange I/O of its own.

On PostgreSQL the marking is one set-based statement that also picks the few positions a rule
may act on (`repository.marking`); on SQLite every position is evaluated here.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from execution_service import metrics
from execution_service.context import AppContext
from execution_service.market_data.sources import Move, Quote, Source, SourceKind, source_of
from execution_service.models import ExecutionConnection
from execution_service.positions import book
from execution_service.positions.repository import HeldRow, PositionLike, PositionRepository
from execution_service.positions.repository.marking import MarkRepository
from execution_service.positions.rules import Close, Decision, evaluate_path, view_of
from execution_service.positions.shares import EVERY, share_of

Quotes = dict[tuple[Source, str], Quote]
# {source: {symbol: the oldest mark of the positions it prices}} -> quotes with the path of
# prices since then; own-sourced ones use the connection rows given.
Wanted = dict[Source, dict[str, datetime | None]]
Fetch = Callable[[Wanted, dict[int, ExecutionConnection]], Awaitable[Quotes]]
CloseOrder = tuple[PositionLike, Close]


@dataclass
class TickReport:
    positions: int = 0
    priced: int = 0
    stale: int = 0
    closes: list[int] = field(default_factory=list)
    seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def done(self) -> TickReport:
        self.seconds = time.perf_counter() - self.started
        metrics.MONITOR_TICK.observe(self.seconds)
        return self


# (data connection id, symbol): the prices a woken tick judges (`mark`'s `only`).
Arrived = set[tuple[int, str]]


@dataclass(frozen=True)
class Scope:
    """What one tick judges: the (source, symbol) pairs of this worker's `shares`, and of those
    only the arrived prices' (`only`) when woken by them."""

    shares: frozenset[int] = EVERY
    only: Arrived | None = None

    def wants(self, source: Source, symbol: str) -> bool:
        if self.only is not None and (
            source[0] != SourceKind.data or (source[1], symbol) not in self.only
        ):
            return False
        return self.shares is EVERY or share_of(source, symbol) in self.shares


async def mark(
    ctx: AppContext, fetch: Fetch, now: datetime, report: TickReport, scope: Scope = Scope()
) -> list[CloseOrder]:
    """Mark the open positions in `scope`; return the closes the rules call for."""
    if ctx.engine.dialect.name == "postgresql":
        closes = await mark_in_sql(ctx, fetch, now, report, scope)
    else:
        closes = await mark_in_python(ctx, fetch, now, report, scope)
    if scope.only is None:
        metrics.OPEN_POSITIONS.set(report.positions)
    return closes


def _symbols(scope: Scope) -> set[str] | None:
    return None if scope.only is None else {symbol for _, symbol in scope.only}


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


def _grouped(pairs: list[tuple[Source, str, datetime | None]]) -> Wanted:
    """{source: {symbol: the oldest of the marks given}} (None: some position was never marked)."""
    grouped: Wanted = defaultdict(dict)
    for source, symbol, at in pairs:
        symbols = grouped[source]
        if symbol not in symbols:
            symbols[symbol] = at
        elif symbols[symbol] is not None:
            symbols[symbol] = None if at is None else min(at, symbols[symbol] or at)
    return grouped


async def mark_in_sql(
    ctx: AppContext, fetch: Fetch, now: datetime, report: TickReport, scope: Scope = Scope()
) -> list[CloseOrder]:
    """PostgreSQL: one grouped read of what to price, one set-based UPDATE that marks every open
    position and returns those a rule may act on; only those are loaded and evaluated."""
    async with ctx.session_factory() as session:
        groups = await MarkRepository(session).open_groups(_symbols(scope))
        counts = {key: n for key, (n, _) in groups.items() if scope.wants(*key)}
        report.positions = sum(counts.values())
        if not counts:
            return []
        own = [source_id for (kind, source_id), _ in counts if kind == SourceKind.conn]
        connections = {c.id: c for c in await MarkRepository(session).connections(own)}
    wanted = _grouped(
        [
            (source, symbol, at)
            for (source, symbol), (_, at) in groups.items()
            if scope.wants(source, symbol)
        ]
    )
    quotes = await fetch(wanted, connections)
    fresh = {
        key: q
        for key, n in counts.items()
        if _fresh(ctx, q := quotes.get(key), now, report, n) and q is not None
    }
    parts = await asyncio.gather(*(_mark_part(ctx, p) for p in _parts(fresh, counts)))
    return [close for part in parts for close in part]


# The marking is split over this many connections, each marking and judging the positions of a
# share of the (source, symbol) pairs in its own transaction: PostgreSQL writes them on as many
# cores at once (a tick writes every open position; the monitor's process waits meanwhile).
MARK_PARTS = 2
# ... when it marks at least this many: a small tick (a pushed price's few positions) is one
# statement, not two transactions' worth of round trips.
MARK_SPLIT_AT = 20_000


def _parts(
    quotes: Quotes, counts: dict[tuple[Source, str], int], split_at: int = MARK_SPLIT_AT
) -> list[Quotes]:
    """The quotes in up to MARK_PARTS parts of about as many positions each (largest first)."""
    if sum(counts.get(key, 0) for key in quotes) < split_at:
        return [quotes] if quotes else []
    parts: list[Quotes] = [{} for _ in range(MARK_PARTS)]
    sizes = [0] * MARK_PARTS
    for key in sorted(quotes, key=lambda k: -counts.get(k, 0)):
        i = sizes.index(min(sizes))
        parts[i][key] = quotes[key]
        sizes[i] += counts.get(key, 0)
    return [p for p in parts if p]


async def _mark_part(ctx: AppContext, quotes: Quotes) -> list[CloseOrder]:
    """Mark the positions these quotes price, judge those a rule may act on and move their stops
    to break-even, in one transaction: should judging fail, the marks roll back with it and the
    next tick judges the same path of prices again (a wick through a stop is never used up
    unjudged). Returns the closes the rules call for."""
    closes: list[CloseOrder] = []
    async with ctx.session_factory() as session:
        marks = MarkRepository(session)
        candidates = await marks.mark_in_sql(quotes)
        moves: list[dict[str, Any]] = []
        loaded = await PositionRepository(session).by_ids(list(candidates))
        venue = await _venue_liquidates(ctx, marks, loaded)
        for position in loaded:
            source, marked_at = candidates[position.id]
            quote = quotes[(source, position.symbol)]
            _decide(position, quote.since(marked_at), moves, closes, position.id in venue)
        await marks.move_stops_to_break_even(moves)
        await session.commit()
    return closes


async def _venue_liquidates(
    ctx: AppContext, marks: MarkRepository, positions: list[HeldRow]
) -> set[int]:
    """The positions a venue holds and liquidates itself (`venue_positions`)."""
    ids = sorted({p.execution_connection_id for p in positions})
    conns = {c.id: c for c in await marks.connections(ids)}
    return {
        p.id
        for p in positions
        if p.execution_connection_id in conns
        and ctx.adapters.capabilities(conns[p.execution_connection_id]).venue_positions
    }


def _decide(
    position: PositionLike,
    path: tuple[Move, ...],
    moves: list[dict[str, Any]],
    closes: list[CloseOrder],
    venue_liquidates: bool = False,
) -> Decision:
    decision = evaluate_path(view_of(position, venue_liquidates), path)
    if decision.break_even_done and not position.break_even_done:
        moves.append({"pid": position.id, "sl": decision.sl})
    if decision.close is not None:
        closes.append((position, decision.close))
    return decision


async def mark_in_python(
    ctx: AppContext, fetch: Fetch, now: datetime, report: TickReport, scope: Scope = Scope()
) -> list[CloseOrder]:
    """SQLite (text Money, floating-point SQL arithmetic): every open position is read, marked
    and evaluated here, and written back in one executemany."""
    async with ctx.session_factory() as session:
        rows = await PositionRepository(session).open_with_connections(_symbols(scope))
    rows = [(p, c) for p, c in rows if scope.wants(source_of(c), p.symbol)]
    report.positions = len(rows)
    if not rows:
        return []
    connections = {conn.id: conn for _, conn in rows}
    sources = {p.id: source_of(conn) for p, conn in rows}
    wanted = _grouped([(sources[p.id], p.symbol, p.last_price_update_at) for p, _ in rows])
    quotes = await fetch(wanted, connections)
    updates: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    closes: list[CloseOrder] = []
    for position, conn in rows:
        quote = quotes.get((sources[position.id], position.symbol))
        if not _fresh(ctx, quote, now, report, 1) or quote is None:
            continue
        path = quote.since(position.last_price_update_at)
        venue = ctx.adapters.capabilities(conn).venue_positions
        decision = _decide(position, path, moves, closes, venue)
        marked = book.mark(position, quote.price)
        updates.append(
            {
                "pid": position.id,
                "cp": quote.price,
                "upnl": marked.pnl,
                "upct": marked.pnl_percentage,
                "best": decision.best,
                "at": quote.at,
            }
        )
    async with ctx.session_factory() as session:
        marks = MarkRepository(session)
        await marks.write_marks(updates)
        await marks.move_stops_to_break_even(moves)
        await session.commit()
    return closes
