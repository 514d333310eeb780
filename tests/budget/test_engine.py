"""The budget engine on its own: idle adds no wait, priorities and arrival order when short,
deadlines refuse unsent, pauses stop everyone; the same in memory and in Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from execution_service.exchanges.base import ExchangeBusy
from execution_service.exchanges.budget import (
    Budgets,
    MemoryStore,
    Priority,
    VenueLimits,
    Window,
    calling,
    soon,
)
from execution_service.exchanges.budget.store import Slot, Store

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _redis_up() -> bool:
    try:
        from redis.asyncio import Redis

        client = Redis.from_url(REDIS_URL)
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()
    except Exception:
        return False


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if not await _redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    from execution_service.exchanges.budget.redis_store import RedisStore

    redis_store = RedisStore(REDIS_URL)
    yield redis_store
    await redis_store.close()


def _venue() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"  # fresh keys in a shared Redis


async def test_take_is_all_or_nothing_and_counts(store: Store) -> None:
    name = _venue()
    a, b = Slot(f"{name}:a", 10, 60, grace=1.0), Slot(f"{name}:b", 3, 60, grace=1.0)
    assert await store.take(f"{name}:pause", [a, b], 3) == 0
    assert await store.take(f"{name}:pause", [a, b], 1) > 0  # b is full: a is not charged
    assert await store.used(a) in (3, 6)  # (6: taken in a window's last second, counted twice)
    await store.floor(a, 9)
    assert await store.used(a) >= 9
    await store.pause(f"{name}:pause", time.time() + 5)
    assert 4 < await store.take(f"{name}:pause", [a], 1) <= 5
    assert await store.paused_until(f"{name}:pause") > time.time()


@pytest.mark.parametrize(
    ("taken_at", "grace", "next_window_used"),
    [
        (59.7, 0.5, 4),  # within the grace: it may reach the venue in the next window
        (59.4, 0.5, 0),  # before it: this window only
        (59.7, 0.0, 0),  # no grace at all
        (30.0, 1.0, 0),
    ],
)
async def test_a_request_taken_at_a_window_end_counts_in_the_next_one_too(
    taken_at: float, grace: float, next_window_used: int
) -> None:
    now = [taken_at]
    store = MemoryStore(clock=lambda: now[0])
    slot = Slot("w", 10, 60, grace=grace)
    assert await store.take("p", [slot], 4) == 0
    assert await store.used(slot) == 4
    now[0] = 60.1
    assert await store.used(slot) == next_window_used


async def test_a_request_unanswered_at_a_window_turn_counts_in_the_new_window_too() -> None:
    """Taken in window 0, still in flight when window 1 starts: the venue may count it in
    window 1, so the budget does too (once), and no longer once it is answered."""
    now = [1.0]
    store = MemoryStore(clock=lambda: now[0])
    budget = Budgets(store).get(_venue(), None, VenueLimits(Window(10, 2, grace=0)))
    slow = await budget.acquire(4)  # in flight across the turn
    quick = await budget.acquire(3)
    budget.landed(quick)
    now[0] = 2.5
    await budget.acquire(1)
    assert await store.used(budget.weight_slot(Priority.EXIT)) == 4 + 1
    budget.landed(slow)
    now[0] = 4.5
    await budget.acquire(1)
    assert await store.used(budget.weight_slot(Priority.EXIT)) == 1 + 1  # the 1 above still flies


def test_a_window_grace_defaults_to_a_second_or_a_twentieth() -> None:
    assert Window(6000, 60).grace_seconds == 1.0
    assert Window(100, 2).grace_seconds == 0.1
    assert Window(100, 2, grace=0.5).grace_seconds == 0.5


async def test_idle_budget_adds_no_wait(store: Store) -> None:
    budget = Budgets(store).get(_venue(), None, VenueLimits(Window(1000, 60)))
    started = time.perf_counter()
    for _ in range(50):
        await budget.acquire(1, order=True, account="a")
    # 50 acquisitions: each is one store call (no spacing); generous for a loaded machine.
    assert time.perf_counter() - started < 1.0


async def test_short_budget_serves_exits_then_entries_then_reads_oldest_first(
    store: Store,
) -> None:
    budget = Budgets(store).get(_venue(), None, VenueLimits(Window(5, 2), read_share=1.0))
    for _ in range(5):
        budget.landed(await budget.acquire(1))  # the window is now full
    served: list[str] = []

    async def one(name: str, priority: Priority) -> None:
        with calling(priority, within=10):
            budget.landed(await budget.acquire(1))  # answered at once
        served.append(name)

    tasks = []
    for name, priority in [
        ("read1", Priority.READ),
        ("entry1", Priority.ENTRY),
        ("exit1", Priority.EXIT),
        ("entry2", Priority.ENTRY),
        ("read2", Priority.READ),
    ]:
        tasks.append(asyncio.create_task(one(name, priority)))
        await asyncio.sleep(0.01)
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert served == ["exit1", "entry1", "entry2", "read1", "read2"]


async def test_an_order_that_cannot_go_before_its_deadline_is_refused_unsent(
    store: Store,
) -> None:
    budget = Budgets(store).get(_venue(), None, VenueLimits(Window(2, 30)))
    await budget.acquire(2, order=True)
    started = time.monotonic()
    with calling(Priority.ENTRY, within=0.5), pytest.raises(ExchangeBusy):
        await budget.acquire(1, order=True, account="a")
    assert time.monotonic() - started < 0.4  # the next room is 30 s away: refused at once


async def test_a_pause_stops_every_account_until_it_ends(store: Store) -> None:
    budgets = Budgets(store)
    budget = budgets.get(_venue(), None, VenueLimits(Window(1000, 60)))
    await budget.pause(418, 1.0)
    started = time.monotonic()
    await asyncio.gather(*(budget.acquire(1, account=str(i), order=True) for i in range(5)))
    assert time.monotonic() - started >= 0.9
    state = await budget.state()
    assert state["limit"] == 1000


async def test_reads_keep_room_for_orders(store: Store) -> None:
    budget = Budgets(store).get(_venue(), None, VenueLimits(Window(10, 30), read_share=0.5))
    for _ in range(5):
        await budget.acquire(1)
    with calling(Priority.READ, within=0.2), pytest.raises(ExchangeBusy):
        await budget.acquire(1)
    await budget.acquire(1, order=True, account="a")  # orders still have the other half


@pytest.mark.parametrize(
    ("outer", "fallback", "room"),
    [
        (None, False, 8),  # a read: the read share
        (None, True, 5),  # a read with a kept copy to fall back on: the background share
        (Priority.READ, True, 5),
        (Priority.EXIT, True, 10),  # an exit's own read keeps the exit's priority
    ],
)
async def test_a_read_with_a_fallback_leaves_the_orders_their_room(
    store: Store, outer: Priority | None, fallback: bool, room: int
) -> None:
    """A fan-out sizes every account before its orders go: reads that have a kept copy must not
    take the room those orders need."""
    limits = VenueLimits(Window(10, 30), read_share=0.8, background_share=0.5)
    budget = Budgets(store).get(_venue(), None, limits)
    taken = 0
    with contextlib.ExitStack() as stack:
        if outer is not None:
            stack.enter_context(calling(outer))
        stack.enter_context(soon(0.05, fallback=fallback))
        with contextlib.suppress(ExchangeBusy):
            for _ in range(11):
                await budget.acquire(1)
                taken += 1
    assert taken == room


async def test_two_processes_share_one_redis_budget() -> None:
    """Two `Budgets` (as two processes have) on one Redis draw from the same counts."""
    if not await _redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    from execution_service.exchanges.budget.redis_store import RedisStore

    one, two = RedisStore(REDIS_URL), RedisStore(REDIS_URL)
    try:
        name, limits = _venue(), VenueLimits(Window(4, 30))
        a, b = Budgets(one).get(name, None, limits), Budgets(two).get(name, None, limits)
        await a.acquire(2, order=True)
        await b.acquire(2, order=True)
        with calling(Priority.ENTRY, within=0.2), pytest.raises(ExchangeBusy):
            await a.acquire(1)
        await b.pause(429, 2)  # the venue told process two: process one stops too
        assert await a.store.paused_until(a.pause_key) > time.time()
    finally:
        await one.close()
        await two.close()
