"""Tickers pushed by the venue: real ccxt.pro `watch_tickers` against the fakes' market streams
(Binance spot's `/ws`, Binance USDⓈ-M's `/market/ws`), through the adapter. Tickers arrive as
our own values at the venue's exact price, a changed set of symbols is a new subscription, a
dropped socket is our `TemporaryError` and the next call reconnects, and where no fake proves a
stream the adapter says so before opening anything."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from execution_service.exchanges.base import ExchangeError, NotSupported, TemporaryError, Ticker
from execution_service.exchanges.capabilities import Stream
from execution_service.exchanges.catalog import capabilities
from execution_service.exchanges.ccxt.adapter import CcxtAdapter
from tests.exchanges.conftest import LOOPBACK, AdapterFactory
from tests.fakes.binance import FakeBinance
from tests.fakes.binanceusdm import FakeBinanceUsdm


@pytest.fixture
def public(make_adapter: AdapterFactory) -> CcxtAdapter:
    """A credential-less client, as a data connection's."""
    return make_adapter(credentials={})


async def _next(
    adapter: CcxtAdapter, symbols: list[str], seconds: float = 5.0
) -> dict[str, Ticker]:
    """The next non-empty batch of pushed tickers."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        batch = await adapter.watch_tickers(symbols)
        if batch:
            return batch
    raise AssertionError("no ticker pushed in time")


async def test_tickers_arrive_at_the_venues_price_and_follow_it(
    public: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    first = await _next(public, ["BTC/USDT", "ETH/USDT"])
    assert set(first) == {"BTC/USDT", "ETH/USDT"}  # a subscription's first tickers at once
    assert first["BTC/USDT"].price == Decimal("50000") and first["BTC/USDT"].timestamp
    assert fake_binance.ws.subscriptions == {"btcusdt@miniTicker", "ethusdt@miniTicker"}
    # One subscription on one socket, ccxt.pro's JSON-RPC shape; its markets were the REST
    # client's (one exchangeInfo for both).
    subscribe = fake_binance.ws.commands[0]
    assert subscribe["method"] == "SUBSCRIBE" and isinstance(subscribe["id"], int)
    assert sorted(subscribe["params"]) == ["btcusdt@miniTicker", "ethusdt@miniTicker"]
    assert len(fake_binance.requests_to("GET", "/api/v3/exchangeInfo")) == 1

    started = time.monotonic()
    fake_binance.set_price("BTC/USDT", "50123.45678901")
    moved = await _next(public, ["BTC/USDT", "ETH/USDT"])
    assert time.monotonic() - started < 0.5
    assert moved["BTC/USDT"].price == Decimal("50123.45678901")  # the venue's string, exactly
    event = next(e for e in reversed(fake_binance.ws.sent) if e.get("s") == "BTCUSDT")
    assert event["e"] == "24hrMiniTicker" and event["c"] == "50123.45678901"


async def test_a_changed_set_of_symbols_is_a_new_subscription(
    public: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    await _next(public, ["BTC/USDT"])
    assert fake_binance.ws.subscriptions == {"btcusdt@miniTicker"}
    batch = await _next(public, ["BTC/USDT", "ETH/USDT"])
    assert "ETH/USDT" in batch
    await asyncio.sleep(0.05)  # the old socket's close reaches the fake
    assert fake_binance.ws.subscriptions == {"btcusdt@miniTicker", "ethusdt@miniTicker"}
    assert len(fake_binance.ws.sockets) == 1  # the old set's socket is closed, not left open
    await _next(public, ["ETH/USDT"])
    await asyncio.sleep(0.05)
    assert fake_binance.ws.subscriptions == {"ethusdt@miniTicker"}
    # A symbol the venue does not list is left out, as fetch_tickers leaves it.
    assert set(await _next(public, ["ETH/USDT", "NOPE/USDT"])) <= {"ETH/USDT"}


async def test_a_dropped_socket_is_a_temporary_error_and_the_next_call_reconnects(
    public: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    await _next(public, ["BTC/USDT"])
    fake_binance.ws.drop_all()
    with pytest.raises(TemporaryError) as raised:
        for _ in range(5):
            await public.watch_tickers(["BTC/USDT"])
    assert "127.0.0.1" not in raised.value.message  # no URL in our message
    fake_binance.set_price("BTC/USDT", "50500")
    assert (await _next(public, ["BTC/USDT"]))["BTC/USDT"].price == Decimal("50500")
    assert fake_binance.ws.connections == 2

    fake_binance.ws.go_down()  # sockets refused while the REST API answers
    await asyncio.sleep(0.05)
    with pytest.raises(ExchangeError):
        for _ in range(5):
            await public.watch_tickers(["BTC/USDT"])
    with pytest.raises(TemporaryError):  # refused again: no socket to wait on
        await public.watch_tickers(["BTC/USDT"])
    fake_binance.ws.come_up()
    assert (await _next(public, ["BTC/USDT"]))["BTC/USDT"].price == Decimal("50500")


async def test_a_silent_stream_waits_a_second_and_answers_nothing(
    public: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    await _next(public, ["BTC/USDT"])
    fake_binance.ws.quiet = True
    started = time.monotonic()
    assert await public.watch_tickers(["BTC/USDT"]) == {}
    assert 0.9 < time.monotonic() - started < 2.0


async def test_ping_frames_are_answered(public: CcxtAdapter, fake_binance: FakeBinance) -> None:
    """ccxt.pro pings every `keepAlive` and fails the socket after two unanswered: with pings
    every 250 ms (not shorter: a loaded machine's event loop can lag two of them), a socket that
    lives 1.2 s had its pongs."""
    await _next(public, ["BTC/USDT"])
    client = public._streams._tickers.client  # type: ignore[union-attr]
    assert client is not None
    for ws in client.clients.values():
        ws.keepAlive = 250
        ws.ping_looper = asyncio.ensure_future(ws.ping_loop())
    fake_binance.ws.quiet = True
    await asyncio.sleep(1.2)
    assert await public.watch_tickers(["BTC/USDT"]) == {}  # still connected, no error
    assert fake_binance.ws.connections == 1


async def test_binance_usdm_perpetual_tickers(ctx: object) -> None:
    async with FakeBinanceUsdm() as usdm:
        adapter = CcxtAdapter(
            "binanceusdm",
            {},
            api_base_url=usdm.base_url,
            market_type="swap",
            enable_rate_limit=False,
            outbound=LOOPBACK,
        )
        try:
            first = await _next(adapter, ["BTC/USDT"])  # our name; the venue's is BTC/USDT:USDT
            assert first["BTC/USDT"].price == Decimal("50000")
            usdm.set_price("BTCUSDT", "50100.1")
            assert (await _next(adapter, ["BTC/USDT"]))["BTC/USDT"].price == Decimal("50100.1")
            assert usdm.ws.subscriptions == {"btcusdt@miniTicker"}
            assert {s.path for s in usdm.ws.sockets} == {"/market/ws/0"}
        finally:
            await adapter.close()
        assert not usdm.unexpected_requests


async def test_only_venues_whose_fake_proves_a_ticker_stream_declare_one(
    make_adapter: AdapterFactory,
) -> None:
    assert Stream.tickers in capabilities("ccxt", "binance", "spot").streams
    assert Stream.tickers in capabilities("ccxt", "binanceusdm", "swap").streams
    # ccxt.pro has watch_tickers for these, but no fake of ours serves their streams yet.
    for exchange, market_type in (("okx", "spot"), ("bybit", "swap"), ("binancecoinm", "swap")):
        assert Stream.tickers not in capabilities("ccxt", exchange, market_type).streams
    assert Stream.tickers not in capabilities("paper", None, "spot").streams
    okx = CcxtAdapter("okx", {}, enable_rate_limit=False, outbound=LOOPBACK)
    try:
        with pytest.raises(NotSupported):
            await okx._streams.tickers({"BTC/USDT": "BTC/USDT"}, None)
    finally:
        await okx.close()


@pytest.fixture(autouse=True)
async def _no_stray_sockets(fake_binance: FakeBinance) -> AsyncIterator[None]:
    yield
    fake_binance.ws.drop_all()
    fake_binance.ws.reset()
