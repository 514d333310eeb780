"""A `ccxt` data connection on a venue that streams (the fake Binance's `/ws`, through real
ccxt.pro) gets its prices pushed: stored through the same path as polled ones, at once, and not
polled meanwhile. A stream that is refused or silent falls back to polling, which keeps prices
coming, and goes back to streaming once the venue delivers again. One worker streams a
connection; the others leave it alone until it is given back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.market_data.feeds import Feeder
from execution_service.market_data.streams import StreamFeeds
from tests.factories import Actor
from tests.fakes.binance import FakeBinance

FAST = {"backoff": (0.05, 0.2), "silence": 0.5}


@pytest.fixture
async def streams(fake_binance: FakeBinance) -> AsyncIterator[StreamFeeds]:
    running = StreamFeeds(**FAST)  # type: ignore[arg-type]
    yield running
    await running.close()


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.01)
    raise AssertionError("not within the time")


async def feed(user: Actor, fake: FakeBinance, **fields: Any) -> dict[str, Any]:
    body = {"type": "ccxt", "exchange": "binance", "api_base_url": fake.base_url, **fields}
    return await user.data_connection(**body)


def latest_is(user: Actor, dc: dict[str, Any], price: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        url = f"/api/v1/data-connections/{dc['id']}/market-data/latest"
        response = await user.get(url, params={"symbol": "BTC/USDT"})
        return response.status_code == 200 and response.json()["price"] == price

    return check


def mode_is(user: Actor, dc: dict[str, Any], mode: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        read = await user.ok("GET", f"/api/v1/data-connections/{dc['id']}")
        return bool(read["mode"] == mode)

    return check


async def poll(ctx: AppContext, dc: dict[str, Any]) -> int:
    """A poll as the feed loop would run it a little later (so a previous poll's next one is
    due): how many connections it polled."""
    later = utcnow() + timedelta(seconds=5)
    return (await Feeder().run(ctx, now=later, only={dc["id"]})).polled


async def test_pushed_prices_are_stored_at_once_and_the_connection_is_not_polled(
    user: Actor,
    ctx: AppContext,
    client: httpx.AsyncClient,
    fake_binance: FakeBinance,
    streams: StreamFeeds,
) -> None:
    dc = await feed(user, fake_binance, symbols=["BTC/USDT"])
    assert dc["mode"] == "polling"  # until a worker streams it
    await streams.tick(ctx, only={dc["id"]})
    await until(latest_is(user, dc, "50000"))
    await until(mode_is(user, dc, "streaming"))
    assert fake_binance.ws.subscriptions == {"btcusdt@miniTicker"}

    fake_binance.set_price("BTC/USDT", "50100.5")
    took = await until(latest_is(user, dc, "50100.5"))
    assert took < 1.0  # pushed, not at the next poll
    ticks = await user.ok(
        "GET", f"/api/v1/data-connections/{dc['id']}/market-data", params={"symbol": "BTC/USDT"}
    )
    assert ticks["timeframe"] == "tick" and "50100.5" in [t["close"] for t in ticks["items"]]

    # Held off the polls while it streams; fresh, not stale.
    assert await poll(ctx, dc) == 0
    assert not fake_binance.requests_to("GET", "/api/v3/ticker/24hr")
    read = await user.ok("GET", f"/api/v1/data-connections/{dc['id']}")
    assert read["last_fetched_at"] and not read["stale"] and read["consecutive_failures"] == 0
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert dc["id"] not in ready.json()["checks"]["market_data"]["polling"]
    metrics = (await client.get("/metrics")).text
    assert 'execution_market_data_feeds{mode="streaming"}' in metrics
    assert 'execution_market_data_points_total{source="streamed"}' in metrics


async def test_a_refused_stream_falls_back_to_polling_and_streams_again_once_back(
    user: Actor,
    ctx: AppContext,
    client: httpx.AsyncClient,
    fake_binance: FakeBinance,
    streams: StreamFeeds,
) -> None:
    dc = await feed(user, fake_binance, symbols=["BTC/USDT"])
    await streams.tick(ctx, only={dc["id"]})
    await until(mode_is(user, dc, "streaming"))

    fake_binance.ws.go_down()  # the websocket endpoint refuses; REST still answers
    await until(mode_is(user, dc, "polling"))
    ready = await client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"  # a flag, not unready
    assert dc["id"] in ready.json()["checks"]["market_data"]["polling"]
    fake_binance.set_price("BTC/USDT", "49000")
    assert await poll(ctx, dc) == 1  # due at once: the feed loop polls it meanwhile
    assert await latest_is(user, dc, "49000")()
    assert fake_binance.requests_to("GET", "/api/v3/ticker/24hr")

    fake_binance.ws.come_up()  # the stream reconnects (backoff) and takes over again
    await until(mode_is(user, dc, "streaming"))
    assert await poll(ctx, dc) == 0
    fake_binance.set_price("BTC/USDT", "49500")
    assert await until(latest_is(user, dc, "49500")) < 1.0
    ready = await client.get("/health/ready")
    assert dc["id"] not in ready.json()["checks"]["market_data"]["polling"]


async def test_a_silent_stream_is_polled_meanwhile(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance, streams: StreamFeeds
) -> None:
    dc = await feed(user, fake_binance, symbols=["BTC/USDT"])
    await streams.tick(ctx, only={dc["id"]})
    await until(mode_is(user, dc, "streaming"))
    fake_binance.ws.quiet = True  # connected, subscribed, and nothing comes
    await until(mode_is(user, dc, "polling"))
    assert fake_binance.ws.connections == 1  # the socket stays: only its silence counted
    fake_binance.set_price("BTC/USDT", "51000")
    assert await poll(ctx, dc) == 1 and await latest_is(user, dc, "51000")()
    fake_binance.ws.quiet = False
    fake_binance.set_price("BTC/USDT", "51100")
    await until(mode_is(user, dc, "streaming"))
    await until(latest_is(user, dc, "51100"))


async def test_one_worker_streams_a_connection_and_another_takes_it_over(
    user: Actor,
    ctx: AppContext,
    fake_binance: FakeBinance,
    streams: StreamFeeds,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dc = await feed(user, fake_binance, symbols=["BTC/USDT"])
    other = StreamFeeds(**FAST)  # type: ignore[arg-type]
    try:
        await streams.tick(ctx, only={dc["id"]})
        await other.tick(ctx, only={dc["id"]})
        await until(mode_is(user, dc, "streaming"))
        assert list(streams.streams) == [dc["id"]] and other.streams == {}
        await asyncio.sleep(0.1)
        assert fake_binance.ws.connections == 1

        await streams.close()  # this worker stops: the connection is given back at once
        assert (await user.ok("GET", f"/api/v1/data-connections/{dc['id']}"))["mode"] == "polling"
        await other.tick(ctx, only={dc["id"]})
        assert list(other.streams) == [dc["id"]]
        await until(mode_is(user, dc, "streaming"))

        monkeypatch.setattr(ctx.settings, "market_data_streams", False)  # turned off: polled
        await other.tick(ctx, only={dc["id"]})
        assert other.streams == {}
        assert (await user.ok("GET", f"/api/v1/data-connections/{dc['id']}"))["mode"] == "polling"
        assert await poll(ctx, dc) == 1
    finally:
        await other.close()


async def test_the_symbols_of_open_positions_are_watched_with_the_configured_ones(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance, streams: StreamFeeds
) -> None:
    dc = await feed(user, fake_binance, symbols=["BTC/USDT"])
    await streams.tick(ctx, only={dc["id"]})
    await until(latest_is(user, dc, "50000"))
    preset = await user.preset()
    conn = await user.paper_connection(preset_id=preset["id"], data_connection_id=dc["id"])
    body = {"symbol": "BTC/USDT", "direction": "buy", "connection_ids": [conn["id"]]}
    signal = await user.ok("POST", "/api/v1/signals", 201, json=body)
    assert signal["executions"][0]["status"] == "filled"

    url = f"/api/v1/data-connections/{dc['id']}"
    await user.ok("PATCH", url, json={"symbols": ["ETH/USDT"]})
    await streams.tick(ctx, only={dc["id"]})  # BTC for the position, ETH as configured

    async def both() -> bool:
        wanted = {"btcusdt@miniTicker", "ethusdt@miniTicker"}
        return fake_binance.ws.subscriptions == wanted

    await until(both)
    await until(lambda: _price_of(user, dc, "ETH/USDT", "3000"))


async def _price_of(user: Actor, dc: dict[str, Any], symbol: str, price: str) -> bool:
    url = f"/api/v1/data-connections/{dc['id']}/market-data/latest"
    response = await user.get(url, params={"symbol": symbol})
    return response.status_code == 200 and response.json()["price"] == price
