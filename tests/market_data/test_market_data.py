from __future__ import annotations

from tests.factories import Actor


async def test_prices_and_latest(user: Actor) -> None:
    dc = await user.data_connection()
    url = f"/api/v1/data-connections/{dc['id']}/market-data"
    await user.ok(
        "POST",
        url,
        json={
            "prices": [
                {"symbol": "BTC/USDT", "price": "100.5", "timestamp": "2026-01-01T00:00:00Z"},
                {"symbol": "BTC/USDT", "price": 101, "timestamp": "2026-01-01T00:01:00+00:00"},
            ]
        },
    )
    latest = await user.ok("GET", f"{url}/latest", params={"symbol": "BTC/USDT"})
    assert latest == {"symbol": "BTC/USDT", "price": "101", "timestamp": "2026-01-01T00:01:00Z"}
    missing = await user.get(f"{url}/latest", params={"symbol": "ETH/USDT"})
    assert missing.status_code == 404 and missing.json()["code"] == "no_price"


async def test_bars_feed_the_latest_price_and_resending_is_harmless(user: Actor) -> None:
    dc = await user.data_connection()
    url = f"/api/v1/data-connections/{dc['id']}/market-data"
    bar = {
        "symbol": "ETH/USDT",
        "timeframe": "1m",
        "timestamp": "2026-01-01T00:00:00Z",
        "open": "10",
        "high": "12",
        "low": "9",
        "close": "11",
        "volume": "5",
    }
    assert (await user.ok("POST", url, json={"bars": [bar]}))["stored"] == 1
    await user.ok("POST", url, json={"bars": [{**bar, "close": "11.5"}]})
    latest = await user.ok("GET", f"{url}/latest", params={"symbol": "ETH/USDT"})
    assert latest["price"] == "11.5"
    bad = await user.post(url, json={"bars": [{**bar, "low": "20"}]})
    assert bad.status_code == 422


async def test_a_tiny_decimal_round_trips_exactly(user: Actor) -> None:
    dc = await user.data_connection()
    url = f"/api/v1/data-connections/{dc['id']}/market-data"
    for price in ("0.000000012345678901", "123456789012345678.123456789012345678", "1E+3"):
        await user.ok("POST", url, json={"prices": [{"symbol": "X/USDT", "price": price}]})
        latest = await user.ok("GET", f"{url}/latest", params={"symbol": "X/USDT"})
        from decimal import Decimal

        assert Decimal(latest["price"]) == Decimal(price)
    assert latest["price"] == "1000"
    await user.ok(
        "POST", url, json={"prices": [{"symbol": "X/USDT", "price": "0.000000012345678901"}]}
    )
    assert (await user.ok("GET", f"{url}/latest", params={"symbol": "X/USDT"}))[
        "price"
    ] == "0.000000012345678901"
    preset = await user.preset(position_size_value="0.000000012345678901")
    assert (await user.ok("GET", f"/api/v1/presets/{preset['id']}"))[
        "position_size_value"
    ] == "0.000000012345678901"


async def test_ingest_validation(user: Actor) -> None:
    dc = await user.data_connection()
    url = f"/api/v1/data-connections/{dc['id']}/market-data"
    for body in (
        {},
        {"prices": [{"symbol": "BTC USDT", "price": "1"}]},  # a bare BTCUSDT is a broker symbol
        {"prices": [{"symbol": "BTC/USDT", "price": "-1"}]},
        {"prices": [{"symbol": "BTC/USDT", "price": "1", "timestamp": "2026-01-01T00:00:00"}]},
    ):
        assert (await user.post(url, json=body)).status_code == 422, body
    assert (await user.get(f"{url}/latest", params={"symbol": "BTC/USDT"})).status_code == 404


async def test_data_connection_crud_and_in_use(user: Actor) -> None:
    dc = await user.data_connection(name="feed")
    patched = await user.ok(
        "PATCH", f"/api/v1/data-connections/{dc['id']}", json={"name": "feed 2"}
    )
    assert patched["name"] == "feed 2"
    await user.paper_connection(data_connection_id=dc["id"], activate=False)
    response = await user.delete(f"/api/v1/data-connections/{dc['id']}")
    assert response.status_code == 409 and response.json()["code"] == "data_connection_in_use"
    other = await user.data_connection()
    await user.ok("DELETE", f"/api/v1/data-connections/{other['id']}", 204)
    assert (
        await user.post("/api/v1/data-connections", json={"name": "x", "type": "ccxt"})
    ).status_code == 422
