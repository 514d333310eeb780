"""Limits: failed authentication slowed, signals per key, calls in flight per exchange account."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from execution_service.api_keys import keys as auth_keys
from execution_service.context import AppContext
from execution_service.limits import FailedAuthLimiter, TokenBucket
from tests.factories import Actor, paper_setup
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection


@pytest.fixture
def tight_limits(ctx: AppContext) -> Iterator[AppContext]:
    auth, signals = ctx.auth_limiter, ctx.signal_limiter
    ctx.auth_limiter = FailedAuthLimiter(max_failures=3, window=60)
    ctx.signal_limiter = TokenBucket(rate=0.01, burst=2)
    yield ctx
    ctx.auth_limiter, ctx.signal_limiter = auth, signals


async def test_repeated_failed_authentication_is_slowed(
    tight_limits: AppContext, client: httpx.AsyncClient, user: Actor
) -> None:
    for _ in range(3):
        response = await client.get(
            "/api/v1/me", headers={"Authorization": "Bearer exs_00000000_wrong"}
        )
        assert response.status_code == 401
    blocked = await client.get("/api/v1/me", headers={"Authorization": "Bearer exs_00000000_wrong"})
    assert blocked.status_code == 429 and blocked.json()["code"] == "rate_limited"
    assert int(blocked.headers["Retry-After"]) >= 1
    # Blocked is that key prefix from this address: another prefix is still looked at (and
    # refused with 401), and a valid key from the same address keeps working (issue #15: behind
    # a shared proxy, one client's bad keys must not lock every tenant out).
    other = await client.get("/api/v1/me", headers={"Authorization": "Bearer exs_11111111_wrong"})
    assert other.status_code == 401
    assert (await user.get("/api/v1/me")).status_code == 200
    # Even with its own prefix blocked from this address, the valid key itself is let in: a
    # blocked scope refuses invalid keys only.
    prefix = user.headers["Authorization"].split("_")[1]
    for _ in range(3):
        wrong = {"Authorization": f"Bearer exs_{prefix}_wrong"}
        assert (await client.get("/api/v1/me", headers=wrong)).status_code in (401, 429)
    assert (await client.get("/api/v1/me", headers=wrong)).status_code == 429
    auth_keys._cache.clear()  # not remembered: looked up again
    assert (await user.get("/api/v1/me")).status_code == 200


def test_one_key_guessed_from_many_addresses_is_slowed_too() -> None:
    from execution_service.deps import auth_scopes

    limiter = FailedAuthLimiter(max_failures=3, window=60)
    for n in range(29):
        local, anywhere, _ = auth_scopes(f"10.0.0.{n}", "exs_abcdefgh_wrong")
        limiter.failed(local)
        limiter.failed(anywhere, weight=0.1)
        assert limiter.retry_after(anywhere) is None
    limiter.failed(anywhere, weight=0.1)  # the 30th failure for that prefix, from anywhere
    assert limiter.retry_after(anywhere) is not None
    assert limiter.retry_after(auth_scopes("10.0.0.99", "exs_zzzzzzzz_x")[1]) is None
    assert auth_scopes("10.0.0.1", "not-a-key") == ["10.0.0.1|", "10.0.0.1|*"]


async def test_signals_per_key_are_rate_limited(
    tight_limits: AppContext, user: Actor, other_user: Actor
) -> None:
    acct = await paper_setup(user, position_size_mode="fixed_quantity", position_size_value="1")
    await acct.signal()
    await acct.signal()
    refused = await user.post("/api/v1/signals", json={"symbol": "BTC/USDT", "direction": "buy"})
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert (await user.ok("GET", "/api/v1/signals"))["total"] == 2  # nothing written for the third
    theirs = await paper_setup(
        other_user, position_size_mode="fixed_quantity", position_size_value="1"
    )
    assert (await theirs.signal())["executions"][0][
        "status"
    ] == "filled"  # another key's own bucket


async def test_one_connections_storm_does_not_starve_another(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    busy = await ccxt_connection(
        user, fake_binance, position_size_mode="fixed_quantity", position_size_value="0.001"
    )
    quiet = await ccxt_connection(
        user, fake_binance, position_size_mode="fixed_quantity", position_size_value="0.001"
    )
    bound = ctx.settings.exchange_concurrency_per_connection
    fake_binance.set_latency(100)
    fake_binance.max_in_flight = 0

    async def one(conn_id: int) -> float:
        started = time.monotonic()
        await user.ok(
            "POST",
            "/api/v1/signals",
            201,
            json={"symbol": "BTC/USDT", "direction": "buy", "connection_ids": [conn_id]},
        )
        return time.monotonic() - started

    try:
        storm = [asyncio.create_task(one(busy["id"])) for _ in range(4 * bound)]
        await asyncio.sleep(0.05)
        quiet_seconds = await one(quiet["id"])
        await asyncio.gather(*storm)
    finally:
        fake_binance.set_latency(0)
    # 16 orders at once toward the busy account, yet at most `bound` calls in flight to it, and
    # the quiet account's own calls on top: without the bound the fake sees 14 at once.
    assert fake_binance.max_in_flight <= 2 * bound
    assert quiet_seconds < 1.0
