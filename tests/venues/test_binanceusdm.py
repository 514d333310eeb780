"""A user's whole flow on Binance USDⓈ-M futures (the loopback fake) through real ccxt: every
figure by hand."""

from __future__ import annotations

from decimal import Decimal as D

from execution_service.context import AppContext
from tests.factories import Actor
from tests.fakes.binanceusdm import FakeBinanceUsdm
from tests.venues.flow import (
    bad_credentials_are_refused,
    cancel_a_resting_limit,
    connect,
    lost_reply_is_found,
    signal,
    tick_on_venue_prices,
)


async def test_perpetual_flow(user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm) -> None:
    # The monitor's SL and its reduce-only exit (venue-held stops: test_protection.py).
    conn = await connect(
        user, usdm, "binanceusdm", market_type="swap", leverage="5", stops_on_venue=False
    )
    assert conn["status"] == "active"
    assert usdm.requests_to("GET", "/fapi/v1/positionSide/dual")  # one-way mode: accepted
    assert len(usdm.requests_to("GET", "/fapi/v1/exchangeInfo")) == 1
    balance = await user.ok("GET", f"/api/v1/connections/{conn['id']}/balance")
    assert balance["USDT"] == {"free": "10000", "used": "0", "total": "10000"}

    execution = await signal(user, conn, sl_price="49000", tp_price="52000")
    # BTC/USDT is the perpetual BTCUSDT: 1000 / 50000 = 0.02 BTC (step 0.001, notional >= 100)
    assert execution["status"] == "filled" and execution["quantity"] == "0.02"
    [order] = usdm.orders
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert order.client_id == log["client_order_id"] == f"es-{log['signal_id']}-{conn['id']}-e"
    # Isolated margin, then the preset's 5x, before the first order on the symbol.
    [margin] = usdm.requests_to("POST", "/fapi/v1/marginType")
    [lever] = usdm.requests_to("POST", "/fapi/v1/leverage")
    assert margin.params["marginType"] == "ISOLATED" and lever.params["leverage"] == "5"
    # The order's answer has no fee: it comes from the order's trades (0.05 % in USDT):
    # 0.02 x 50000 x 0.0005 = 0.5
    assert usdm.requests_to("GET", "/fapi/v1/userTrades")[0].params["orderId"] == order.id
    assert log["fee"] == "0.5" and log["fee_currency"] == "USDT"
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    assert position["quantity"] == "0.02" and position["fees"] == "0.5"

    usdm.set_price("BTCUSDT", "48900")
    await tick_on_venue_prices(ctx)
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"
    exit_order = usdm.orders[-1]
    assert exit_order.side == "sell" and exit_order.reduce_only and exit_order.qty == D("0.02")
    # gross: (48900 - 50000) x 0.02 = -22
    # fees:  0.5 at the entry, 0.02 x 48900 x 0.0005 = 0.489 at the exit
    # net:   -22 - 0.5 - 0.489 = -22.989
    assert D(closed["pnl"]) == D(-22) - D("0.5") - D("0.489") == D("-22.989")
    assert closed["fees"] == "0.989"
    assert usdm.book.balance("USDT")[0] == D(10000) - D("22.989")

    await cancel_a_resting_limit(user, conn, "45000")
    assert usdm.orders[-1].status == "canceled"
    await lost_reply_is_found(user, ctx, usdm, conn)
    await bad_credentials_are_refused(user, usdm, "binanceusdm", "swap")


async def test_a_futures_refusal_keeps_its_meaning(user: Actor, usdm: FakeBinanceUsdm) -> None:
    """Binance picks its table of error codes by the request's host (fapi.binance.com); with the
    URL rewritten, the futures meaning of -2019 must survive: insufficient margin."""
    conn = await connect(user, usdm, "binanceusdm", market_type="swap")
    usdm.refuse_next_orders(1, "insufficient", "margin")
    execution = await signal(user, conn)
    assert execution["status"] == "rejected" and execution["error_code"] == "insufficient_funds"
    assert execution["error_message"].endswith("-2019 Margin is insufficient.")
