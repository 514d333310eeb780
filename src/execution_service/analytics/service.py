"""Analytics: the daily row per (connection, UTC day), and range summaries and equity curves.

Summaries and curves are computed from the closed positions in the range (the source of truth);
the daily rows only supply the starting equity, which positions cannot know:

- the `balance` of the latest daily row, with a balance, dated before the range's first day;
- else the first in-range daily row's `balance` minus that day's `net_pnl` (its opening
  balance), if that row has a balance;
- else None: the drawdown percent is then 0 and the curve is cumulative PnL from 0.

Rows are per day, so a `since` inside a day starts from that day's opening figure. Without a
`connection_id`, the starting equity is the sum over the connections that closed trades in the
range, and None if any of them has none.

Range: `since` is inclusive; a datetime `until` is exclusive, a date `until` includes its whole
day. Naive datetimes are UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.analytics.maths import Summary, equity_curve, summarize
from execution_service.analytics.repository import (
    STATS,
    AnalyticsRepository,
    IdQuery,
    Trade,
    one_connection,
    visible_connections,
)
from execution_service.db import utcnow
from execution_service.decimals import ZERO, normalize
from execution_service.errors import NotFound, Unprocessable
from execution_service.models import ExecutionAnalytics
from execution_service.principal import Principal

DAY = timedelta(days=1)


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
    """Recompute a connection's row for one UTC day from its positions closed that day. Does not
    commit: it runs inside the transaction that closes a position. Leaves balance, equity and
    is_final alone."""
    repo = AnalyticsRepository(session)
    # Insert-or-touch first: that takes the row's lock, so a close committing on another worker
    # makes us wait here and then read its position, rather than both writing partial figures.
    await repo.upsert_day(connection_id, day, {})
    start = day_start(day)
    trades = await repo.closed_trades(one_connection(connection_id), start, start + DAY)
    pnls = [t.pnl for t in trades]
    opening = (await repo.balances_before([connection_id], day)).get(connection_id)
    if opening is None:
        balance = await repo.day_balance(connection_id, day)
        if balance is not None:  # the fresh net, not the stored one being replaced
            opening = normalize(balance - sum(pnls, ZERO))
    stats = summarize(pnls, opening)
    values = {name: getattr(stats, name) for name in STATS}
    await repo.upsert_day(connection_id, day, values)


async def snapshot_balance(
    session: AsyncSession,
    connection_id: int,
    day: date,
    balance: Decimal | None,
    equity: Decimal | None,
    final: bool,
) -> None:
    """Record a day's balance and equity (None keeps what is stored: finalising a past day must
    not overwrite its closing balance with today's). `final` marks the day final for good. Does
    not commit."""
    values: dict[str, object] = {"is_final": final}
    if balance is not None:
        values["balance"] = balance
    if equity is not None:
        values["equity"] = equity
    await AnalyticsRepository(session).upsert_day(connection_id, day, values)


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


def _opening(before: Decimal | None, first: ExecutionAnalytics | None) -> Decimal | None:
    if before is not None:
        return before
    if first is not None and first.balance is not None:
        return normalize(first.balance - first.net_pnl)
    return None


async def starting_equity(
    session: AsyncSession, connection_ids: list[int], period: Range
) -> Decimal | None:
    """The module docstring's rule, summed over the connections."""
    if not connection_ids:
        return None
    first, end = period.days()
    repo = AnalyticsRepository(session)
    before = {} if first is None else await repo.balances_before(connection_ids, first)
    firsts = await repo.first_rows(connection_ids, first, end)
    total = ZERO
    for connection_id in connection_ids:
        opening = _opening(before.get(connection_id), firsts.get(connection_id))
        if opening is None:
            return None
        total += opening
    return normalize(total)


@dataclass(frozen=True, slots=True)
class Performance:
    trades: list[Trade]
    starting_equity: Decimal | None


async def performance(
    session: AsyncSession, principal: Principal, connection_id: int | None, period: Range
) -> Performance:
    connections = await _connections(session, principal, connection_id)
    trades = await AnalyticsRepository(session).closed_trades(connections, period.start, period.end)
    ids = sorted({t.connection_id for t in trades}) if connection_id is None else [connection_id]
    return Performance(trades, await starting_equity(session, ids, period))


async def summary(
    session: AsyncSession, principal: Principal, connection_id: int | None, period: Range
) -> tuple[Summary, Decimal | None]:
    """The range's summary, and the starting equity it was measured from."""
    perf = await performance(session, principal, connection_id, period)
    return summarize([t.pnl for t in perf.trades], perf.starting_equity), perf.starting_equity


@dataclass(frozen=True, slots=True)
class Point:
    timestamp: datetime
    equity: Decimal
    pnl: Decimal


async def equity(
    session: AsyncSession, principal: Principal, connection_id: int | None, period: Range
) -> tuple[Decimal | None, list[Point]]:
    """The starting point (at `since`, else the first close, else now) and one point per close."""
    perf = await performance(session, principal, connection_id, period)
    curve = equity_curve(perf.starting_equity, [(t.closed_at, t.pnl) for t in perf.trades])
    opened_at = period.start or (perf.trades[0].closed_at if perf.trades else utcnow())
    points = [Point(opened_at, perf.starting_equity or ZERO, ZERO)]
    points += [Point(at, eq, t.pnl) for (at, eq), t in zip(curve, perf.trades, strict=True)]
    return perf.starting_equity, points
