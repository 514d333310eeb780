"""What a request budget is made of: priorities, windows, a venue's limits, and the call context
(priority, send deadline) an adapter call runs under."""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum


class Priority(IntEnum):
    """Lower goes first when the budget is short."""

    EXIT = 0  # exits, protective stops, cancels
    ENTRY = 1  # new positions
    READ = 2  # reads on the order path (balances for sizing, order lookups, tickers)
    BACKGROUND = 3  # health checks, periodic balance reads


@dataclass(frozen=True)
class Window:
    """At most `limit` units per fixed window of `seconds` (windows start on multiples of it,
    as Binance's minute windows do)."""

    limit: int
    seconds: float  # not money
    # A request taken this close to the window's end counts in the next one too: it may reach
    # the venue after the venue's window turned. None: 1 s, or 1/20 of a shorter window.
    grace: float | None = None  # not money

    @property
    def grace_seconds(self) -> float:  # not money
        return self.grace if self.grace is not None else min(1.0, self.seconds / 20)


@dataclass(frozen=True)
class VenueLimits:
    """One (venue, egress) budget's shape: request weight per window, and order counts per
    account. Reads may use only `read_share` of the weight, background reads `background_share`:
    what is left is kept for orders, in every process alike."""

    weight: Window
    orders: tuple[Window, ...] = ()
    weight_header: str | None = None  # the venue's running count of our weight, read back
    # The venue's running counts of one account's orders, read back: header -> window seconds.
    order_headers: tuple[tuple[str, float], ...] = ()
    read_share: float = 0.8  # not money
    background_share: float = 0.5  # not money

    def cap(self, priority: Priority) -> int:
        share = {Priority.READ: self.read_share, Priority.BACKGROUND: self.background_share}
        return max(1, int(self.weight.limit * share.get(priority, 1.0)))


@dataclass(frozen=True)
class Call:
    priority: Priority
    deadline: float | None = None  # time.monotonic() by which the request must be sent


_CALL: contextvars.ContextVar[Call | None] = contextvars.ContextVar("budget_call", default=None)


def current_call() -> Call | None:
    return _CALL.get()


@contextlib.contextmanager
def calling(priority: Priority, within: float | None = None) -> Iterator[None]:
    """Run the enclosed exchange calls at `priority`; `within` seconds from now is their send
    deadline (an order that cannot go by then is refused unsent). An outer call's context (an
    exit's own reads) is kept when it ranks higher."""
    outer = _CALL.get()
    if outer is not None and outer.priority <= priority:
        yield
        return
    deadline = None if within is None else time.monotonic() + within
    token = _CALL.set(Call(priority, deadline))
    try:
        yield
    finally:
        _CALL.reset(token)


@contextlib.contextmanager
def soon(seconds: float, *, fallback: bool = False) -> Iterator[None]:
    """The enclosed calls must be sent within `seconds` (or by the outer deadline, if sooner),
    at the outer call's priority: for a read that has a fallback and should not queue.
    `fallback`: what the read would refresh is kept, so a read on the order path takes no more
    than the background share of the budget, leaving the rest to the orders it sizes (an exit's
    own read keeps its priority)."""
    outer = _CALL.get()
    deadline = time.monotonic() + seconds
    if outer is not None and outer.deadline is not None:
        deadline = min(deadline, outer.deadline)
    priority = outer.priority if outer else Priority.READ
    if fallback and priority >= Priority.READ:
        priority = Priority.BACKGROUND
    token = _CALL.set(Call(priority, deadline))
    try:
        yield
    finally:
        _CALL.reset(token)
