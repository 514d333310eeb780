"""When the order tracker cannot look an order up, it says why once per kind of failure, counts
every one, and after `EXEC_TRACKER_MAX_LOOKUP_FAILURES` in a row puts the connection in `error`
with the reason: no endless stream of warnings naming an exception's type."""

from __future__ import annotations

import logging

import pytest

from execution_service import metrics
from execution_service.context import AppContext
from execution_service.orders.tracker import track_orders
from tests.factories import Actor
from tests.fakes.bybit import FakeBybit
from tests.venues.flow import connect, signal


def failures(kind: str) -> float:
    return metrics.ORDER_LOOKUP_FAILURES.labels(kind)._value.get()


async def test_failing_lookups_are_logged_once_per_kind_then_the_connection_errs(
    user: Actor, ctx: AppContext, bybit: FakeBybit, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await connect(user, bybit, "bybit", market_type="swap")
    resting = await signal(user, conn, order_type="limit", entry_price="45000")
    assert resting["status"] == "open"
    down, refused = failures("exchange_unavailable"), failures("auth_failed")
    limit = ctx.settings.tracker_max_lookup_failures
    caplog.set_level(logging.WARNING, "execution_service.orders.tracker")

    await bybit.stop()  # the venue is unreachable for three ticks
    for _ in range(3):
        await track_orders(ctx)
    await bybit.start()
    bybit.api_key = "revoked-" + bybit.api_key  # then the key is revoked
    for _ in range(limit - 3):
        await track_orders(ctx)

    assert failures("exchange_unavailable") - down >= 3
    assert failures("auth_failed") - refused >= limit - 3
    mine = [r.getMessage() for r in caplog.records if f"connection {conn['id']}:" in r.getMessage()]
    said = [m for m in mine if "order lookups fail" in m]
    assert len(said) == 2, mine  # one line per kind of failure, not one per tick
    assert "exchange_unavailable" in said[0] and "auth_failed: " in said[1]
    after = await user.ok("GET", f"/api/v1/connections/{conn['id']}")
    assert after["status"] == "error" and after["is_active"] is False
    assert after["last_error"].startswith(f"order lookups failed {limit} times in a row")
    assert "10003" in after["last_error"]  # Bybit's own reason: API key is invalid
    log = await user.ok("GET", f"/api/v1/logs/{resting['execution_log_id']}")
    assert log["status"] == "open"  # nothing guessed about the order itself
