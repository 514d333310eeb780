"""With EXEC_REDIS_URL, two processes (here: this test and a child Python process) draw from one
budget, and a pause one of them takes stops the other."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import pytest

from execution_service.exchanges.base import ExchangeBusy
from execution_service.exchanges.budget import Budgets, Priority, VenueLimits, Window, calling
from tests.budget.test_engine import REDIS_URL, _redis_up

CHILD = """
import asyncio, sys
from execution_service.exchanges.budget import Budgets, VenueLimits, Window

async def main() -> None:
    budgets = Budgets(redis_url=sys.argv[1])
    budget = budgets.get(sys.argv[2], None, VenueLimits(Window(10, 3600)))
    await budget.acquire(int(sys.argv[3]), order=True)
    if sys.argv[4] == "pause":
        await budget.pause(418, 3)
    await budgets.close()

asyncio.run(main())
"""


async def _child(venue: str, weight: int, then: str = "") -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, REDIS_URL, venue, str(weight), then or "-"
    )
    assert await proc.wait() == 0


async def test_two_processes_share_the_weight_and_the_pause() -> None:
    if not await _redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    venue = f"test-{uuid.uuid4().hex[:8]}"
    budgets = Budgets(redis_url=REDIS_URL)
    try:
        budget = budgets.get(venue, None, VenueLimits(Window(10, 3600)))
        await _child(venue, 8)  # the other process spent 8 of 10
        await budget.acquire(2, order=True)
        with calling(Priority.ENTRY, within=0.3), pytest.raises(ExchangeBusy):
            await budget.acquire(1, order=True)  # nothing left in this window, in any process

        other = f"{venue}-b"
        await _child(other, 1, "pause")  # the venue banned the other process's request
        started = time.monotonic()
        with calling(Priority.ENTRY, within=0.5), pytest.raises(ExchangeBusy):
            await budgets.get(other, None, VenueLimits(Window(10, 3600))).acquire(1, order=True)
        assert time.monotonic() - started < 0.4  # refused at once: the ban outlasts the deadline
        state = await budgets.get(other, None, VenueLimits(Window(10, 3600))).state()
        assert state["paused_until"] > time.time() + 1
    finally:
        await budgets.close()
