"""One (venue, egress) request budget as this process sees it: the requests of every account on
it queue here by (priority, arrival); the head asks the store (memory or Redis) for room.

An idle budget adds no wait: with nobody queued and room in every window, `acquire` is one store
call. When short, exits go before entries, entries before reads, reads before background reads,
and the oldest first within a priority. A request that cannot go before its send deadline is
refused unsent (`ExchangeBusy`). A 429/418 pauses the budget for every account in every process
sharing the store, until the time the venue gave."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from execution_service import metrics
from execution_service.exchanges.base import ExchangeBusy
from execution_service.exchanges.budget.model import Priority, VenueLimits, current_call
from execution_service.exchanges.budget.store import Slot, Store

log = logging.getLogger("execution_service.budget")

# A read or background read with no deadline of its own waits at most this long for the budget.
READ_WAIT_SECONDS = 30.0  # not money
BACKGROUND_WAIT_SECONDS = 120.0  # not money


class VenueBudget:
    def __init__(
        self, store: Store, venue: str, egress: str, limits: VenueLimits, prefix: str = "budget"
    ) -> None:
        self.store, self.venue, self.egress, self.limits = store, venue, egress, limits
        self._base = f"{prefix}:{venue}:{egress}"
        self.pause_key = f"{self._base}:pause"
        self._queue: list[tuple[int, int]] = []
        self._seq = itertools.count()
        self._tickets = itertools.count()
        self._flying: dict[int, list[int]] = {}  # ticket -> [weight, last window counted in]
        self._turns: dict[tuple[int, int], asyncio.Event] = {}  # each waiter's own wake-up
        self.paused_until = 0.0  # what this process last saw (for readiness and metrics)
        # Told of each new pause (the app and the worker record it as a `venue.paused` event).
        self.on_pause: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        metrics.BUDGET_LIMIT.labels(venue, egress).set(limits.weight.limit)

    def weight_slot(self, priority: Priority) -> Slot:
        w = self.limits.weight
        return Slot(
            f"{self._base}:weight", self.limits.cap(priority), w.seconds, None, w.grace_seconds
        )

    def order_slots(self, account: str) -> list[Slot]:
        return [
            Slot(
                f"{self._base}:orders:{account}:{w.seconds}",
                w.limit,
                w.seconds,
                units=1,
                grace=w.grace_seconds,
            )
            for w in self.limits.orders
        ]

    async def acquire(self, weight: int, *, account: str | None = None, order: bool = False) -> int:
        """Wait for room for a request of `weight`; returns its ticket for `landed`."""
        call = current_call()
        priority = call.priority if call else (Priority.ENTRY if order else Priority.READ)
        deadline = call.deadline if call else None
        if deadline is None and priority >= Priority.READ:
            wait = READ_WAIT_SECONDS if priority == Priority.READ else BACKGROUND_WAIT_SECONDS
            deadline = time.monotonic() + wait
        slots = [self.weight_slot(priority)]
        if order and account is not None:
            slots += self.order_slots(account)
        started = time.monotonic()
        await self._carry()
        if not self._queue and await self.store.take(self.pause_key, slots, weight) == 0:
            metrics.BUDGET_WAIT.labels(priority.name.lower()).observe(0)
            return self._flew(weight)
        await self._wait_turn(priority, slots, weight, deadline)
        metrics.BUDGET_WAIT.labels(priority.name.lower()).observe(time.monotonic() - started)
        return self._flew(weight)

    # A request is counted in the window it was taken in, but reaches the venue later: after
    # signing and connecting, on a loop that may be busy with a thousand others. One still
    # unanswered when a new window starts may be counted by the venue in that one, so it is
    # counted there too (once per window it spans), before anything else is taken in it.

    def _index(self) -> int:
        w = self.limits.weight
        now = self.store.clock()
        index = math.floor(now / w.seconds)
        # Taken within the grace, it was counted in the next window too already.
        return index + 1 if (index + 1) * w.seconds - now < w.grace_seconds else index

    def _flew(self, weight: int) -> int:
        ticket = next(self._tickets)
        self._flying[ticket] = [weight, self._index()]
        return ticket

    def landed(self, ticket: int) -> None:
        """The request was answered (or failed): the venue has counted it, wherever it did."""
        self._flying.pop(ticket, None)

    async def _carry(self) -> None:
        if not self._flying:
            return
        now = math.floor(self.store.clock() / self.limits.weight.seconds)
        due = [f for f in self._flying.values() if f[1] < now]
        if due:
            for f in due:
                f[1] = now
            await self.store.charge(self.weight_slot(Priority.EXIT), sum(f[0] for f in due))

    async def _wait_turn(
        self, priority: Priority, slots: Sequence[Slot], weight: int, deadline: float | None
    ) -> None:
        me = (int(priority), next(self._seq))
        turn = self._turns[me] = asyncio.Event()
        heapq.heappush(self._queue, me)
        try:
            while True:
                turn.clear()  # before looking: a wake from here on is not lost
                left = None if deadline is None else deadline - time.monotonic()
                if self._queue[0] == me:
                    await self._carry()
                    wait = await self.store.take(self.pause_key, slots, weight)
                    if wait == 0:
                        return
                    if left is not None and wait >= left:
                        raise self._busy(wait)
                    await self._sleep(turn, wait)
                else:
                    if left is not None and left <= 0:
                        raise self._busy(0)
                    await self._sleep(turn, left)
        finally:
            self._queue.remove(me)
            heapq.heapify(self._queue)
            del self._turns[me]
            self._wake()

    @staticmethod
    async def _sleep(turn: asyncio.Event, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(turn.wait(), seconds)

    def _wake(self) -> None:
        """Only the head of the queue takes, so only it is woken: waking every waiter on every
        change made a fan-out to N accounts cost N x N wake-ups."""
        if self._queue:
            self._turns[self._queue[0]].set()

    def _busy(self, wait: float) -> ExchangeBusy:
        return ExchangeBusy(
            f"the {self.venue} request budget has no room before this request's deadline "
            f"(next room in {wait:.1f} s): not sent",
            retry_after=max(wait, 1.0),
        )

    async def pause(self, status: int, retry_after: float | None) -> None:
        """The venue said stop (429 with Retry-After, or a 418 ban) until now + retry_after."""
        seconds = retry_after if retry_after is not None else (120.0 if status == 418 else 60.0)
        until = time.time() + seconds
        new = until > self.paused_until + 1  # not another answer of a pause already taken
        await self.store.pause(self.pause_key, until)
        self.paused_until = max(self.paused_until, until)
        metrics.BUDGET_PAUSES.labels(self.venue, self.egress, str(status)).inc()
        metrics.BUDGET_PAUSED_UNTIL.labels(self.venue, self.egress).set(self.paused_until)
        log.warning(
            "budget_paused",
            extra={"venue": self.venue, "egress": self.egress, "status": status, "until": until},
        )
        self._wake()
        if new and self.on_pause is not None:
            pause = {"venue": self.venue, "egress": self.egress, "status": status, "until": until}
            try:
                await self.on_pause(pause)
            except Exception:  # the pause holds whether or not it could be announced
                log.exception("budget_pause_not_announced")

    async def report_used(self, used: int) -> None:
        """The venue's own count of our weight in its current window (a response header)."""
        await self.store.floor(self.weight_slot(Priority.EXIT), used)
        metrics.BUDGET_USED.labels(self.venue, self.egress).set(used)

    async def report_orders(self, account: str, seconds: float, count: int) -> None:
        """The venue's own count of one account's orders in its window of `seconds`."""
        for slot in self.order_slots(account):
            if slot.seconds == seconds:
                await self.store.floor(slot, count)

    async def state(self) -> dict[str, float]:
        used = await self.store.used(self.weight_slot(Priority.EXIT))
        self.paused_until = await self.store.paused_until(self.pause_key)
        metrics.BUDGET_USED.labels(self.venue, self.egress).set(used)
        metrics.BUDGET_PAUSED_UNTIL.labels(self.venue, self.egress).set(self.paused_until)
        return {
            "used": used,
            "limit": self.limits.weight.limit,
            "paused_until": self.paused_until,
        }
