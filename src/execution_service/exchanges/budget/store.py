"""Where a budget's counts live: this process's memory, or Redis (shared by every process).

Both count the same way: a request of weight w fits a window if the window's count + w stays
within the limit; a request taken in the last `grace` seconds of a window counts in the next one
too (it may reach the venue after the venue's window rolled). A pause refuses everything until
its end. `take` is all-or-nothing over its windows and answers how long to wait (0: taken).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Slot:
    key: str  # the window's name (without its index)
    limit: int
    seconds: float  # not money
    units: int | None = None  # what one take counts here (order counts: 1); None: the weight
    grace: float = 0.0  # not money (see `Window.grace`)

    def cost(self, weight: int) -> int:
        """A request heavier than the whole window still goes, alone in a window."""
        return min(self.units if self.units is not None else weight, self.limit)


class Store(Protocol):
    async def take(self, pause_key: str, slots: Sequence[Slot], weight: int) -> float: ...

    async def pause(self, pause_key: str, until: float) -> None: ...

    async def paused_until(self, pause_key: str) -> float: ...

    async def floor(self, slot: Slot, used: int) -> None: ...

    async def used(self, slot: Slot) -> int: ...

    async def charge(self, slot: Slot, units: int) -> None:
        """Count `units` in `slot`'s current window, room or not (what the venue will count)."""
        ...

    def clock(self) -> float: ...


class MemoryStore:
    """One process's budget (no EXEC_REDIS_URL)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counts: dict[tuple[str, int], int] = {}
        self._pauses: dict[str, float] = {}
        self._spans: dict[str, float] = {}  # not money

    async def take(self, pause_key: str, slots: Sequence[Slot], weight: int) -> float:
        now = self._clock()
        paused = self._pauses.get(pause_key, 0.0)
        if paused > now:
            return paused - now
        charge: list[tuple[str, int, int]] = []
        for slot in slots:
            index = math.floor(now / slot.seconds)
            left = (index + 1) * slot.seconds - now
            indexes = [index, index + 1] if left < slot.grace else [index]
            for i in indexes:
                if self._counts.get((slot.key, i), 0) + slot.cost(weight) > slot.limit:
                    return left + 0.001
                charge.append((slot.key, i, slot.cost(weight)))
        for key, i, units in charge:
            self._counts[(key, i)] = self._counts.get((key, i), 0) + units
        for slot in slots:
            self._spans[slot.key] = slot.seconds
        if len(self._counts) > 10_000:
            self._drop_old(now)
        return 0.0

    def _drop_old(self, now: float) -> None:
        spans = self._spans
        self._counts = {
            k: v for k, v in self._counts.items() if (k[1] + 2) * spans.get(k[0], 86400) > now
        }

    async def pause(self, pause_key: str, until: float) -> None:
        self._pauses[pause_key] = max(until, self._pauses.get(pause_key, 0.0))

    async def paused_until(self, pause_key: str) -> float:
        until = self._pauses.get(pause_key, 0.0)
        return until if until > self._clock() else 0.0

    async def floor(self, slot: Slot, used: int) -> None:
        key = (slot.key, math.floor(self._clock() / slot.seconds))
        self._counts[key] = max(self._counts.get(key, 0), used)

    async def used(self, slot: Slot) -> int:
        return self._counts.get((slot.key, math.floor(self._clock() / slot.seconds)), 0)

    async def charge(self, slot: Slot, units: int) -> None:
        key = (slot.key, math.floor(self._clock() / slot.seconds))
        self._counts[key] = self._counts.get(key, 0) + units

    def clock(self) -> float:
        return self._clock()
