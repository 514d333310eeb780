"""A user's whole flow on Bybit (API v5, unified trading account; the loopback fake), spot and
USDT linear perpetual, through real ccxt: every figure by hand."""

from __future__ import annotations

from decimal import Decimal as D

from execution_service.context import AppContext
from tests.factories import Actor
from tests.fakes.bybit import FakeBybit
from tests.venues.flow import (
    bad_credentials_are_refused,
    cancel_a_resting_limit,
    connect,
    lost_reply_is_found,
    signal,
    tick_on_venue_prices,
)


def categories(fake: FakeBybit) -> set[str]:
    return {r.params["category"] for r in fake.requests_to("GET", "/v5/market/instruments-info")}


async def test_spot_flow(user: Actor, ctx: AppContext, bybit: FakeBybit) -> None:
    conn = await connect(user, bybit, "bybit")
    assert conn["status"] == "active" and categories(bybit) == {"spot"}
    balance = await user.ok("GET", f"/api/v1/connections/{conn['id']}/balance")
    assert balance["USDT"] == {"free": "10000", "used": "0", "total": "10000"}

    execution = await signal(user, conn, sl_price="49000", tp_price="52000")
    # 1000 USDT / 50000 = 0.02 BTC (the base precision is 0.000001)
    assert execution["status"] == "filled" and execution["quantity"] == "0.02"
    [order] = bybit.orders
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    # orderLinkId takes "-": the readable id; found again as `orderLinkId`.
    assert order.client_id == log["client_order_id"] == f"es-{log['signal_id']}-{conn['id']}-e"
    assert log["order_id"] == order.id and log["average_price"] == "50000"
    # Bybit answers with ids only: the order was read back from order/realtime.
    [looked_up] = bybit.requests_to("GET", "/v5/order/realtime")
    assert looked_up.params["orderId"] == order.id
    # 0.1 % taken from the BTC received: 0.02 x 0.001 = 0.00002 BTC, worth 1 USDT
    assert log["fee"] == "0.00002" and log["fee_currency"] == "BTC"
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    assert position["quantity"] == "0.01998" and position["fees"] == "1"

    bybit.set_price("BTCUSDT", "48900")
    await tick_on_venue_prices(ctx)
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"
    sell = bybit.orders[-1]
    assert sell.side == "sell" and sell.qty == D("0.01998")
    # gross: (48900 - 50000) x 0.01998 = -21.978
    # fees:  1 at the entry, 0.01998 x 48900 x 0.001 = 0.977022 USDT at the exit
    # net:   -21.978 - 1 - 0.977022 = -23.955022
    assert D(closed["pnl"]) == D("-21.978") - D(1) - D("0.977022") == D("-23.955022")
    assert closed["fees"] == "1.977022"

    await cancel_a_resting_limit(user, conn, "45000")
    assert bybit.orders[-1].status == "canceled"
    await lost_reply_is_found(user, ctx, bybit, conn)
    await bad_credentials_are_refused(user, bybit, "bybit")


async def test_linear_perpetual_flow(user: Actor, ctx: AppContext, bybit: FakeBybit) -> None:
    # The monitor's SL and its reduce-only exit (venue-held stops: test_protection_bybit.py).
    conn = await connect(
        user, bybit, "bybit", market_type="swap", leverage="5", stops_on_venue=False
    )
    assert categories(bybit) == {"linear"}  # no spot, inverse or option markets
    assert bybit.requests_to("GET", "/v5/position/list")  # one-way mode (positionIdx 0)

    execution = await signal(user, conn, sl_price="49000", tp_price="52000")
    # BTC/USDT is the perpetual BTCUSDT here, not the spot pair: 1000 / 50000 = 0.02 BTC
    assert execution["status"] == "filled" and execution["quantity"] == "0.02"
    [order] = bybit.orders
    assert order.inst.swap and order.qty == D("0.02")
    [lever] = bybit.requests_to("POST", "/v5/position/set-leverage")
    # The account was at Bybit's own 10x; the preset says 5x.
    assert lever.params["buyLeverage"] == lever.params["sellLeverage"] == "5"
    assert bybit.books.linear.leverage["BTCUSDT"] == 5 and order.leverage == 5
    # fee: 0.02 x 50000 x 0.055 % = 0.55 USDT; margin at 5x: 1000 / 5 = 200 USDT
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    assert position["quantity"] == "0.02" and position["fees"] == "0.55"
    assert bybit.books.linear.positions["BTCUSDT"].margin == D(200)

    bybit.set_price("BTCUSDT", "48900")
    await tick_on_venue_prices(ctx)
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"
    exit_order = bybit.orders[-1]
    assert exit_order.side == "sell" and exit_order.reduce_only and exit_order.inst.swap
    # gross: (48900 - 50000) x 0.02 = -22
    # fees:  0.55 at the entry, 0.02 x 48900 x 0.00055 = 0.5379 at the exit
    # net:   -22 - 0.55 - 0.5379 = -23.0879
    assert D(closed["pnl"]) == D(-22) - D("0.55") - D("0.5379") == D("-23.0879")
    assert bybit.books.linear.balance("USDT")[0] == D(10000) - D("23.0879")

    await cancel_a_resting_limit(user, conn, "45000")
    await lost_reply_is_found(user, ctx, bybit, conn)
    await bad_credentials_are_refused(user, bybit, "bybit", "swap")


async def test_a_short_on_the_perpetual_is_seen_filled_and_closed_at_its_target(
    user: Actor, ctx: AppContext, bybit: FakeBybit
) -> None:
    # The monitor's TP (the venue-held one: test_protection_bybit.py).
    conn = await connect(
        user, bybit, "bybit", market_type="swap", leverage="5", stops_on_venue=False
    )
    execution = await signal(user, conn, direction="sell", sl_price="51000", tp_price="48000")
    assert execution["status"] == "filled" and execution["quantity"] == "0.02"
    assert bybit.books.linear.positions["BTCUSDT"].qty == D("-0.02")
    bybit.set_price("BTCUSDT", "47900")
    await tick_on_venue_prices(ctx)
    closed = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "tp"
    cover = bybit.orders[-1]
    assert cover.side == "buy" and cover.reduce_only
    # gross: (50000 - 47900) x 0.02 = 42
    # fees:  0.55 at the entry, 0.02 x 47900 x 0.00055 = 0.5269 at the exit
    # net:   42 - 0.55 - 0.5269 = 40.9231
    assert D(closed["pnl"]) == D(42) - D("0.55") - D("0.5269") == D("40.9231")
    assert "BTCUSDT" not in bybit.books.linear.positions  # flat: not long
