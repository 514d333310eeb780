"""The exchange-read caches as pure pieces: expiry, single flight, our own changes, fill booking."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest

from execution_service.exchanges.base import (
    BalanceEntry,
    ExchangeBusy,
    Market,
    OrderResult,
    Ticker,
)
from execution_service.exchanges.cache import Expiring, TickerBook, balances_after_fill
from execution_service.exchanges.ccxt.parsing import booking as _booking


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """Answers 1, 2, 3, ... and counts its calls; `gate` holds answers until set."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self) -> int:
        self.calls += 1
        n = self.calls
        await self.gate.wait()
        return n


async def test_value_is_reused_until_its_ttl_then_fetched_again() -> None:
    clock, load = Clock(), Loader()
    cache: Expiring[int] = Expiring(5, clock)
    assert await cache.get(load) == 1
    clock.now += 4.9
    assert await cache.get(load) == 1 and load.calls == 1
    clock.now += 0.1
    assert await cache.get(load) == 2 and load.calls == 2


async def test_ttl_zero_fetches_every_time() -> None:
    load = Loader()
    cache: Expiring[int] = Expiring(0)
    assert [await cache.get(load) for _ in range(3)] == [1, 2, 3]
    assert cache.peek() is None


async def test_concurrent_misses_share_one_fetch() -> None:
    load = Loader()
    load.gate.clear()
    cache: Expiring[int] = Expiring(5)
    waiting = [asyncio.ensure_future(cache.get(load)) for _ in range(5)]
    await asyncio.sleep(0)
    load.gate.set()
    assert await asyncio.gather(*waiting) == [1] * 5 and load.calls == 1


async def test_a_failed_fetch_is_not_kept_and_reaches_every_waiter() -> None:
    cache: Expiring[int] = Expiring(5)

    async def failing() -> int:
        await asyncio.sleep(0)
        raise RuntimeError("down")

    results = await asyncio.gather(cache.get(failing), cache.get(failing), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert cache.peek() is None


async def test_a_cancelled_waiter_does_not_cancel_the_fetch_for_others() -> None:
    load = Loader()
    load.gate.clear()
    cache: Expiring[int] = Expiring(5)
    first = asyncio.ensure_future(cache.get(load))
    second = asyncio.ensure_future(cache.get(load))
    await asyncio.sleep(0)
    first.cancel()
    load.gate.set()
    assert await second == 1 and cache.peek() == 1


async def test_forget_makes_the_next_read_fetch() -> None:
    load = Loader()
    cache: Expiring[int] = Expiring(5)
    await cache.get(load)
    cache.forget()
    assert await cache.get(load) == 2


async def test_an_answer_in_flight_across_our_own_change_is_not_kept() -> None:
    """The fetch may have been answered before our order filled: its value must not replace the
    booked one, and later readers must not join it."""
    load = Loader()
    cache: Expiring[int] = Expiring(5)
    await cache.get(load)  # 1 cached
    cache.forget()
    load.gate.clear()
    before_fill = asyncio.ensure_future(cache.get(load))  # fetch 2 in flight
    await asyncio.sleep(0)
    cache.forget()  # our order: whatever fetch 2 answers may predate it
    after_fill = asyncio.ensure_future(cache.get(load))  # must not join fetch 2
    await asyncio.sleep(0)
    load.gate.set()
    assert (await before_fill, await after_fill) == (2, 3)
    assert cache.peek() == 3


async def test_held_during_our_order_then_served_with_the_fill_booked() -> None:
    clock, load = Clock(), Loader()
    cache: Expiring[int] = Expiring(5, clock)
    await cache.get(load)  # 1
    cache.hold()
    assert cache.peek() is None
    assert await cache.get(load) == 2  # a read meanwhile asks ...
    assert cache.peek() is None  # ... and keeps nothing: it may already show the fill
    clock.now += 3
    cache.release(lambda v: v + 10)
    assert cache.peek() == 11
    clock.now += 2  # as old as the fetch it was booked into
    assert cache.peek() is None


async def test_overlapping_orders_book_both_before_the_copy_is_served() -> None:
    load = Loader()
    cache: Expiring[int] = Expiring(5)
    await cache.get(load)  # 1
    cache.hold()
    cache.hold()
    cache.release(lambda v: v + 10)
    assert cache.peek() is None  # the other order is still in flight
    cache.release(lambda v: v + 100)
    assert cache.peek() == 111


@pytest.mark.parametrize("how", ["unknown outcome", "booking refused", "forgotten meanwhile"])
async def test_an_order_we_cannot_book_drops_the_copy(how: str) -> None:
    load = Loader()
    cache: Expiring[int] = Expiring(5)
    await cache.get(load)
    cache.hold()
    if how == "unknown outcome":
        cache.release(None)
    elif how == "booking refused":
        cache.release(lambda v: None)
    else:
        cache.forget()  # e.g. a cancel while the order flies
        cache.release(lambda v: v + 10)
    assert cache.peek() is None
    assert await cache.get(load) == 2


async def test_a_fetch_started_before_our_order_is_not_kept() -> None:
    load = Loader()
    cache: Expiring[int] = Expiring(5)
    load.gate.clear()
    before = asyncio.ensure_future(cache.get(load))
    await asyncio.sleep(0)
    cache.hold()
    load.gate.set()
    assert await before == 1
    cache.release(lambda v: v + 10)
    assert cache.peek() is None  # nothing was held: the next read asks
    assert await cache.get(load) == 2


@pytest.mark.parametrize(
    ("age", "kept_for", "budget_short", "expected"),
    [
        (3, 300, True, 1),  # still fresh: no read at all
        (10, 300, False, 2),  # expired, the budget has room: a fresh read
        (10, 300, True, 1),  # expired, no room at once: the kept copy
        (299, 300, True, 1),
        (301, 300, True, "busy"),  # too old to stand in: the refusal stands
        (10, 0, True, "busy"),  # nothing is kept beyond the ttl
    ],
)
async def test_a_kept_copy_stands_in_when_the_budget_has_no_room(
    age: float, kept_for: float, budget_short: bool, expected: int | str
) -> None:
    clock, load = Clock(), Loader()
    cache: Expiring[int] = Expiring(5, clock, kept_for=kept_for)
    assert await cache.get_or_kept(load) == 1
    clock.now += age

    async def read() -> int:
        if budget_short:
            raise ExchangeBusy("the request budget has no room before this request's deadline")
        return await load()

    if expected == "busy":
        with pytest.raises(ExchangeBusy):
            await cache.get_or_kept(read)
    else:
        assert await cache.get_or_kept(read) == expected


async def test_a_kept_copy_is_not_served_while_our_order_is_in_flight() -> None:
    clock, load = Clock(), Loader()
    cache: Expiring[int] = Expiring(5, clock, kept_for=300)
    await cache.get_or_kept(load)
    clock.now += 10
    cache.hold()  # its fill may or may not be in the copy: no copy until it is booked

    async def busy() -> int:
        raise ExchangeBusy("no room")

    with pytest.raises(ExchangeBusy):
        await cache.get_or_kept(busy)


async def test_an_expired_copy_held_across_our_order_comes_back_with_the_fill_booked() -> None:
    """Past its TTL the copy is still the kept fallback: our order books its fill into it rather
    than dropping it (a fan-out's accounts would each need a fresh read after their order)."""
    clock, load = Clock(), Loader()
    cache: Expiring[int] = Expiring(5, clock, kept_for=300)
    await cache.get_or_kept(load)
    clock.now += 10
    cache.hold()
    cache.release(lambda v: v + 10)
    assert cache.peek() is None  # not fresh

    async def busy() -> int:
        raise ExchangeBusy("no room")

    assert await cache.get_or_kept(busy) == 11  # kept, with the fill


@pytest.mark.parametrize(
    ("ours_age", "kept_age", "expected"),
    [
        (None, 60, 7),  # nothing of ours: the kept copy
        (120, 60, 7),  # ours is older: the kept copy replaces it
        (30, 60, 1),  # ours is newer: kept
        (None, 400, "busy"),  # older than kept_for: never stands in
    ],
)
async def test_a_copy_read_elsewhere_is_kept_unless_ours_is_newer(
    ours_age: float | None, kept_age: float, expected: int | str
) -> None:
    clock, load = Clock(), Loader()
    cache: Expiring[int] = Expiring(5, clock, kept_for=300)
    if ours_age is not None:
        await cache.get(load)
        clock.now += ours_age
    cache.keep(7, kept_age)

    async def busy() -> int:
        raise ExchangeBusy("no room")

    if expected == "busy":
        with pytest.raises(ExchangeBusy):
            await cache.get_or_kept(busy)
    else:
        assert await cache.get_or_kept(busy) == expected


async def test_a_copy_read_elsewhere_is_not_taken_while_our_order_is_in_flight() -> None:
    cache: Expiring[int] = Expiring(5, Clock(), kept_for=300)
    cache.hold()
    cache.keep(7, 1)
    cache.release(None)
    assert cache.peek() is None


async def test_every_value_loaded_is_told_and_a_failing_hook_changes_nothing() -> None:
    told: list[int] = []

    def tell(value: int, _age: float) -> None:
        told.append(value)

    cache: Expiring[int] = Expiring(5, Clock(), on_load=tell)
    assert await cache.get(Loader()) == 1
    uncached: Expiring[int] = Expiring(0, Clock(), on_load=tell)
    assert await uncached.get(Loader()) == 1
    assert told == [1, 1]

    def broken(_: int, _age: float) -> None:
        raise RuntimeError("hook")

    failing: Expiring[int] = Expiring(5, Clock(), on_load=broken)
    assert await failing.get(Loader()) == 1


@pytest.mark.parametrize("ttl", [5, 0])
async def test_an_answer_across_our_order_is_not_told_and_the_age_counts_from_the_send(
    ttl: float,
) -> None:
    """The hook keeps balances for other processes: an answer that may predate our own fill is
    not one to keep, and a kept one's age runs from when its read left, not when it came."""
    clock, load = Clock(), Loader()
    told: list[tuple[int, float]] = []
    cache: Expiring[int] = Expiring(ttl, clock, on_load=lambda v, age: told.append((v, age)))

    async def slow() -> int:
        clock.now += 2  # the venue answers two seconds after the read left
        return await load()

    await cache.get(slow)
    assert told == [(1, 2)]
    clock.now += 10  # expired: the next get reads
    load.gate.clear()
    before = asyncio.ensure_future(cache.get(load))
    await asyncio.sleep(0)
    cache.hold()  # our order goes while that read is in flight
    load.gate.set()
    await before
    cache.release(None)
    assert told == [(1, 2)]


async def test_a_refresh_asks_now_and_a_failed_one_leaves_the_copy_kept() -> None:
    clock, load = Clock(), Loader()
    cache: Expiring[int] = Expiring(5, clock, kept_for=300)
    assert await cache.get(load) == 1
    assert await cache.refresh(load) == 2  # fresh as it was: asked anyway
    assert cache.peek() == 2
    clock.now += 10

    async def busy() -> int:
        raise ExchangeBusy("no room")

    with pytest.raises(ExchangeBusy):
        await cache.refresh(busy)
    assert await cache.get_or_kept(busy) == 2  # still the kept fallback

    cache.hold()  # an order of ours in flight: the answer may predate its fill
    assert await cache.refresh(load) == 3
    cache.release(lambda v: v + 10)
    assert await cache.get_or_kept(busy) == 12  # the held copy, with the fill booked


def test_ticker_book_expires_and_ttl_zero_keeps_nothing() -> None:
    clock = Clock()
    book = TickerBook(1, clock)
    ticker = Ticker("BTC/USDT", D("50000"))
    book.put({"BTC/USDT": ticker})
    assert book.get("BTC/USDT") is ticker and book.get("ETH/USDT") is None
    clock.now += 1
    assert book.get("BTC/USDT") is None
    off = TickerBook(0, clock)
    off.put({"BTC/USDT": ticker})
    assert off.get("BTC/USDT") is None


def _b(free: str, used: str = "0") -> BalanceEntry:
    return BalanceEntry(D(free), D(used), D(free) + D(used))


START = {"USDT": _b("10000", "50"), "BTC": _b("1"), "BNB": _b("2")}


@pytest.mark.parametrize(
    ("side", "filled", "cost", "fee", "fee_currency", "expected"),
    [
        # a buy pays quote, receives base, Binance's fee off the base received
        (
            "buy",
            "0.002",
            "100",
            "0.000002",
            "BTC",
            {"USDT": _b("9900", "50"), "BTC": _b("1.001998")},
        ),
        # a sell gives base, receives quote, fee off the quote received
        ("sell", "0.5", "25000", "25", "USDT", {"USDT": _b("34975", "50"), "BTC": _b("0.5")}),
        # fee in a third currency we hold (BNB)
        (
            "buy",
            "0.002",
            "100",
            "0.01",
            "BNB",
            {"USDT": _b("9900", "50"), "BTC": _b("1.002"), "BNB": _b("1.99")},
        ),
        # no fee
        ("sell", "1", "50000", "0", None, {"USDT": _b("60000", "50"), "BTC": _b("0")}),
        # a fee in a currency we hold no entry for: unknown, fetch again
        ("buy", "0.002", "100", "0.01", "XYZ", None),
        # more than the cached free: the copy was wrong, fetch again
        ("buy", "1", "20000", "0", None, None),
        ("sell", "2", "100000", "0", None, None),
    ],
)
def test_balances_after_fill(
    side: str,
    filled: str,
    cost: str,
    fee: str,
    fee_currency: str | None,
    expected: dict[str, BalanceEntry] | None,
) -> None:
    out = balances_after_fill(
        START,
        base="BTC",
        quote="USDT",
        side=side,
        filled=D(filled),
        cost=D(cost),
        fee=D(fee),
        fee_currency=fee_currency,
    )
    if expected is None:
        assert out is None
        return
    assert out == {**START, **expected}  # what is not listed is unchanged
    assert START["USDT"] == _b("10000", "50")  # the input is not changed in place


def test_a_first_buy_creates_the_base_entry() -> None:
    out = balances_after_fill(
        {"USDT": _b("100")},
        base="ETH",
        quote="USDT",
        side="buy",
        filled=D("0.01"),
        cost=D("30"),
        fee=D("0.00001"),
        fee_currency="ETH",
    )
    assert out == {"USDT": _b("70"), "ETH": _b("0.00999")}


@pytest.mark.parametrize(
    ("market_type", "status", "filled", "cost", "booked"),
    [
        ("spot", "filled", D("1"), D("60000"), True),
        ("swap", "filled", D("1"), D("60000"), False),  # margin moves, not assets: ask again
        ("future", "filled", D("1"), D("60000"), False),
        ("spot", "partially_filled", D("0.5"), D("30000"), False),
        ("spot", "filled", D("1"), None, False),
    ],
)
def test_only_a_complete_spot_fill_is_booked_into_the_copy(
    market_type: str, status: str, filled: D, cost: D | None, booked: bool
) -> None:
    market = Market("BTC/USDT", "BTC", "USDT")
    order = OrderResult("1", "c-1", "BTC/USDT", "buy", "market", status, D("1"), filled)
    booking = _booking(market, order, cost, market_type)
    assert (booking is not None) is booked
    if booking is not None:
        held = {"USDT": BalanceEntry(D("100000"), D("0"), D("100000"))}
        after = booking(held)
        assert after is not None
        assert after["USDT"].total == D("40000") and after["BTC"].total == D("1")
