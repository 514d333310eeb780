"""The market-data loops: feeds (fetching data connections store what their venue pushes or what
they fetch, and build their bars) and retention (expired ticks and bars deleted in bounded
batches)."""

from __future__ import annotations

import logging

from execution_service.context import AppContext
from execution_service.market_data.feeds import Feeder
from execution_service.market_data.retention import prune
from execution_service.market_data.streams import StreamFeeds

log = logging.getLogger(__name__)


class Feeds:
    """The feed loop: its price streams first (claimed, renewed, given up, each handed its
    symbols), then the polls of what no stream delivers, and the bars. Stopping the loop stops
    its streams (`close`)."""

    def __init__(self) -> None:
        self.streams = StreamFeeds()
        self.poller = Feeder()  # with its own memory of the bars it built

    async def tick(self, ctx: AppContext) -> None:
        try:
            await self.streams.tick(ctx)
        except Exception:  # the polls go on: a connection whose stream is not held is polled
            log.exception("market data streams: their tick failed")
        await self.poller.tick(ctx)

    async def close(self) -> None:
        await self.streams.close()


def feeds() -> Feeds:
    return Feeds()


async def retention_tick(ctx: AppContext) -> None:
    report = await prune(ctx)
    if report.rows:
        log.info(
            "market data retention: %d ticks and %d bars deleted in %d statements",
            report.ticks,
            report.bars,
            report.batches,
        )
