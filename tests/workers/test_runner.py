"""The runner: loops tick on their interval, early when woken, and stop after the tick in hand."""

from __future__ import annotations

import asyncio
import time

from execution_service.context import AppContext
from execution_service.workers.runner import Loop, WorkerRunner


async def test_a_woken_loop_ticks_at_once_and_stop_waits_for_the_tick(ctx: AppContext) -> None:
    ticks: list[float] = []
    wake = asyncio.Event()
    finished: list[bool] = []

    async def tick(_: AppContext) -> None:
        ticks.append(time.monotonic())
        await asyncio.sleep(0.05)
        finished.append(True)

    runner = WorkerRunner(ctx, [Loop("test_loop", 3600, tick, wake)])
    await runner.start()
    await asyncio.sleep(0.2)
    assert len(ticks) == 1  # the first tick runs at start; the next is an hour away
    woken = time.monotonic()
    wake.set()
    await asyncio.sleep(0.2)
    assert len(ticks) == 2 and ticks[1] - woken < 0.1
    wake.set()
    await asyncio.sleep(0.01)  # the third tick is under way
    await runner.stop()
    assert len(finished) == len(ticks) == 3  # stop let it finish
