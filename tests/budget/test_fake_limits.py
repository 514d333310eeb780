"""The fake Binance enforces Binance's own limits: weight per IP, 429 then 418, orders per key."""

from __future__ import annotations

import httpx

from tests.fakes.binance import FakeBinance
from tests.fakes.binance_limits import BinanceLimits


async def test_weight_per_ip_then_429_then_418() -> None:
    limits = BinanceLimits(weight_limit=50, window_seconds=30, ban_seconds=5)
    async with FakeBinance(limits=limits) as fake, httpx.AsyncClient(base_url=fake.base_url) as c:
        first = await c.get("/api/v3/exchangeInfo")  # 20
        assert first.status_code == 200
        assert first.headers["X-MBX-USED-WEIGHT-1M"] == "20"
        assert (await c.get("/api/v3/ticker/price", params={"symbol": "BTCUSDT"})).headers[
            "X-MBX-USED-WEIGHT-1M"
        ] == "22"
        assert (await c.get("/api/v3/exchangeInfo")).status_code == 200  # 42
        over = await c.get("/api/v3/exchangeInfo")  # 62 > 50
        assert over.status_code == 429
        assert float(over.headers["Retry-After"]) >= 1
        assert over.json()["code"] == -1003
        banned = await c.get("/api/v3/ping")  # kept sending after the 429
        assert banned.status_code == 418
        assert 1 <= float(banned.headers["Retry-After"]) <= 5
        assert (await c.get("/api/v3/time")).status_code == 418
        assert limits.refused[429] == 1 and limits.refused[418] == 2


async def test_order_count_per_key() -> None:
    limits = BinanceLimits(orders_per_10s=2)
    assert limits.admit_order("k") is None
    assert limits.admit_order("k") is None
    refused = limits.admit_order("k")
    assert refused is not None and refused.status == 429 and refused.code == -1015
    assert limits.admit_order("other") is None
    assert limits.headers("ip", "k", order=True)["X-MBX-ORDER-COUNT-10S"] == "2"


async def test_weights_follow_binance() -> None:
    from tests.fakes.binance_limits import weight_of

    assert weight_of("GET", "/api/v3/account", {}) == 20
    assert weight_of("POST", "/api/v3/order", {"symbol": "BTCUSDT"}) == 1
    assert weight_of("GET", "/api/v3/ticker/price", {}) == 4
    assert weight_of("GET", "/api/v3/openOrders", {}) == 80
