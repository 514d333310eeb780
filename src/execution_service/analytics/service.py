"""Analytics: the daily row per (connection, UTC day), and range summaries and equity curves.

Two sources, each the truth for its part (see `maths`):
- closed positions (counted on their close) give the trade statistics;
- the execution logs' `realized_pnl` (each counted at its fill, `executed_at`: an entry's fee on
  the open's day, each partial exit on its own day, the rest on the close's) give the net PnL,
  the equity curve and the drawdowns.

Equity is never derived from a later balance: it is measured. A day's `opening_equity` is the
snapshot taken at its first activity: the equity a signal was sized against, the analytics
worker's first snapshot (it snapshots every account holding positions, so normally just after
midnight UTC), or, for a fill before either (an exit, a resting order filling), the equity last
measured before the day. It is set once and never overwritten later that day.

A range's starting equity, per connection:
- the opening equity of its row dated the range's first day;
- else the equity last measured before the range (the latest earlier row's snapshot);
- else the opening equity of its first row in the range;
- else None: the drawdown percent is then null and the curve is cumulative PnL from 0.

Rows are per day, so a `since` inside a day starts from that day's opening figure. Without a
`connection_id`, the starting equity is the sum over the connections with trades or bookings in
the range, and None if any of them has none.

Range: `since` is inclusive; a datetime `until` is exclusive, a date `until` includes its whole
day. Naive datetimes are UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.analytics.maths import Summary, equity_curve, summarize
from execution_service.analytics.repository import (
    STATS,
    AnalyticsRepository,
    Booking,
    IdQuery,
    Trade,
    visible_connections,
)
from execution_service.db import utcnow
from execution_service.decimals import ZERO, normalize
from execution_service.errors import NotFound, Unprocessable
from execution_service.models import ExecutionAnalytics
from execution_service.principal import Principal

DAY = timedelta(days=1)
_T = TypeVar("_T", Trade, Booking)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _utc(value: date | datetime) -> datetime:
    if not isinstance(value, datetime):
        return day_start(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Range:
    """[start, end) in UTC; None is unbounded."""

    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def of(cls, since: date | datetime | None, until: date | datetime | None) -> Range:
        whole_day = until is not None and not isinstance(until, datetime)
        try:
            start = None if since is None else _utc(since)
            end = None if until is None else _utc(until)
            if whole_day and end is not None:
                end = end + DAY if end.date() < date.max else None
        except OverflowError:
            raise Unprocessable("since or until is out of range", code="invalid_range") from None
        # An empty range is fine for two instants, not for a day that ends before `since`.
        if start is not None and end is not None and (start > end or (whole_day and start == end)):
            raise Unprocessable("since is after until", code="invalid_range")
        return cls(start, end)

    def days(self) -> tuple[date | None, date | None]:
        """The days the range touches, as [first, end)."""
        first = self.start.date() if self.start is not None else None
        if self.end is None:
            return first, None
        end = self.end.date()
        if self.end != day_start(end) and end < date.max:
            end += DAY
        return first, end


# --- writes (the caller commits) -------------------------------------------------------------


async def refresh_day(session: AsyncSession, connection_id: int, day: date) -> None:
    await refresh_days(session, [(connection_id, day)])


# Connections per statement of a batch refresh: IN lists far below the drivers' bound.
CHUNK = 5000


async def refresh_days(session: AsyncSession, days: Iterable[tuple[int, date]]) -> None:
    """Recompute each (connection, UTC day) row: its trades (positions closed that day) and what
    was realised that day, measured from its opening equity. Does not commit: it runs inside
    the transaction that books the fills. Leaves balance, equity and is_final alone; a day
    without an opening equity yet gets the equity last measured before it.

    Set-based: a few statements for a whole batch (a fan-out's 10,000 netting exits), not a few
    per row. The rows are inserted or touched first, in (connection, day) order: that takes
    their locks, so a close committing on another worker makes us wait and then read its
    position rather than both writing partial figures, and two batches cannot deadlock."""
    wanted = sorted(set(days))
    repo = AnalyticsRepository(session)
    await repo.upsert_days(wanted, [{}] * len(wanted))
    by_day: dict[date, list[int]] = {}
    for connection_id, day in wanted:
        by_day.setdefault(day, []).append(connection_id)
    rows: list[tuple[int, date]] = []
    values: list[dict[str, object]] = []
    for day, ids in by_day.items():
        start = day_start(day)
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            opening: dict[int, Decimal | None] = dict(await repo.openings(chunk, day))
            missing = [c for c in chunk if c not in opening]
            if missing:
                before = await repo.equities_before(missing, day)
                await repo.open_days(day, before)
                opening.update(before)
            trades = _per_connection(await repo.closed_trades(chunk, start, start + DAY))
            bookings = _per_connection(await repo.bookings(chunk, start, start + DAY))
            for c in chunk:
                pnls = [b.pnl for b in bookings.get(c, [])]
                stats = summarize([t.pnl for t in trades.get(c, [])], opening.get(c), pnls)
                rows.append((c, day))
                values.append({name: getattr(stats, name) for name in STATS})
    await repo.upsert_days(rows, values)


def _per_connection(items: Sequence[_T]) -> dict[int, list[_T]]:
    """Trades or bookings by connection, each list in the order given."""
    out: dict[int, list[_T]] = {}
    for item in items:
        out.setdefault(item.connection_id, []).append(item)
    return out


async def open_days(session: AsyncSession, day: date, equities: dict[int, Decimal]) -> None:
    """The day's first activity on these connections (a signal, with the equity it was sized
    against, measured before any order was sent): each one's opening equity, unless the day
    has one already. One read, and one write for the connections without one. Does not
    commit."""
    if not equities:
        return
    repo = AnalyticsRepository(session)
    known = set(await repo.openings(sorted(equities), day))
    await repo.open_days(day, {c: normalize(e) for c, e in equities.items() if c not in known})


async def snapshot_balance(
    session: AsyncSession,
    connection_id: int,
    day: date,
    balance: Decimal | None,
    equity: Decimal | None,
    final: bool,
) -> None:
    """Record a day's balance and equity (None keeps what is stored: finalising a past day must
    not overwrite its closing balance with today's). An equity measured on a day without an
    opening equity is that day's opening. `final` marks the day final for good. Does not
    commit."""
    values: dict[str, object] = {"is_final": final}
    if balance is not None:
        values["balance"] = balance
    if equity is not None:
        values["equity"] = equity
    repo = AnalyticsRepository(session)
    if equity is not None:
        await repo.open_days(day, {connection_id: equity})
    await repo.upsert_day(connection_id, day, values)


# --- reads -----------------------------------------------------------------------------------


async def _connections(
    session: AsyncSession, principal: Principal, connection_id: int | None
) -> IdQuery:
    stmt = visible_connections(principal, connection_id)
    if connection_id is not None and await AnalyticsRepository(session).first_id(stmt) is None:
        raise NotFound(f"connection {connection_id} not found")
    return stmt


async def daily(
    session: AsyncSession,
    principal: Principal,
    connection_id: int | None,
    period: Range,
    limit: int,
    offset: int,
) -> tuple[Sequence[ExecutionAnalytics], int]:
    connections = await _connections(session, principal, connection_id)
    first, end = period.days()
    return await AnalyticsRepository(session).daily_rows(connections, first, end, limit, offset)


def _opening(
    first: date | None, row: ExecutionAnalytics | None, before: Decimal | None
) -> Decimal | None:
    """The module docstring's rule for one connection: `row` is its first row in the range,
    `before` the equity last measured before the range."""
    if row is not None and row.opening_equity is not None and (first is None or row.date == first):
        return row.opening_equity
    if before is not None:
        return before
    return row.opening_equity if row is not None else None


async def starting_equity(
    session: AsyncSession, connection_ids: list[int], period: Range
) -> Decimal | None:
    """The module docstring's rule, summed over the connections."""
    if not connection_ids:
        return None
    first, end = period.days()
    repo = AnalyticsRepository(session)
    before = {} if first is None else await repo.equities_before(connection_ids, first)
    firsts = await repo.first_rows(connection_ids, first, end)
    total = ZERO
    for connection_id in connection_ids:
        opening = _opening(first, firsts.get(connection_id), before.get(connection_id))
        if opening is None:
            return None
        total += opening
    return normalize(total)


@dataclass(frozen=True, slots=True)
class Performance:
    trades: list[Trade]
    bookings: list[Booking]
    starting_equity: Decimal | None


async def performance(
    session: AsyncSession, principal: Principal, connection_id: int | None, period: Range
) -> Performance:
    connections = await _connections(session, principal, connection_id)
    repo = AnalyticsRepository(session)
    trades = await repo.closed_trades(connections, period.start, period.end)
    bookings = await repo.bookings(connections, period.start, period.end)
    if connection_id is None:
        ids = sorted({t.connection_id for t in trades} | {b.connection_id for b in bookings})
    else:
        ids = [connection_id]
    return Performance(trades, bookings, await starting_equity(session, ids, period))


async def summary(
    session: AsyncSession, principal: Principal, connection_id: int | None, period: Range
) -> tuple[Summary, Decimal | None]:
    """The range's summary, and the starting equity it was measured from."""
    perf = await performance(session, principal, connection_id, period)
    stats = summarize(
        [t.pnl for t in perf.trades], perf.starting_equity, [b.pnl for b in perf.bookings]
    )
    return stats, perf.starting_equity


@dataclass(frozen=True, slots=True)
class Point:
    timestamp: datetime
    equity: Decimal
    pnl: Decimal


async def equity(
    session: AsyncSession, principal: Principal, connection_id: int | None, period: Range
) -> tuple[Decimal | None, list[Point]]:
    """The starting point (at `since`, else the first booking, else now) and one point per
    booking: each exit's fill, and each entry's fee."""
    perf = await performance(session, principal, connection_id, period)
    booked = perf.bookings
    curve = equity_curve(perf.starting_equity, [(b.executed_at, b.pnl) for b in booked])
    opened_at = period.start or (booked[0].executed_at if booked else utcnow())
    points = [Point(opened_at, perf.starting_equity or ZERO, ZERO)]
    points += [Point(at, eq, b.pnl) for (at, eq), b in zip(curve, booked, strict=True)]
    return perf.starting_equity, points
