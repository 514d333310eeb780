"""Short-lived copies of exchange reads the per-order path would otherwise make every time.

- `Expiring`: one value (an account's balances) kept `ttl` seconds, and served up to `kept_for`
  seconds when the venue's request budget has no room for a fresh read (`get_or_kept`).
  Concurrent misses share one fetch; a value changed or forgotten while a fetch is in flight
  is not overwritten by that fetch's answer (it may predate our own order). While our orders
  are in flight the value is on hold: reads ask the exchange and keep nothing (its answer may
  or may not include a fill we are about to book), and the held copy comes back with those
  fills booked. `keep` takes a copy read elsewhere (`exchanges.kept`); `on_load` hears of
  every value the cache takes as its copy (never an answer it discards), with the read's age.
- `TickerBook`: last prices per symbol of one venue, shared by every client of that venue.
- `SharedMarkets`: one venue's loaded markets, so N accounts on it load them once.
- `balances_after_fill`: what our own fill does to a cached balance (pure).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

from execution_service.enums import Direction
from execution_service.exchanges.base import BalanceEntry, ExchangeBusy, Market, Ticker
from execution_service.exchanges.budget.model import soon

T = TypeVar("T")
Clock = Callable[[], float]
log = logging.getLogger(__name__)


# How long a read that has a kept copy to fall back on may wait for the venue's request budget.
KEPT_WAIT_SECONDS = 0.05  # not money


class Expiring(Generic[T]):
    def __init__(
        self,
        ttl: float,
        clock: Clock = time.monotonic,
        kept_for: float = 0,
        on_load: Callable[[T, float], None] | None = None,
    ) -> None:
        self.ttl = ttl
        self.kept_for = kept_for  # not money (see `get_or_kept`)
        self._clock = clock
        self._on_load = on_load  # (value, seconds since its read left): `exchanges.kept`
        self._value: T | None = None
        self._at = 0.0
        self._generation = 0
        self._loading: asyncio.Future[T] | None = None
        self._holds = 0
        self._held: T | None = None
        self._held_at = 0.0

    def peek(self) -> T | None:
        if self._value is not None and self._clock() - self._at < self.ttl:
            return self._value
        return None

    async def get(self, load: Callable[[], Awaitable[T]]) -> T:
        if self.ttl <= 0:
            generation, started = self._generation, self._clock()
            loaded = await load()
            if generation == self._generation and not self._holds:  # nothing of ours since
                self._loaded(loaded, started)
            return loaded
        value = self.peek()
        if value is not None:
            return value
        if self._loading is None:
            # A task of its own, so a caller cancelled while waiting never cancels the others'.
            generation, started = self._generation, self._clock()
            task = asyncio.ensure_future(load())
            self._loading = task

            def done(t: asyncio.Future[T]) -> None:
                if self._loading is t:
                    self._loading = None
                if t.cancelled() or t.exception() is not None:
                    return
                if generation == self._generation and not self._holds:  # nothing of ours since
                    self._value, self._at = t.result(), started
                    self._loaded(t.result(), started)

            task.add_done_callback(done)
        return await asyncio.shield(self._loading)

    async def get_or_kept(self, load: Callable[[], Awaitable[T]]) -> T:
        """`get`; but when the copy has expired and the venue's request budget has no room for a
        fresh read at once, the copy itself if it is at most `kept_for` seconds old (our own
        fills since booked in). Under a short budget, sizing from a minute-old balance beats
        refusing the order; the venue still refuses what the account cannot pay."""
        value, age = self._value, self._clock() - self._at
        if value is None or age >= self.kept_for or self.ttl <= 0 or self.peek() is not None:
            return await self.get(load)
        try:
            with soon(KEPT_WAIT_SECONDS, fallback=True):
                return await self.get(load)
        except ExchangeBusy:
            return value

    async def refresh(self, load: Callable[[], Awaitable[T]]) -> T:
        """A read now, whatever the copy's age (a health check). The copy is replaced by its
        answer, not dropped before it: if the read fails, the copy stays the kept fallback."""
        generation, started = self._generation, self._clock()
        value = await load()
        if generation == self._generation and not self._holds:  # nothing of ours since
            self._value, self._at = value, started
            self._loaded(value, started)
        return value

    def keep(self, value: T, age: float) -> None:
        """A copy read `age` seconds ago elsewhere (another process, before a restart): ours
        until a newer one is read. Not while an order of ours is in flight."""
        if self._holds or self._loading is not None:
            return
        at = self._clock() - age
        if self._value is None or self._at < at:
            self._value, self._at = value, at

    def _loaded(self, value: T, started: float) -> None:
        """A value taken as the copy: told with its age (from when its read left, so our orders
        that executed after that are seen as later than it)."""
        if self._on_load is not None:
            try:
                self._on_load(value, self._clock() - started)
            except Exception:  # the hook's failure is its own; the value is still the answer
                log.exception("on_load hook failed")

    def forget(self) -> None:
        # A fetch in flight may have been answered before our order: later callers start anew.
        self._generation += 1
        self._value = None
        self._held = None
        self._loading = None

    def hold(self) -> None:
        """An order of ours is about to be sent."""
        if self._holds == 0:
            # Held whatever its age: past the TTL it is still the kept fallback (`get_or_kept`),
            # and our fill must be booked into it, not drop it.
            self._held, self._held_at = self._value, self._at
        self._holds += 1
        self._generation += 1
        self._value = None
        self._loading = None

    def release(self, change: Callable[[T], T | None] | None) -> None:
        """That order is answered: book it into the held copy (None: its effect is unknown, drop
        the copy). The copy is served again once no order of ours is in flight."""
        held = self._held
        self._held = change(held) if held is not None and change is not None else None
        self._holds -= 1
        self._generation += 1
        if self._holds == 0 and self._held is not None:
            self._value, self._at, self._held = self._held, self._held_at, None


class TickerBook:
    def __init__(self, ttl: float, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._prices: dict[str, tuple[Ticker, float]] = {}
        self._inflight: dict[tuple[str, ...], asyncio.Future[Any]] = {}  # (kind, *symbols)

    def get(self, symbol: str) -> Ticker | None:
        hit = self._prices.get(symbol)
        if hit is not None and self._clock() - hit[1] < self.ttl:
            return hit[0]
        return None

    async def once(
        self,
        symbols: list[str],
        read: Callable[[Callable[[], Awaitable[T]]], Awaitable[T]],
        call: Callable[[], Awaitable[T]],
        kind: str = "tickers",
    ) -> T:
        """`read(call)`, unless a client of the venue is already asking for the same symbols
        (the same `kind` of call): then its answer. The monitor asks every account's tickers at
        once; the venue is asked once (public data, the same for every account) and the weight
        is spent once."""
        key = (kind, *symbols)
        task = self._inflight.get(key)
        if task is None:
            task = self._inflight[key] = asyncio.ensure_future(read(call))
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        result: T = await asyncio.shield(task)
        return result

    def put(self, tickers: dict[str, Ticker]) -> None:
        if self.ttl > 0:
            at = self._clock()
            self._prices.update((symbol, (t, at)) for symbol, t in tickers.items())


@dataclass
class SharedMarkets:
    """One venue's markets: `source` is the ccxt client that loaded them (others copy its
    tables with ccxt's `set_markets_from_exchange`), `markets` our parsed copy."""

    source: Any = None
    markets: dict[str, Market] = field(default_factory=dict)
    loaded_at: float | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def balances_after_fill(
    balances: dict[str, BalanceEntry],
    *,
    base: str,
    quote: str,
    side: str,
    filled: Decimal,
    cost: Decimal,
    fee: Decimal,
    fee_currency: str | None,
) -> dict[str, BalanceEntry] | None:
    """The balances once our filled order is booked: a buy pays `cost` quote for `filled` base,
    a sell the reverse, the fee comes off its currency. None when the result cannot be known
    (a fee in a currency we hold no entry for, or an estimate gone negative): fetch again."""
    sign = Decimal(1) if side == Direction.buy else Decimal(-1)
    deltas: dict[str, Decimal] = {base: sign * filled}
    deltas[quote] = deltas.get(quote, Decimal(0)) - sign * cost
    if fee:
        if fee_currency is None or (fee_currency not in balances and fee_currency not in deltas):
            return None
        deltas[fee_currency] = deltas.get(fee_currency, Decimal(0)) - fee
    out = dict(balances)
    for currency, delta in deltas.items():
        entry = out.get(currency, BalanceEntry(Decimal(0), Decimal(0), Decimal(0)))
        free, total = entry.free + delta, entry.total + delta
        if free < 0 or total < 0:
            return None
        out[currency] = BalanceEntry(free=free, used=entry.used, total=total)
    return out
