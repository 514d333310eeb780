"""The market-data loops: feeds (fetching data connections store what they fetch, and build
their bars) and retention (expired ticks and bars deleted in bounded batches)."""

from __future__ import annotations

import logging

from execution_service.context import AppContext
from execution_service.market_data.feeds import Feeder
from execution_service.market_data.retention import prune

log = logging.getLogger(__name__)


def feeds() -> Feeder:
    """The feed loop's tick, with its own memory of the bars it built."""
    return Feeder()


async def retention_tick(ctx: AppContext) -> None:
    report = await prune(ctx)
    if report.rows:
        log.info(
            "market data retention: %d ticks and %d bars deleted in %d statements",
            report.ticks,
            report.bars,
            report.batches,
        )
