"""The order tracker: lost replies reconciled by client order id, resting orders followed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import distinct, func, select

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.models import ExecutionConnection, ExecutionPosition
from execution_service.orders.tracker import track_orders
from execution_service.workers.monitor import monitor_tick
from tests.factories import Actor, paper_setup
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection, signal


async def test_a_lost_reply_is_found_by_client_order_id_and_opens_one_position(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance)
    fake_binance.hang_next_orders(1)
    execution = await signal(user, conn)
    assert execution["status"] == "pending"
    later = utcnow() + timedelta(seconds=10)  # past the in-flight window, inside the grace period
    for _ in range(2):
        await track_orders(ctx, now=later)
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert log["status"] == "filled" and log["filled_quantity"] == "0.02"
    positions = await user.ok("GET", "/api/v1/positions", params={"connection_id": conn["id"]})
    assert positions["total"] == 1 and positions["items"][0]["id"] == log["position_id"]
    assert len(fake_binance.requests_to("POST", "/api/v3/order")) == 1  # never resent


async def test_an_order_the_exchange_never_saw_is_rejected_after_the_grace_period(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance)
    await fake_binance.go_down("503")
    execution = await signal(user, conn)
    await fake_binance.come_up()
    assert execution["status"] in ("pending", "rejected")
    if execution["status"] == "pending":  # a 503 on create is an unknown outcome
        await track_orders(ctx, now=utcnow() + timedelta(seconds=10))
        assert (await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}"))[
            "status"
        ] == "pending"
        await track_orders(
            ctx, now=utcnow() + timedelta(seconds=ctx.settings.pending_grace_seconds + 5)
        )
        log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
        assert log["status"] == "rejected" and log["error_code"] == "not_found_after_submit"
    assert fake_binance.orders == []


async def test_a_resting_limit_order_fills_when_the_price_crosses(
    user: Actor, ctx: AppContext
) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="1"
    )
    result = await acct.signal(order_type="limit", entry_price="95", sl_price="90")
    execution = result["executions"][0]
    assert execution["status"] == "open"
    await track_orders(ctx)
    assert (await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}"))[
        "status"
    ] == "open"
    await acct.price("94")
    await track_orders(ctx)
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert log["status"] == "filled" and log["average_price"] == "95" and log["position_id"]
    position = await user.ok("GET", f"/api/v1/positions/{log['position_id']}")
    assert position["entry_price"] == "95" and position["sl_price"] == "90"


async def test_a_partial_fill_then_cancel_keeps_what_filled(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(
        user, fake_binance, position_size_mode="fixed_quantity", position_size_value="0.01"
    )
    execution = await signal(user, conn, order_type="limit", entry_price="49000")
    assert execution["status"] == "open"
    fake_binance.cancel_with_fill(
        client_order_id=(await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}"))[
            "client_order_id"
        ],
        filled="0.004",
    )
    await track_orders(ctx)
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert log["status"] == "cancelled" and log["filled_quantity"] == "0.004"
    position = await user.ok("GET", f"/api/v1/positions/{log['position_id']}")
    # The fill's fee (0.1% of the bought BTC, read from the order's trades) stays with the
    # exchange: the position holds what the account holds.
    assert log["fee"] == "0.000004" and log["fee_currency"] == "BTC"
    assert position["initial_quantity"] == "0.003996" and position["status"] == "open"


async def test_one_ticker_request_per_symbol_per_tick(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(
        user, fake_binance, position_size_mode="fixed_quantity", position_size_value="0.001"
    )
    for _ in range(5):
        assert (await signal(user, conn, sl_price="40000"))["status"] == "filled"
    # Earlier tests may have left open positions on other connections to this same fake (other
    # venues' fakes are not counted): their public prices are one request for all of them
    # (issue #20), however many connections hold positions.
    async with ctx.session_factory() as session:
        sources = await session.scalar(
            select(func.count(distinct(ExecutionPosition.execution_connection_id)))
            .join(
                ExecutionConnection,
                ExecutionConnection.id == ExecutionPosition.execution_connection_id,
            )
            .where(
                ExecutionPosition.status == "open",
                ExecutionConnection.adapter == "ccxt",
                ExecutionConnection.exchange == "binance",
                ExecutionConnection.data_connection_id.is_(None),
            )
        )
    before = len(fake_binance.requests_to("GET", "/api/v3/ticker/24hr")) + len(
        fake_binance.requests_to("GET", "/api/v3/ticker/price")
    )
    await monitor_tick(ctx)
    after = len(fake_binance.requests_to("GET", "/api/v3/ticker/24hr")) + len(
        fake_binance.requests_to("GET", "/api/v3/ticker/price")
    )
    assert sources >= 1 and after - before == 1  # one venue: one request a tick
    fake_binance.set_price("BTC/USDT", "39000")
    await monitor_tick(ctx)
    closed = await user.ok(
        "GET", "/api/v1/positions", params={"connection_id": conn["id"], "status": "closed"}
    )
    assert closed["total"] == 5 and {p["closed_reason"] for p in closed["items"]} == {"sl"}
    assert len([o for o in fake_binance.orders if o.side == "SELL"]) == 5
