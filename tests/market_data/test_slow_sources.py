"""One slow price source does not hold up everyone's stops (issue #20): the connections' own
tickers are asked at once, and a tick waits for them only briefly; a slow answer is taken by a
later tick instead of being asked for again."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from execution_service.context import AppContext
from execution_service.health.service import readiness
from execution_service.workers.monitor import Monitor, monitor_tick
from tests.factories import Actor, paper_setup
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection, signal

FQ = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}


async def test_a_slow_account_does_not_delay_another_accounts_stop(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    slow = await ccxt_connection(
        user,
        fake_binance,
        position_size_mode="fixed_quantity",
        position_size_value="0.001",
        stops_on_venue=False,  # its stop is the monitor's: judged on the venue's slow prices
    )
    assert (await signal(user, slow, sl_price="40000"))["status"] == "filled"
    paper = await paper_setup(user, price="100", **FQ)
    await paper.signal(sl_price="95")
    fake_binance.set_latency(1500)  # its ticker now takes 1.5 s
    try:
        await paper.price("90")
        started = time.monotonic()
        await monitor_tick(ctx)
        assert time.monotonic() - started < 1.25  # not held up by the slow account (1.5 s)
        mine = await user.ok("GET", "/api/v1/positions", params={"connection_id": paper.conn_id})
        assert [p["closed_reason"] for p in mine["items"]] == ["sl"]
        # The slow fetch keeps running; the tick after it answers takes it without asking again.
        asked = len(fake_binance.requests_to("GET", "/api/v3/ticker/price"))
        asked += len(fake_binance.requests_to("GET", "/api/v3/ticker/24hr"))
        fake_binance.set_price("BTC/USDT", "39000")
        await asyncio.sleep(1.6)
        await monitor_tick(ctx)
        again = len(fake_binance.requests_to("GET", "/api/v3/ticker/price"))
        again += len(fake_binance.requests_to("GET", "/api/v3/ticker/24hr"))
        assert again == asked  # no second request while the first was in flight
    finally:
        fake_binance.set_latency(0)
    await monitor_tick(ctx)  # a fresh fetch now: the price went through the stop
    theirs = await user.ok("GET", "/api/v1/positions", params={"connection_id": slow["id"]})
    assert [p["closed_reason"] for p in theirs["items"]] == ["sl"]


async def test_a_venues_public_prices_are_asked_once_a_tick_for_all_its_accounts(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    """Accounts on one venue with no data connection, each holding other symbols: one ticker
    request a tick for the union, through a client without credentials, not one per account."""
    fake_binance.set_price("ETH/USDT", "2000")
    held = {"BTC/USDT": "0.001", "ETH/USDT": "0.01"}
    accounts = []
    for symbol, size in [*held.items(), ("BTC/USDT", "0.001")]:
        conn = await ccxt_connection(
            user, fake_binance, position_size_mode="fixed_quantity", position_size_value=size
        )
        assert (await signal(user, conn, symbol=symbol))["status"] == "filled"
        accounts.append(conn)

    def asked() -> list[dict[str, str]]:
        return [
            r.params
            for path in ("/api/v3/ticker/price", "/api/v3/ticker/24hr")
            for r in fake_binance.requests_to("GET", path)
        ]

    before = len(asked())
    fake_binance.set_price("BTC/USDT", "31000")
    await monitor_tick(ctx)
    requests = asked()[before:]
    assert len(requests) == 1
    assert not any(r.get("signature") for r in requests)  # public: nothing signed
    for conn in accounts:
        listed = await user.ok("GET", "/api/v1/positions", params={"connection_id": conn["id"]})
        (position,) = listed["items"]
        expected = "31000" if position["symbol"] == "BTC/USDT" else "2000"
        assert position["current_price"] == expected


async def test_a_venue_whose_prices_stop_is_reported_stale_until_it_answers(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = await ccxt_connection(
        user, fake_binance, position_size_mode="fixed_quantity", position_size_value="0.001"
    )
    assert (await signal(user, conn, sl_price="20000"))["status"] == "filled"
    monkeypatch.setattr(ctx.settings, "monitor_max_price_age_seconds", 0.3)
    monkeypatch.setattr(ctx.settings, "workers_enabled", True)
    await monitor_tick(ctx)
    assert ctx.stale_price_venues == []
    await fake_binance.go_down("503")
    try:
        await monitor_tick(ctx)
        assert ctx.stale_price_venues == []  # not yet: it has the maximum price age to answer
        await asyncio.sleep(0.4)
        await monitor_tick(ctx)
        assert len(ctx.stale_price_venues) == 1
        assert REGISTRY.get_sample_value("execution_price_venues_stale") == 1
        checks = await readiness(ctx)
        assert checks["venue_prices"] == {"stale": ["binance spot"]}  # never its URL
    finally:
        await fake_binance.come_up()
    for _ in range(20):  # a fetch retrying from the outage may answer a tick or two later
        await monitor_tick(ctx)
        if not ctx.stale_price_venues:
            break
        await asyncio.sleep(0.1)
    assert ctx.stale_price_venues == []
    assert REGISTRY.get_sample_value("execution_price_venues_stale") == 0


async def test_a_slow_accounts_exit_does_not_hold_up_the_next_tick(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    """The worker's tick waits for its exits only briefly: an account answering in 1.5 s (its
    own requests; the venue's public prices are quick) has its exit go on while the next tick
    closes another account's stop, and is not sent a second exit meanwhile."""
    slow = await ccxt_connection(
        user,
        fake_binance,
        position_size_mode="fixed_quantity",
        position_size_value="0.001",
        stops_on_venue=False,
    )
    slow_position = (await signal(user, slow, sl_price="40000"))["position_id"]
    paper = await paper_setup(user, price="100", **FQ)
    await paper.signal(sl_price="95")
    monitor = Monitor()
    fake_binance.set_key_latency(fake_binance.api_key, 1500)
    try:
        fake_binance.set_price("BTC/USDT", "39000")
        for _ in range(2):  # the venue's tickers may land a tick later (a tick waits 0.25 s)
            started = time.monotonic()
            await monitor.tick(ctx)
            assert time.monotonic() - started < 1.0  # not held up by the slow exit
            if monitor.exits.positions:
                break
        assert monitor.exits.positions == {slow_position}  # its exit is under way
        await paper.price("90")
        await monitor.tick(ctx)  # woken by the pushed price: the paper stop closes now
        mine = await user.ok("GET", "/api/v1/positions", params={"connection_id": paper.conn_id})
        assert [p["closed_reason"] for p in mine["items"]] == ["sl"]
        theirs = await user.ok("GET", f"/api/v1/positions/{slow_position}")
        assert theirs["status"] == "closing"
        await asyncio.sleep(1.1)  # a whole tick again, the exit still under way
        await monitor.tick(ctx)
    finally:
        await monitor.exits.close(10)
        fake_binance.set_key_latency(fake_binance.api_key, 0)
    assert len(fake_binance.requests_to("POST", "/api/v3/order")) == 2  # entry, one exit
    theirs = await user.ok("GET", f"/api/v1/positions/{slow_position}")
    assert theirs["status"] == "closed" and theirs["closed_reason"] == "sl"
