"""The steps of a user's flow that read the same on every venue: connect, send a signal, lose a
reply and have it found again, refuse bad credentials. Each venue's test states its own numbers."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.orders.tracker import track_orders
from execution_service.positions.watch import TickReport
from execution_service.workers.monitor import monitor_tick
from tests.factories import Actor
from tests.fakes.venue import VenueServer

PRESET = {"position_size_mode": "fixed_notional", "position_size_value": "1000"}


async def connect(
    user: Actor,
    fake: Any,
    exchange: str,
    *,
    market_type: str = "spot",
    credentials: dict[str, str] | None = None,
    activate: bool = True,
    **preset: Any,
) -> dict[str, Any]:
    p = await user.preset(**{**PRESET, **preset})
    conn = await user.ok(
        "POST",
        "/api/v1/connections",
        201,
        json={
            "name": exchange,
            "adapter": "ccxt",
            "exchange": exchange,
            "api_base_url": fake.base_url,
            "market_type": market_type,
            "credentials": credentials or fake.credentials,
            "preset_id": p["id"],
        },
    )
    if activate:
        conn = await user.ok("POST", f"/api/v1/connections/{conn['id']}/activate")
    return conn  # type: ignore[no-any-return]


async def signal(user: Actor, conn: dict[str, Any], **body: Any) -> dict[str, Any]:
    payload = {"symbol": "BTC/USDT", "direction": "buy", "connection_ids": [conn["id"]], **body}
    result = await user.ok("POST", "/api/v1/signals", 201, json=payload)
    return result["executions"][0]  # type: ignore[no-any-return]


async def lost_reply_is_found(
    user: Actor, ctx: AppContext, fake: VenueServer, conn: dict[str, Any], **body: Any
) -> dict[str, Any]:
    """The venue books the order and its answer never comes: the log stays `pending`, then the
    order tracker finds it by our client order id and records it filled. It was sent once."""
    sent = len(fake.requests_to(*fake.order_path))
    fake.hang_next_orders(1, seconds=5)
    execution = await signal(user, conn, **body)
    assert execution["status"] == "pending", execution
    assert "outcome unknown" in execution["error_message"]
    later = utcnow() + timedelta(seconds=10)  # past the in-flight window, inside the grace
    await track_orders(ctx, now=later)
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert log["status"] == "filled" and log["position_id"] is not None, log
    assert len(fake.requests_to(*fake.order_path)) == sent + 1  # never resent
    return log  # type: ignore[no-any-return]


async def cancel_a_resting_limit(
    user: Actor, conn: dict[str, Any], price: str, **body: Any
) -> dict[str, Any]:
    execution = await signal(user, conn, order_type="limit", entry_price=price, **body)
    assert execution["status"] == "open", execution
    log_id = execution["execution_log_id"]
    cancelled = await user.ok("POST", f"/api/v1/logs/{log_id}/cancel")
    assert cancelled["status"] == "cancelled" and cancelled["filled_quantity"] == "0"
    assert cancelled["position_id"] is None
    return cancelled  # type: ignore[no-any-return]


async def bad_credentials_are_refused(
    user: Actor, fake: Any, exchange: str, market_type: str = "spot"
) -> None:
    wrong = {**fake.credentials, "api_secret": "wrong-secret-" + "x" * 30}
    conn = await connect(
        user, fake, exchange, market_type=market_type, credentials=wrong, activate=False
    )
    refused = await user.post(f"/api/v1/connections/{conn['id']}/activate")
    assert refused.status_code == 409 and refused.json()["code"] == "check_failed"
    after = await user.ok("GET", f"/api/v1/connections/{conn['id']}")
    assert after["status"] == "error" and after["is_active"] is False
    assert after["last_error"].startswith("auth_failed"), after["last_error"]


async def tick_on_venue_prices(ctx: AppContext) -> TickReport:
    """A monitor tick judged on the venue's current prices. A tick waits at most 0.25 s for a
    venue's tickers and leaves a later answer to the next tick (`market_data.prices`): on a
    loaded machine the fake's answer can come later than that, so this ticks again once the
    answers still out are in (never more than three times)."""
    report = await monitor_tick(ctx)
    for _ in range(3):
        late = [task for task in ctx.ticker_fetches.values() if not task.done()]
        if not late:
            break
        await asyncio.wait(late, timeout=10)
        report = await monitor_tick(ctx)
    return report


async def until(check: Any, seconds: float = 5.0) -> float:
    """Polls `check` until it holds; how long that took (seconds)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.005)
    raise AssertionError("not within the time")
