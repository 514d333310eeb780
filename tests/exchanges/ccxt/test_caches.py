"""CcxtAdapter's short-lived copies against the fake Binance: balances (our own fills booked in,
anything uncertain forgotten), a venue's tickers, and markets shared by the venue's clients."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest

from execution_service.exchanges.base import InsufficientFunds, InvalidOrder, TemporaryError
from execution_service.exchanges.cache import SharedMarkets, TickerBook
from tests.exchanges.conftest import AdapterFactory
from tests.fakes.binance import FakeBinance

ACCOUNT = ("GET", "/api/v3/account")
TICKER = ("GET", "/api/v3/ticker/24hr")
MARKETS = ("GET", "/api/v3/exchangeInfo")


def count(fake: FakeBinance, request: tuple[str, str]) -> int:
    return len(fake.requests_to(*request))


async def test_balance_is_read_once_within_its_ttl_then_again(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    adapter = make_adapter(balance_ttl=0.3)
    first = await adapter.fetch_balance()
    fake_binance.set_balance("USDT", "123")  # someone else's change: seen after the TTL only
    assert await adapter.fetch_balance() == first
    assert count(fake_binance, ACCOUNT) == 1
    await asyncio.sleep(0.35)
    assert (await adapter.fetch_balance())["USDT"].free == D("123")
    assert count(fake_binance, ACCOUNT) == 2


async def test_without_a_ttl_every_read_asks(
    fake_binance: FakeBinance, make_adapter: AdapterFactory
) -> None:
    plain = make_adapter()  # the default: no copy
    await plain.fetch_balance()
    await plain.fetch_balance()
    assert count(fake_binance, ACCOUNT) == 2


@pytest.mark.parametrize(
    ("symbol", "side", "amount"),
    [("BTC/USDT", "buy", "0.002"), ("ETH/USDT", "sell", "1.5"), ("XRP/USDT", "buy", "100")],
)
async def test_our_fill_is_booked_exactly_as_the_exchange_books_it(
    make_adapter: AdapterFactory, fake_binance: FakeBinance, symbol: str, side: str, amount: str
) -> None:
    adapter = make_adapter(balance_ttl=60)
    await adapter.fetch_balance()
    await adapter.create_order(symbol, side, "market", D(amount), None, f"fill-{side}")
    booked = await adapter.fetch_balance()
    assert count(fake_binance, ACCOUNT) == 1  # no read after the order
    fresh = await make_adapter().fetch_balance()
    assert booked == fresh


async def test_a_refused_order_forgets_the_balance(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    adapter = make_adapter(balance_ttl=60)
    await adapter.fetch_balance()
    fake_binance.set_balance("USDT", "10")  # spent elsewhere: our copy is wrong
    with pytest.raises(InsufficientFunds):
        await adapter.create_order("BTC/USDT", "buy", "market", D("0.002"), None, "refused")
    assert (await adapter.fetch_balance())["USDT"].free == D("10")
    assert count(fake_binance, ACCOUNT) == 2


async def test_an_order_refused_before_sending_keeps_the_balance(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    adapter = make_adapter(balance_ttl=60)
    await adapter.fetch_balance()
    with pytest.raises(InvalidOrder):
        await adapter.create_order("BTC/USDT", "buy", "market", D("0.000001"), None, "tiny")
    await adapter.fetch_balance()
    assert count(fake_binance, ACCOUNT) == 1


async def test_an_unknown_outcome_forgets_the_balance(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    adapter = make_adapter(balance_ttl=60, timeout_ms=500)
    await adapter.fetch_balance()
    fake_binance.hang_next_orders()
    with pytest.raises(TemporaryError):
        await adapter.create_order("BTC/USDT", "buy", "market", D("0.002"), None, "hung")
    await adapter.fetch_balance()
    assert count(fake_binance, ACCOUNT) == 2


async def test_a_resting_order_and_its_cancel_forget_the_balance(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    adapter = make_adapter(balance_ttl=60)
    await adapter.fetch_balance()
    await adapter.create_order("BTC/USDT", "buy", "limit", D("0.002"), D("40000"), "rest")
    assert (await adapter.fetch_balance())["USDT"].used == D("80")  # asked: funds are locked
    await adapter.cancel_order("BTC/USDT", client_order_id="rest")
    assert (await adapter.fetch_balance())["USDT"].used == D("0")
    assert count(fake_binance, ACCOUNT) == 3


async def test_a_partial_fill_forgets_the_balance(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    adapter = make_adapter(balance_ttl=60)
    await adapter.fetch_balance()
    fake_binance.partial_fill_next_orders(fraction="0.5")
    order = await adapter.create_order("BTC/USDT", "buy", "market", D("0.002"), None, "half")
    assert order.status != "filled"
    assert await adapter.fetch_balance() == await make_adapter().fetch_balance()
    assert count(fake_binance, ACCOUNT) == 3


async def test_ticker_is_shared_by_the_venue_and_expires(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    book = TickerBook(0.3)
    one, two = make_adapter(tickers=book), make_adapter(tickers=book)
    assert (await one.fetch_ticker("BTC/USDT")).price == D("50000")
    fake_binance.set_price("BTC/USDT", "51000")
    assert (await two.fetch_ticker("BTC/USDT")).price == D("50000")  # the venue's copy
    assert count(fake_binance, TICKER) == 1
    await asyncio.sleep(0.35)
    assert (await two.fetch_ticker("BTC/USDT")).price == D("51000")
    assert count(fake_binance, TICKER) == 2


async def test_tickers_of_the_prices_worker_feed_the_venues_book(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    book = TickerBook(60)
    public = make_adapter(credentials={}, tickers=book)
    await public.fetch_tickers(["BTC/USDT", "ETH/USDT"])
    account = make_adapter(tickers=book)
    assert (await account.fetch_ticker("ETH/USDT")).price == D("3000")
    assert count(fake_binance, TICKER) == 1


async def test_without_a_book_every_ticker_read_asks(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    adapter = make_adapter()
    await adapter.fetch_ticker("BTC/USDT")
    await adapter.fetch_ticker("BTC/USDT")
    assert count(fake_binance, TICKER) == 2


async def test_markets_are_loaded_once_per_venue(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    shared = SharedMarkets()
    adapters = [make_adapter(shared_markets=shared) for _ in range(5)]
    await asyncio.gather(*(a.load_markets() for a in adapters))
    assert count(fake_binance, MARKETS) == 1
    # Every client trades with the copied tables (ccxt's own precision helpers included).
    order = await adapters[4].create_order(
        "BTC/USDT", "buy", "market", D("0.0123456789"), None, "shared"
    )
    assert order.amount == D("0.01234") and order.status == "filled"
    assert count(fake_binance, MARKETS) == 1


async def test_shared_markets_are_reloaded_after_their_ttl(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    shared = SharedMarkets()
    one = make_adapter(shared_markets=shared, markets_ttl_seconds=0.2)
    two = make_adapter(shared_markets=shared, markets_ttl_seconds=0.2)
    await one.load_markets()
    await two.load_markets()
    assert count(fake_binance, MARKETS) == 1
    await asyncio.sleep(0.25)
    await two.load_markets()
    await one.load_markets()
    assert count(fake_binance, MARKETS) == 2


async def test_a_balance_read_while_our_order_is_in_flight_is_not_booked_twice(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    """The exchange books the fill before its answer reaches us: a read in between already
    shows it, so it must not be kept for our booking to apply the fill a second time."""
    adapter = make_adapter(balance_ttl=60)
    await adapter.fetch_balance()
    fake_binance.hang_next_orders(seconds=0.3)  # booked at once, answered 0.3 s later
    order = asyncio.ensure_future(
        adapter.create_order("ETH/USDT", "sell", "market", D("1"), None, "slow")
    )
    await asyncio.sleep(0.15)
    during = await adapter.fetch_balance()  # asks: our copy is on hold while the order flies
    assert during["ETH"].free == D("9") and count(fake_binance, ACCOUNT) == 2
    await order
    assert await adapter.fetch_balance() == await make_adapter().fetch_balance()
    assert count(fake_binance, ACCOUNT) == 3  # the booked copy served; only the check asked
