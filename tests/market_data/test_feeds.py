"""Fetching data connections store what they fetch, against the loopback fakes: a ccxt data
connection on the fake Binance (latest answers, ticks and bars are stored), and an mtapi data
connection on a fake gateway whose quotes price a MetaTrader position that the monitor closes on
its SL (the account itself is on another gateway, whose own quote never crosses)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from execution_service.context import AppContext
from execution_service.market_data.feeds import Feeder
from execution_service.market_data.repository import MarketDataRepository
from execution_service.market_data.store import Point, store
from execution_service.models import DataConnection
from execution_service.workers.monitor import monitor_tick
from tests.factories import Actor
from tests.fakes.binance import FakeBinance
from tests.fakes.mtapi import FakeMtapi

ACCOUNT = {"user": "7001234", "password": "mt-Passw0rd!", "host": "mt4.broker.test", "port": "443"}
# The quotes come through another login on another gateway: a feed account, not the trading one.
FEED_LOGIN = {"user": "88004455", "password": "feed-Passw0rd!", "host": "mt5.quotes.test"}


async def due(ctx: AppContext, dc: dict[str, Any]) -> None:
    """Its next poll is due now (rather than a poll interval after the last)."""
    async with ctx.session_factory() as session:
        row = await session.get(DataConnection, dc["id"])
        assert row is not None
        row.next_fetch_at = None
        await session.commit()


async def poll(ctx: AppContext, dc: dict[str, Any]) -> None:
    await due(ctx, dc)
    report = await Feeder().run(ctx, only={dc["id"]})
    assert report.polled == 1 and report.failed == 0, report


async def test_a_ccxt_data_connection_stores_its_tickers(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    dc = await user.data_connection(
        type="ccxt",
        exchange="binance",
        api_base_url=fake_binance.base_url,
        symbols=["BTC/USDT", "ETH/USDT"],
        timeframes=[{"timeframe": "1m", "retention_days": 7}],
    )
    url = f"/api/v1/data-connections/{dc['id']}/market-data"
    assert (await user.get(f"{url}/latest", params={"symbol": "BTC/USDT"})).status_code == 404
    assert dc["stale"] is False and dc["last_fetched_at"] is None

    await poll(ctx, dc)
    latest = await user.ok("GET", f"{url}/latest", params={"symbol": "BTC/USDT"})
    assert latest["price"] == "50000"
    fake_binance.set_price("BTC/USDT", "50100.5")
    await poll(ctx, dc)
    assert (await user.ok("GET", f"{url}/latest", params={"symbol": "BTC/USDT"}))[
        "price"
    ] == "50100.5"
    eth = await user.ok("GET", f"{url}/latest", params={"symbol": "ETH/USDT"})
    assert eth["price"] == "3000"

    ticks = await user.ok("GET", url, params={"symbol": "BTC/USDT"})
    assert ticks["built"] is False and ticks["timeframe"] == "tick" and ticks["total"] == 2
    assert [t["close"] for t in ticks["items"]] == ["50000", "50100.5"]
    assert ticks["items"][0]["open"] is None and ticks["items"][0]["volume"] is None
    newest = await user.ok("GET", f"{url}/latest", params={"symbol": "BTC/USDT"})
    assert ticks["items"][-1]["timestamp"] == newest["timestamp"]
    read = await user.ok("GET", f"/api/v1/data-connections/{dc['id']}")
    assert read["last_fetched_at"] and read["consecutive_failures"] == 0 and not read["stale"]
    assert fake_binance.requests_to("GET", "/api/v3/ticker/24hr")


async def test_configured_bars_are_built_from_the_feeds_ticks_once_their_period_closes(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    dc = await user.data_connection(
        type="ccxt",
        exchange="binance",
        api_base_url=fake_binance.base_url,
        timeframes=[{"timeframe": "1m"}, {"timeframe": "5m", "retention_days": 2}],
    )
    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # ticks as the feed stores them, at known times
    prices = [(10, "100"), (30, "103"), (50, "99"), (70, "101"), (130, "102")]
    async with ctx.session_factory() as session:
        ticks = [Point.tick("BTC/USDT", t0 + timedelta(seconds=s), Decimal(p)) for s, p in prices]
        await store(session, dc["id"], ticks, t0)
        await session.commit()
        row = await session.get(DataConnection, dc["id"])
    assert row is not None
    feeder = Feeder()
    # 10:02:01 with 2 s of grace: only minute 10:00 has closed (10:01 closes at 10:02:02).
    assert await feeder.build_bars(ctx, [row], t0 + timedelta(seconds=121)) == 1
    assert await feeder.build_bars(ctx, [row], t0 + timedelta(seconds=121)) == 0  # built once
    assert await feeder.build_bars(ctx, [row], t0 + timedelta(seconds=302)) == 4  # 1m + 5m
    url = f"/api/v1/data-connections/{dc['id']}/market-data"
    minute = await user.ok("GET", url, params={"symbol": "BTC/USDT", "timeframe": "1m"})
    assert minute["built"] is False and minute["total"] == 3
    assert [(b["open"], b["high"], b["low"], b["close"]) for b in minute["items"]] == [
        ("100", "103", "99", "99"),
        ("101", "101", "101", "101"),
        ("102", "102", "102", "102"),
    ]
    assert minute["items"][0]["timestamp"] == "2026-03-02T10:00:00Z"
    five = await user.ok("GET", url, params={"symbol": "BTC/USDT", "timeframe": "5m"})
    assert [(b["open"], b["high"], b["low"], b["close"]) for b in five["items"]] == [
        ("100", "103", "99", "102")
    ]
    # Bars built from ticks are not prices of their own: the latest stays the newest tick.
    latest = await user.ok("GET", f"{url}/latest", params={"symbol": "BTC/USDT"})
    assert latest == {"symbol": "BTC/USDT", "price": "102", "timestamp": "2026-03-02T10:02:10Z"}


async def test_a_failing_feed_counts_failures_and_backs_off(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    dc = await user.data_connection(
        type="ccxt", exchange="binance", api_base_url=fake_binance.base_url, symbols=["BTC/USDT"]
    )
    await fake_binance.go_down("503")
    report = await Feeder().run(ctx, only={dc["id"]})
    assert report.failed == 1 and report.stored == 0
    read = await user.ok("GET", f"/api/v1/data-connections/{dc['id']}")
    assert read["consecutive_failures"] == 1 and "exchange_unavailable" in read["last_error"]
    # Backing off: not due again at once.
    assert (await Feeder().run(ctx, only={dc["id"]})).polled == 0
    await fake_binance.come_up()
    check = await user.ok("POST", f"/api/v1/data-connections/{dc['id']}/test")
    assert check["ok"] is True and check["error"] is None
    read = await user.ok("GET", f"/api/v1/data-connections/{dc['id']}")
    assert read["consecutive_failures"] == 0 and read["last_error"] is None
    assert read["last_tested_at"]


# --- MetaTrader ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def gateways() -> AsyncIterator[tuple[FakeMtapi, FakeMtapi]]:
    async with (
        FakeMtapi(**ACCOUNT) as account,  # type: ignore[arg-type]
        FakeMtapi(**FEED_LOGIN) as feed,  # type: ignore[arg-type]
    ):
        yield account, feed


@pytest.fixture
async def mt(gateways: tuple[FakeMtapi, FakeMtapi]) -> AsyncIterator[tuple[FakeMtapi, FakeMtapi]]:
    for fake in gateways:
        fake.reset()
    yield gateways
    for fake in gateways:
        assert fake.unexpected_requests == []


async def fx_quotes(user: Actor, feed: FakeMtapi) -> dict[str, Any]:
    return await user.data_connection(
        name="fx quotes",
        type="mtapi",
        api_base_url=feed.base_url,
        credentials=FEED_LOGIN,
        symbols=["EUR/USD"],
    )


async def test_mtapi_quotes_price_an_mt_position_and_the_monitor_closes_it_on_its_sl(
    user: Actor, ctx: AppContext, mt: tuple[FakeMtapi, FakeMtapi]
) -> None:
    account, feed = mt
    dc = await fx_quotes(user, feed)
    assert dc["credentials_set"] is True and "credentials" not in dc
    preset = await user.preset(position_size_mode="fixed_quantity", position_size_value="0.1")
    conn = await user.ok(
        "POST",
        "/api/v1/connections",
        201,
        json={
            "name": "mt4",
            "type": "fx",
            "adapter": "mtapi",
            "api_base_url": account.base_url,
            "credentials": ACCOUNT,
            "preset_id": preset["id"],
            "data_connection_id": dc["id"],
        },
    )
    await user.ok("POST", f"/api/v1/connections/{conn['id']}/activate")
    result = await user.ok(
        "POST",
        "/api/v1/signals",
        201,
        json={
            "symbol": "EUR/USD",
            "direction": "buy",
            "sl_price": "1.09500",
            "tp_price": "1.12000",
            "connection_ids": [conn["id"]],
        },
    )
    [execution] = result["executions"]
    assert execution["status"] == "filled"
    position_id = execution["position_id"]

    # The feed's quote (not the account's 1.10000) marks the position.
    asked = len(account.requests_to("/GetQuote"))  # sizing the entry read the account's quote
    feed.set_quote("EURUSD", "1.10200", "1.10210")
    await poll(ctx, dc)
    await monitor_tick(ctx)
    position = await user.ok("GET", f"/api/v1/positions/{position_id}")
    assert position["status"] == "open" and position["current_price"] == "1.102"
    # 0.1 lots x 100000 x (1.10200 - 1.10010) = 19 in the quote currency
    assert Decimal(position["pnl"]) == Decimal("19")
    assert len(account.requests_to("/GetQuote")) == asked  # the monitor never asked the account

    feed.set_quote("EURUSD", "1.09400", "1.09410")
    await poll(ctx, dc)
    await monitor_tick(ctx)
    position = await user.ok("GET", f"/api/v1/positions/{position_id}")
    assert position["status"] == "closed" and position["closed_reason"] == "sl"
    assert account.requests_to("/OrderClose") and account.opened == []
    # The feed's login, not the account's, fetched the quotes: its own session on its gateway.
    assert feed.requests_to("/Connect")[0].params["user"] == FEED_LOGIN["user"]
    assert all(r.params.get("user") != ACCOUNT["user"] for r in feed.requests_to("/Connect"))


async def test_mtapi_data_connection_credentials_are_checked_and_write_only(
    user: Actor, ctx: AppContext, mt: tuple[FakeMtapi, FakeMtapi]
) -> None:
    _, feed = mt
    missing = await user.post(
        "/api/v1/data-connections",
        json={"name": "x", "type": "mtapi", "api_base_url": feed.base_url, "symbols": ["EUR/USD"]},
    )
    assert missing.status_code == 422
    no_gateway = await user.post(
        "/api/v1/data-connections", json={"name": "x", "type": "mtapi", "credentials": FEED_LOGIN}
    )
    assert no_gateway.status_code == 422
    manual_with_login = await user.post(
        "/api/v1/data-connections", json={"name": "x", "credentials": FEED_LOGIN}
    )
    assert manual_with_login.status_code == 422

    dc = await fx_quotes(user, feed)
    assert (await user.ok("POST", f"/api/v1/data-connections/{dc['id']}/test"))["ok"] is True
    wrong = {**FEED_LOGIN, "password": "not-the-Passw0rd"}
    patched = await user.ok(
        "PATCH", f"/api/v1/data-connections/{dc['id']}", json={"credentials": wrong}
    )
    assert patched["credentials_set"] is True
    check = await user.ok("POST", f"/api/v1/data-connections/{dc['id']}/test")
    assert check["ok"] is False and check["error"].startswith("auth_failed")
    assert "not-the-Passw0rd" not in check["error"]
    await due(ctx, dc)
    report = await Feeder().run(ctx, only={dc["id"]})
    assert report.failed == 1
    read = await user.ok("GET", f"/api/v1/data-connections/{dc['id']}")
    assert read["consecutive_failures"] == 2 and read["last_error"].startswith("auth_failed")


async def test_the_monitor_judges_a_fetching_connections_ticks_not_the_bars_built_of_them(
    user: Actor, ctx: AppContext
) -> None:
    dc = await user.data_connection()
    t0 = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    ticks = [Point.tick("X/USD", t0 + timedelta(seconds=s), Decimal(p)) for s, p in ((5, "10"),)]
    bar = Point("X/USD", "1m", t0, Decimal(10), Decimal(10), Decimal(12), Decimal(8))
    async with ctx.session_factory() as session:
        await store(session, dc["id"], [*ticks, bar], t0)
        await session.commit()
        repo = MarketDataRepository(session)
        since = {dc["id"]: {"X/USD": t0 - timedelta(seconds=1)}}
        every = await repo.moves_since(since, 100)
        fetched = await repo.moves_since(since, 100, ticks_only=[dc["id"]])
    assert [(m.low, m.high) for m in every[(dc["id"], "X/USD")]] == [(8, 12), (10, 10)]
    assert [(m.low, m.high) for m in fetched[(dc["id"], "X/USD")]] == [(10, 10)]
