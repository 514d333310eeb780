"""A fetching data connection that has fetched nothing for EXEC_MARKET_DATA_STALE_SECONDS is stale:
in its read model and in /health/ready, which reports it without becoming unready."""

from __future__ import annotations

import httpx
import pytest

from execution_service.context import AppContext
from execution_service.market_data.feeds import Feeder
from tests.factories import Actor
from tests.fakes.binance import FakeBinance


async def test_a_feed_that_fetches_nothing_is_stale_but_the_service_stays_ready(
    user: Actor,
    ctx: AppContext,
    client: httpx.AsyncClient,
    fake_binance: FakeBinance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed = await user.data_connection(
        type="ccxt", exchange="binance", api_base_url=fake_binance.base_url, symbols=["BTC/USDT"]
    )
    manual = await user.data_connection()
    paused = await user.data_connection(
        type="ccxt", exchange="binance", api_base_url=fake_binance.base_url
    )
    await user.ok("PATCH", f"/api/v1/data-connections/{paused['id']}", json={"is_active": False})
    assert not feed["stale"]  # just created: it has had no time to fetch yet

    monkeypatch.setattr(ctx.settings, "market_data_stale_seconds", 1e-6)
    read = await user.ok("GET", f"/api/v1/data-connections/{feed['id']}")
    assert read["stale"] is True
    listed = {
        d["id"]: d["stale"] for d in (await user.ok("GET", "/api/v1/data-connections"))["items"]
    }
    assert listed[feed["id"]] is True and listed[manual["id"]] is False
    assert listed[paused["id"]] is False  # not polled on purpose: not stale
    ready = await client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    stale = ready.json()["checks"]["market_data"]["stale"]
    assert feed["id"] in stale and manual["id"] not in stale and paused["id"] not in stale

    monkeypatch.setattr(ctx.settings, "market_data_stale_seconds", 60)
    report = await Feeder().run(ctx, only={feed["id"]})
    assert report.stored == 1
    assert not (await user.ok("GET", f"/api/v1/data-connections/{feed['id']}"))["stale"]
    ready = await client.get("/health/ready")
    assert feed["id"] not in ready.json()["checks"]["market_data"]["stale"]


async def test_timeframes_must_be_buildable_from_the_ticks_kept(
    user: Actor, fake_binance: FakeBinance
) -> None:
    base = {"type": "ccxt", "exchange": "binance", "api_base_url": fake_binance.base_url}
    for timeframes in ([{"timeframe": "1M"}], [{"timeframe": "2d"}]):  # ticks are kept 24 h
        response = await user.post(
            "/api/v1/data-connections", json={"name": "x", **base, "timeframes": timeframes}
        )
        assert response.status_code == 422, timeframes
        assert response.json()["code"] == "timeframe_not_buildable"
    twice = [{"timeframe": "1m"}, {"timeframe": "1m"}]
    assert (
        await user.post("/api/v1/data-connections", json={"name": "x", **base, "timeframes": twice})
    ).status_code == 422
    unknown = await user.post(
        "/api/v1/data-connections", json={"name": "x", **base, "exchange": "nosuchexchange"}
    )
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_exchange"
    # A manual connection's timeframes say how long its pushed bars are kept: any timeframe.
    manual = await user.data_connection(timeframes=[{"timeframe": "1M", "retention_days": 3650}])
    assert manual["timeframes"] == [{"timeframe": "1M", "retention_days": 3650}]
