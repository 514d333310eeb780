"""Many ccxt accounts on one venue and one IP, against the fake Binance enforcing its limits:
the shared budget keeps every account within the IP's weight (0 x 429, 0 x 418), and a ban
from the venue stops every account until it ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from execution_service.exchanges.base import ExchangeBusy, ExchangeError
from execution_service.exchanges.bounded import BoundedAdapter
from execution_service.exchanges.budget import (
    Budgets,
    BudgetSpec,
    MemoryStore,
    Priority,
    VenueLimits,
    Window,
    calling,
)
from execution_service.exchanges.cache import SharedMarkets
from execution_service.exchanges.ccxt.adapter import CcxtAdapter
from execution_service.outbound.policy import OutboundPolicy
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_limits import BinanceLimits

LOOPBACK = OutboundPolicy(allow_private=True)
ACCOUNTS = 200
# The fake's limit, and the budget's: 90 % of it (a margin for requests in flight at a window's
# turn on a loaded machine; the venue's own count, read back, corrects the rest).
FAKE_WEIGHT, WINDOW = 100, 2.0
# (200 ccxt clients and the fake share one loop here: a request taken at a window's start can
# reach the fake more than a second later, in the next window. The budget counts requests still
# unanswered at a window's turn in the new window too; without that, this test saw 429s.)


def _limits(weight: int) -> VenueLimits:
    return VenueLimits(
        Window(weight, WINDOW), (Window(100, 10),), weight_header="x-mbx-used-weight-1m"
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    limits = BinanceLimits(weight_limit=FAKE_WEIGHT, window_seconds=WINDOW, ban_seconds=5)
    async with FakeBinance(limits=limits) as fake:
        fake.set_balances({"USDT": "100000000"})
        yield fake


async def _accounts(
    fake: FakeBinance, budgets: Budgets, count: int, deadline: float = 30
) -> list[BoundedAdapter]:
    shared, spec = SharedMarkets(), BudgetSpec(budgets, limits=_limits(int(FAKE_WEIGHT * 0.9)))
    for i in range(count):
        fake.more_keys[f"key-{i}"] = f"secret-{i}"
    return [
        BoundedAdapter(
            CcxtAdapter(
                "binance",
                {"api_key": f"key-{i}", "api_secret": f"secret-{i}"},
                api_base_url=fake.base_url,
                # Generous: 200 ccxt clients and the fake share one loop on a 2-core machine.
                timeout_ms=30_000,
                retry_base_delay=0.01,
                outbound=LOOPBACK,
                shared_markets=shared,
                budget=spec,
            ),
            asyncio.Semaphore(4),
            deadline,
        )
        for i in range(count)
    ]


async def _close(adapters: list[BoundedAdapter]) -> None:
    await asyncio.gather(*(a.close() for a in adapters))


async def _order(adapter: BoundedAdapter, i: int) -> Any:
    try:
        return await adapter.create_order(
            "BTC/USDT", "buy", "market", Decimal("0.001"), None, f"fan{i}"
        )
    except ExchangeBusy as e:
        return e


async def test_fan_out_to_many_accounts_gets_no_429_and_fills_or_refuses_cleanly(
    fake: FakeBinance,
) -> None:
    budgets = Budgets(MemoryStore())
    adapters = await _accounts(fake, budgets, ACCOUNTS)
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(_order(a, i) for i, a in enumerate(adapters)))
        wall = time.monotonic() - started
    finally:
        await _close(adapters)
    assert fake.limits is not None
    assert fake.limits.refusals == 0, fake.limits.refused
    assert [r.status for r in fake.requests if r.status in (418, 429)] == []
    filled = [r for r in results if not isinstance(r, ExchangeError)]
    refused = [r for r in results if isinstance(r, ExchangeBusy)]
    assert len(filled) + len(refused) == ACCOUNTS
    sent = fake.requests_to("POST", "/api/v3/order")
    assert len(sent) == len(filled) == len(fake.orders)  # nothing refused was sent, none twice
    assert len({o.client_order_id for o in fake.orders}) == len(fake.orders)
    assert all(o.status == "FILLED" for o in fake.orders)
    # Markets loaded once for the venue, not per account.
    assert len(fake.requests_to("GET", "/api/v3/exchangeInfo")) == 1
    # The budget was short (it took more than one window): it waited instead of spending.
    weight = sum(_weight(r.method, r.path, r.params) for r in fake.requests)
    assert weight > FAKE_WEIGHT and wall > WINDOW


def _weight(method: str, path: str, params: dict[str, str]) -> int:
    from tests.fakes.binance_limits import weight_of

    return weight_of(method, path, params)


async def test_onboarding_many_accounts_waits_for_budget_instead_of_spending_it(
    fake: FakeBinance,
) -> None:
    """Activation checks each account's balance (weight 20): 20 of them need 400 weight, two
    windows of this fake's and more; they wait their turn and none is answered 429 or 418."""
    fake.limits = BinanceLimits(weight_limit=200, window_seconds=WINDOW, ban_seconds=5)
    budgets = Budgets(MemoryStore())
    shared, spec = SharedMarkets(), BudgetSpec(budgets, limits=_limits(180))
    adapters = []
    for i in range(20):
        fake.more_keys[f"key-{i}"] = f"secret-{i}"
        adapters.append(
            CcxtAdapter(
                "binance",
                {"api_key": f"key-{i}", "api_secret": f"secret-{i}"},
                api_base_url=fake.base_url,
                timeout_ms=30_000,
                outbound=LOOPBACK,
                shared_markets=shared,
                budget=spec,
            )
        )
    try:
        with calling(Priority.READ, within=60):
            balances = await asyncio.gather(*(a.fetch_balance() for a in adapters))
    finally:
        await asyncio.gather(*(a.close() for a in adapters))
    assert all(b["USDT"].free > 0 for b in balances)
    assert fake.limits.refusals == 0, fake.limits.refused
    assert len(fake.requests_to("GET", "/api/v3/account")) == 20


async def test_a_ban_stops_every_account_on_the_ip_until_it_ends(fake: FakeBinance) -> None:
    budgets = Budgets(MemoryStore())
    adapters = await _accounts(fake, budgets, 20)
    try:
        await adapters[0].load_markets()
        fake.throttle(count=1, status=418, retry_after=2)
        read = asyncio.create_task(adapters[0].fetch_ticker("BTC/USDT"))  # retried after the ban
        while not any(r.status == 418 for r in fake.requests):
            await asyncio.sleep(0.01)
        banned_at = time.time()
        results = await asyncio.gather(*(_order(a, i) for i, a in enumerate(adapters)))
        await read
    finally:
        await _close(adapters)
    ban = next(r for r in fake.requests if r.status == 418)
    after = [r for r in fake.requests if r.at > ban.at]
    assert after, "nothing was sent after the ban"
    assert min(r.at for r in after) >= ban.at + 1.9  # none sent before the ban ended
    assert all(not isinstance(r, ExchangeError) for r in results)
    assert len(fake.orders) == 20
    assert banned_at - ban.at < 1
    budget = budgets.all()[0]
    assert budget.paused_until >= ban.at + 1.9


async def test_a_ban_refuses_orders_whose_deadline_comes_first(fake: FakeBinance) -> None:
    budgets = Budgets(MemoryStore())
    adapters = await _accounts(fake, budgets, 5, deadline=0.5)
    try:
        await adapters[0].load_markets()
        fake.throttle(count=1, status=418, retry_after=30)
        with pytest.raises(ExchangeError):
            await adapters[0].inner.fetch_ticker("BTC/USDT")  # type: ignore[attr-defined]
        results = await asyncio.gather(*(_order(a, i) for i, a in enumerate(adapters)))
    finally:
        await _close(adapters)
    assert all(isinstance(r, ExchangeBusy) for r in results)
    assert fake.requests_to("POST", "/api/v3/order") == []


async def test_every_accounts_tickers_at_once_ask_the_venue_once(fake: FakeBinance) -> None:
    """The monitor asks each account's own tickers at once: the venue is asked once."""
    from execution_service.exchanges.cache import TickerBook

    budgets, book, shared = Budgets(MemoryStore()), TickerBook(0), SharedMarkets()
    spec = BudgetSpec(budgets, limits=_limits(90))
    adapters = [
        CcxtAdapter(
            "binance",
            {},
            api_base_url=fake.base_url,
            timeout_ms=30_000,
            outbound=LOOPBACK,
            shared_markets=shared,
            tickers=book,
            budget=spec,
        )
        for _ in range(50)
    ]
    try:
        await adapters[0].load_markets()
        before = len(fake.requests)
        answers = await asyncio.gather(*(a.fetch_tickers(["BTC/USDT"]) for a in adapters))
    finally:
        await asyncio.gather(*(a.close() for a in adapters))
    assert all(a["BTC/USDT"].price == Decimal("50000") for a in answers)
    assert len(fake.requests) - before == 1


async def test_a_list_of_tickers_is_charged_what_binance_counts() -> None:
    """Binance counts 2 weight for the 24 h tickers of up to 20 symbols; ccxt prices a list as
    "no symbol" (200). The monitor's one request a tick for a venue's accounts (issue #20) at
    200 would spend the reads' share of the minute in 24 ticks."""
    budgets = Budgets(MemoryStore())
    async with FakeBinance() as venue:
        adapter = CcxtAdapter(
            "binance",
            {},
            api_base_url=venue.base_url,
            timeout_ms=30_000,
            outbound=LOOPBACK,
            budget=BudgetSpec(budgets, limits=_limits(6000)),
        )
        try:
            await adapter.load_markets()
            [budget] = budgets.all()
            before = (await budget.state())["used"]
            tickers = await adapter.fetch_tickers(["BTC/USDT", "ETH/USDT"])
            assert set(tickers) == {"BTC/USDT", "ETH/USDT"}
            assert (await budget.state())["used"] - before == 2
        finally:
            await adapter.close()


async def test_an_accounts_order_count_is_read_back_from_the_venue(fake: FakeBinance) -> None:
    """Another process (or a person) spent 4 of this account's 5 orders per 10 s: after one more
    order, the venue's X-MBX-ORDER-COUNT-10S says 5, and the next order waits for the window
    (here: refused unsent, its deadline comes first) instead of being answered 429."""
    assert fake.limits is not None
    fake.limits.orders_per_10s = 5
    budgets = Budgets(MemoryStore())
    counts = (("x-mbx-order-count-10s", 10.0),)  # as PUBLISHED["binance"] reads them
    limits = replace(_limits(FAKE_WEIGHT), orders=(Window(5, 10),), order_headers=counts)
    spec = BudgetSpec(budgets, limits=limits)
    fake.more_keys["key-0"] = "secret-0"
    adapter = BoundedAdapter(
        CcxtAdapter(
            "binance",
            {"api_key": "key-0", "api_secret": "secret-0"},
            api_base_url=fake.base_url,
            outbound=LOOPBACK,
            budget=spec,
        ),
        asyncio.Semaphore(4),
        0.5,
    )
    try:
        await adapter.load_markets()
        if time.time() % 10 > 8:  # not across the venue's 10 s turn
            await asyncio.sleep(10 - time.time() % 10)
        for _ in range(4):
            assert fake.limits.admit_order("key-0") is None  # sent by someone else
        assert not isinstance(await _order(adapter, 0), ExchangeError)
        assert isinstance(await _order(adapter, 1), ExchangeBusy)
    finally:
        await adapter.close()
    assert fake.limits.refusals == 0
    assert len(fake.requests_to("POST", "/api/v3/order")) == 1


async def test_balances_of_many_accounts_load_the_venues_markets_once(fake: FakeBinance) -> None:
    """An activation reads the balance first: ccxt would load the markets for each account
    (Binance: 20 weight each) unless the venue's shared copy is there first."""
    budgets = Budgets(MemoryStore())
    adapters = await _accounts(fake, budgets, 10)
    try:
        await asyncio.gather(*(a.fetch_balance() for a in adapters))
    finally:
        await _close(adapters)
    assert len(fake.requests_to("GET", "/api/v3/exchangeInfo")) == 1
    assert len(fake.requests_to("GET", "/api/v3/account")) == 10


async def test_sizing_uses_the_kept_balance_when_the_budget_has_no_room(fake: FakeBinance) -> None:
    """A large fan-out spends the budget on balance reads (Binance: 20 each). An account whose
    balance was read minutes ago sizes from that copy when a fresh read cannot go at once,
    instead of waiting its order's whole deadline in the queue."""
    budgets = Budgets(MemoryStore())
    spec = BudgetSpec(budgets, limits=_limits(FAKE_WEIGHT))
    fake.more_keys["key-0"] = "secret-0"
    adapter = CcxtAdapter(
        "binance",
        {"api_key": "key-0", "api_secret": "secret-0"},
        api_base_url=fake.base_url,
        outbound=LOOPBACK,
        budget=spec,
        balance_ttl=0.2,
        balance_kept=300,
    )
    try:
        first = await adapter.fetch_balance()
        await asyncio.sleep(0.3)  # expired
        await budgets.all()[0].pause(429, 30)  # the venue said slow down to another account
        reads = len(fake.requests_to("GET", "/api/v3/account"))
        started = time.monotonic()
        with calling(Priority.ENTRY, within=5):
            kept = await adapter.fetch_balance()
        assert time.monotonic() - started < 1  # not the order's whole deadline
        assert kept == first
        assert len(fake.requests_to("GET", "/api/v3/account")) == reads  # nothing sent
    finally:
        await adapter.close()
