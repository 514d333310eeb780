"""The fault matrix: each fault injected at the fake exchange, each test ending with the fake's
book and our logs and positions in agreement. See docs/reliability.md for the table."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.models import ExecutionLog, ExecutionPosition
from execution_service.orders import outcomes as order_outcomes
from execution_service.orders.tracker import track_orders
from execution_service.workers.health import health_tick
from execution_service.workers.monitor import monitor_tick
from tests.factories import Actor
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection, signal

SMALL = {"position_size_mode": "fixed_quantity", "position_size_value": "0.001"}


async def books_agree(ctx: AppContext, fake: FakeBinance, connection_id: int) -> None:
    """What filled on the exchange is exactly what our logs say filled, order by order; nothing
    was sent twice; every filled entry opened exactly one position."""
    async with ctx.session_factory() as session:
        logs = (
            await session.scalars(
                select(ExecutionLog).where(ExecutionLog.execution_connection_id == connection_id)
            )
        ).all()
        positions = (
            await session.scalars(
                select(ExecutionPosition).where(
                    ExecutionPosition.execution_connection_id == connection_id
                )
            )
        ).all()
    ours = {e.client_order_id for e in logs}
    theirs = [o for o in fake.orders if o.client_order_id in ours]
    assert len({o.client_order_id for o in theirs}) == len(theirs), "an order was sent twice"
    filled_there = {o.client_order_id: o.executed_qty for o in theirs if o.executed_qty > 0}
    filled_here = {e.client_order_id: e.filled_quantity for e in logs if e.filled_quantity > 0}
    assert filled_there == filled_here
    # Fees too, also for a fill found by reconciliation (an order's status has no fills: its
    # fee comes from the order's trades).
    fees_there = {
        o.client_order_id: (
            sum((Decimal(f["commission"]) for f in o.fills), Decimal(0)),
            o.fills[0]["commissionAsset"],
        )
        for o in theirs
        if o.fills
    }
    fees_here = {e.client_order_id: (e.fee, e.fee_currency) for e in logs if e.filled_quantity > 0}
    assert fees_there == fees_here
    opened = [p.execution_log_id for p in positions]
    assert sorted(opened) == sorted(
        e.id for e in logs if e.purpose == "entry" and e.filled_quantity > 0
    )


async def reconcile(ctx: AppContext, *, after: float) -> None:
    await track_orders(ctx, now=utcnow() + timedelta(seconds=after))


async def test_accept_then_timeout_on_entry(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance, **SMALL)
    fake_binance.hang_next_orders(1)
    execution = await signal(user, conn)
    assert execution["status"] == "pending" and len(fake_binance.orders) == 1
    await reconcile(ctx, after=10)
    assert (await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}"))[
        "status"
    ] == "filled"
    assert len(fake_binance.requests_to("POST", "/api/v3/order")) == 1
    await books_agree(ctx, fake_binance, conn["id"])


async def test_accept_then_timeout_on_exit(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance, **SMALL)
    position_id = (await signal(user, conn))["position_id"]
    fake_binance.hang_next_orders(1)
    closing = await user.ok("POST", f"/api/v1/positions/{position_id}/close")
    assert (
        closing["execution"]["status"] == "pending" and closing["position"]["status"] == "closing"
    )
    assert (await user.post(f"/api/v1/positions/{position_id}/close")).status_code == 409
    await monitor_tick(ctx)  # a closing position is not closed again
    await reconcile(ctx, after=10)
    position = await user.ok("GET", f"/api/v1/positions/{position_id}")
    assert position["status"] == "closed" and position["closed_reason"] == "manual"
    assert len([o for o in fake_binance.orders if o.side == "SELL"]) == 1
    await books_agree(ctx, fake_binance, conn["id"])


async def test_connection_refused_on_create(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance, **SMALL)
    await signal(user, conn)  # markets and balance cached... the next create meets a closed port
    await fake_binance.go_down("refuse")
    execution = await signal(user, conn)
    await fake_binance.come_up()
    assert execution["status"] in ("pending", "rejected")
    await reconcile(ctx, after=ctx.settings.pending_grace_seconds + 5)
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert log["status"] == "rejected"
    await books_agree(ctx, fake_binance, conn["id"])


async def test_5xx_on_create(user: Actor, ctx: AppContext, fake_binance: FakeBinance) -> None:
    conn = await ccxt_connection(user, fake_binance, **SMALL)
    fake_binance.throttle(1, status=503, retry_after=None, method="POST", path="/api/v3/order")
    execution = await signal(user, conn)
    assert execution["status"] == "pending" and fake_binance.orders == []
    await reconcile(ctx, after=10)  # inside the grace period: still unknown, still pending
    assert (await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}"))[
        "status"
    ] == "pending"
    await reconcile(ctx, after=ctx.settings.pending_grace_seconds + 5)
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert log["status"] == "rejected" and log["error_code"] == "not_found_after_submit"
    assert len(fake_binance.requests_to("POST", "/api/v3/order")) == 1  # never resent
    await books_agree(ctx, fake_binance, conn["id"])


async def test_429_and_418_with_retry_after(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance, **SMALL)
    # Reads wait the exchange's Retry-After and try again, a bounded number of times.
    fake_binance.throttle(2, status=429, retry_after=0.2, method="GET", path="/api/v3/account")
    tested = await user.ok("POST", f"/api/v1/connections/{conn['id']}/test")
    assert tested["ok"] is True and tested["latency_ms"] >= 400  # two waits of 0.2 s
    assert len(fake_binance.requests_to("GET", "/api/v3/account")) == 3 + 1  # +1: activation
    # An order answered 418 is an unknown outcome: pending, not retried.
    fake_binance.throttle(1, status=418, retry_after=0.1, method="POST", path="/api/v3/order")
    execution = await signal(user, conn)
    assert execution["status"] == "pending"
    assert len(fake_binance.requests_to("POST", "/api/v3/order")) == 1
    await reconcile(ctx, after=ctx.settings.pending_grace_seconds + 5)
    assert (await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}"))[
        "status"
    ] == "rejected"
    await books_agree(ctx, fake_binance, conn["id"])


async def test_insufficient_funds_and_invalid_order(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance, **SMALL)
    fake_binance.set_balance("USDT", "10")
    refused = await signal(user, conn, quantity="0.01")  # 500 USDT: refused before sending
    assert refused["error_code"] == "insufficient_funds" and fake_binance.orders == []
    fake_binance.set_balance("USDT", "10000")
    fake_binance.reject_next_orders(
        1, code=-2010, msg="Account has insufficient balance for requested action."
    )
    assert (await signal(user, conn))["error_code"] == "insufficient_funds"
    fake_binance.reject_next_orders(1, code=-1013, msg="Filter failure: LOT_SIZE")
    assert (await signal(user, conn))["error_code"] == "invalid_order"
    await books_agree(ctx, fake_binance, conn["id"])


async def test_credentials_revoked_while_positions_are_open(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    # The monitor's own exit (a stop held at the venue would still fire there).
    conn = await ccxt_connection(user, fake_binance, **SMALL, stops_on_venue=False)
    position_id = (await signal(user, conn, sl_price="45000"))["position_id"]
    real_key = fake_binance.api_key
    fake_binance.api_key = "revoked-" + real_key  # the exchange no longer knows our key
    try:
        fake_binance.set_price("BTC/USDT", "44000")
        await monitor_tick(ctx)  # public prices still flow; the exit is refused
        position = await user.ok("GET", f"/api/v1/positions/{position_id}")
        assert position["status"] == "open" and position["current_price"] == "44000"
        exits = await user.ok(
            "GET", "/api/v1/logs", params={"connection_id": conn["id"], "status": "rejected"}
        )
        assert [e["error_code"] for e in exits["items"]] == ["auth_failed"]
        after = await user.ok("GET", f"/api/v1/connections/{conn['id']}")
        assert after["status"] == "error" and after["is_active"] is False
        fake_binance.set_price("BTC/USDT", "43000")
        await monitor_tick(ctx)  # still monitored while the exit waits its retry interval
        assert (await user.ok("GET", f"/api/v1/positions/{position_id}"))[
            "current_price"
        ] == "43000"
        await health_tick(ctx)  # inactive now: not probed, stays in error
        assert (await user.ok("GET", f"/api/v1/connections/{conn['id']}"))["status"] == "error"
    finally:
        fake_binance.api_key = real_key
    await books_agree(ctx, fake_binance, conn["id"])


async def test_canceled_with_a_partial_fill(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(
        user, fake_binance, position_size_mode="fixed_quantity", position_size_value="0.01"
    )
    fake_binance.partial_fill_next_orders(1, fraction="0.3", final_status="CANCELED")
    execution = await signal(user, conn)
    assert execution["status"] == "cancelled"
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert Decimal(log["filled_quantity"]) == Decimal("0.003")
    position = await user.ok("GET", f"/api/v1/positions/{log['position_id']}")
    assert position["initial_quantity"] == "0.002997"  # 0.003 less the 0.1% fee taken in BTC
    await books_agree(ctx, fake_binance, conn["id"])


async def test_an_order_queued_past_its_deadline_is_refused_unsent(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every entry of a fan-out is committed `pending` before any is sent; one still waiting for
    its turn when the tracker may already call it "never sent" must not be sent after all (its
    fill would land on a rejected row and open no position)."""
    a = await ccxt_connection(user, fake_binance, **SMALL)
    b = await ccxt_connection(user, fake_binance, **SMALL)
    monkeypatch.setattr(ctx.settings, "signal_concurrency", 1)  # b waits for a's answer
    # A 1 s budget between commit and send: a grace of 3 s less two 1 s exchange timeouts.
    monkeypatch.setattr(ctx.settings, "exchange_timeout_ms", 1000)
    monkeypatch.setattr(ctx.settings, "pending_grace_seconds", 3)
    fake_binance.set_latency(1500)  # a's order is answered after 1.5 s: b's turn comes too late
    body = {"symbol": "BTC/USDT", "direction": "buy", "connection_ids": [a["id"], b["id"]]}
    result = await user.ok("POST", "/api/v1/signals", 201, json=body)
    fake_binance.set_latency(0)
    first, second = sorted(result["executions"], key=lambda e: e["connection_id"])
    assert first["status"] == "filled"
    assert (second["status"], second["error_code"]) == ("rejected", "exchange_busy")
    assert [o.client_order_id for o in fake_binance.orders] == [
        (await user.ok("GET", f"/api/v1/logs/{first['execution_log_id']}"))["client_order_id"]
    ]
    await reconcile(ctx, after=40)
    for conn in (a, b):
        await books_agree(ctx, fake_binance, conn["id"])


async def test_a_fan_out_whose_outcomes_cannot_be_recorded_sends_nothing_more(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails while a fan-out is under way: the client gets a 503, no further order
    leaves, and the tracker settles every committed row (none sent twice, none lost)."""
    conns = [await ccxt_connection(user, fake_binance, **SMALL) for _ in range(3)]
    monkeypatch.setattr(ctx.settings, "signal_concurrency", 1)
    fake_binance.set_latency(300)

    class Deadlock(Exception):
        sqlstate = "40P01"

    async def fails(*_: object, **__: object) -> None:
        raise OperationalError("UPDATE execution_logs …", {}, Deadlock("deadlock detected"))

    monkeypatch.setattr(order_outcomes, "record_outcomes", fails)
    body = {"symbol": "BTC/USDT", "direction": "buy", "connection_ids": [c["id"] for c in conns]}
    response = await user.post("/api/v1/signals", json=body)
    fake_binance.set_latency(0)
    monkeypatch.undo()
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["retry-after"] == "1"
    # The first answer could not be recorded: the third target's order never leaves (the second
    # may have been in flight when the sends were stopped), not even after the response.
    await asyncio.sleep(1.0)
    sent = {o.client_order_id for o in fake_binance.orders}
    assert 1 <= len(sent) <= 2 and not any(cid.endswith(f"-{conns[2]['id']}-e") for cid in sent)
    await reconcile(ctx, after=40)
    for conn in conns:
        await books_agree(ctx, fake_binance, conn["id"])
