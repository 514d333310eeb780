from __future__ import annotations

from execution_service.context import AppContext
from execution_service.workers.health import health_tick
from tests.factories import Actor
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection


async def test_failures_count_and_deactivate_past_the_limit(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance)
    await fake_binance.go_down("503")
    limit = ctx.settings.max_consecutive_failures
    for n in range(1, limit):
        assert conn["id"] not in await health_tick(ctx)
        row = await user.ok("GET", f"/api/v1/connections/{conn['id']}")
        assert row["consecutive_failures"] == n and row["is_active"] and row["last_error"]
    assert conn["id"] in await health_tick(ctx)
    row = await user.ok("GET", f"/api/v1/connections/{conn['id']}")
    assert row["is_active"] is False and row["status"] == "error"
    assert row["last_error"].startswith(f"deactivated after {limit} failed checks")
    await fake_binance.come_up()


async def test_a_passing_check_resets_the_count(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance)
    await fake_binance.go_down("503")
    await health_tick(ctx)
    await fake_binance.come_up()
    await health_tick(ctx)
    row = await user.ok("GET", f"/api/v1/connections/{conn['id']}")
    assert (
        row["consecutive_failures"] == 0 and row["last_error"] is None and row["status"] == "active"
    )
