"""Retention: ticks are kept EXEC_MARKET_DATA_TICK_RETENTION_HOURS, the bars of a data
connection's configured timeframes their `retention_days` (else
EXEC_MARKET_DATA_BAR_RETENTION_DAYS). Bars of timeframes nobody configured are kept.

A pass deletes expired rows oldest first, at most `prune_batch` rows a statement, each statement
its own short transaction, at most `prune_max_batches` statements: a backlog drains over a few
passes without one long transaction or lock. The latest price per symbol is never pruned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from execution_service import metrics
from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.market_data.bars import TICK
from execution_service.market_data.repository import (
    DataConnectionRepository,
    MarketDataRepository,
)


@dataclass
class PruneReport:
    ticks: int = 0
    bars: int = 0
    batches: int = 0

    @property
    def rows(self) -> int:
        return self.ticks + self.bars


async def prune(ctx: AppContext, now: datetime | None = None) -> PruneReport:
    """One pass: expired ticks first, then each configured timeframe's expired bars, within
    one budget of statements."""
    now = now or utcnow()
    s = ctx.settings
    report = PruneReport()
    if s.market_data_tick_retention_hours:
        cutoff = now - timedelta(hours=s.market_data_tick_retention_hours)
        report.ticks = await _drain(ctx, report, TICK, cutoff, None)
    async with ctx.session_factory() as session:
        configured = await DataConnectionRepository(session).with_timeframes()
    for data in configured:
        for setting in data.timeframes or []:
            days = setting.get("retention_days") or s.market_data_bar_retention_days
            if not days:
                continue  # kept forever
            cutoff = now - timedelta(days=days)
            report.bars += await _drain(ctx, report, setting["timeframe"], cutoff, data.id)
    return report


async def _drain(
    ctx: AppContext,
    report: PruneReport,
    timeframe: str,
    cutoff: datetime,
    data_connection_id: int | None,
) -> int:
    batch, deleted = ctx.settings.market_data_prune_batch, 0
    while report.batches < ctx.settings.market_data_prune_max_batches:
        async with ctx.session_factory() as session:
            n = await MarketDataRepository(session).delete_before(
                timeframe, cutoff, batch, data_connection_id
            )
            await session.commit()
        metrics.MARKET_DATA_PRUNED.inc(n)
        report.batches += 1
        deleted += n
        if n < batch:
            break
    return deleted
