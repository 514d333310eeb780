"""A user's whole flow on OKX (API v5, the loopback fake), spot and USDT perpetual swap, through
real ccxt: every figure by hand."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.orders.tracker import track_orders
from tests.factories import Actor
from tests.fakes.okx import FakeOkx
from tests.venues.flow import (
    bad_credentials_are_refused,
    cancel_a_resting_limit,
    connect,
    lost_reply_is_found,
    signal,
    tick_on_venue_prices,
)

ORDERS = ("POST", "/api/v5/trade/batch-orders")


async def test_spot_flow(user: Actor, ctx: AppContext, okx: FakeOkx) -> None:
    conn = await connect(user, okx, "okx")
    assert conn["status"] == "active"
    assert okx.requests_to("GET", "/api/v5/account/balance")  # signed, checked by the fake
    # Spot markets only: one request for the instruments.
    assert [r.params for r in okx.requests_to("GET", "/api/v5/public/instruments")] == [
        {"instType": "SPOT"}
    ]
    balance = await user.ok("GET", f"/api/v1/connections/{conn['id']}/balance")
    assert balance["USDT"] == {"free": "10000", "used": "0", "total": "10000"}
    assert balance["BTC"] == {"free": "1", "used": "0", "total": "1"}

    execution = await signal(user, conn, sl_price="49000", tp_price="52000")
    # 1000 USDT / 50000 = 0.02 BTC (the lot is 0.00000001)
    assert execution["status"] == "filled" and execution["quantity"] == "0.02"
    [order] = okx.orders
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    # OKX takes letters and digits only: the compact id, found again by `clOrdId`.
    assert order.client_id == log["client_order_id"] == f"es{log['signal_id']}x{conn['id']}e"
    assert log["order_id"] == order.id and log["average_price"] == "50000"
    # OKX answers an order with its ids only: its state was read back, never guessed.
    assert okx.requests_to("GET", "/api/v5/trade/order")
    # The fee, 0.15 %, is taken from the BTC received: 0.02 x 0.0015 = 0.00003 BTC
    assert log["fee"] == "0.00003" and log["fee_currency"] == "BTC"
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    # held: 0.02 - 0.00003 = 0.01997 BTC; the fee is worth 0.00003 x 50000 = 1.5 USDT
    assert position["quantity"] == "0.01997" and position["fees"] == "1.5"
    assert position["entry_price"] == "50000" and position["sl_price"] == "49000"

    okx.set_price("BTC-USDT", "48900")  # through the stop loss
    await tick_on_venue_prices(ctx)
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"
    sell = okx.orders[-1]
    assert sell.side == "sell" and sell.qty == D("0.01997") and not sell.reduce_only
    # gross: (48900 - 50000) x 0.01997 = -21.967
    # fees:  the entry's 1.5, and the exit's 0.01997 x 48900 x 0.0015 = 1.4647995 USDT
    # net:   -21.967 - 1.5 - 1.4647995 = -24.9317995
    gross = (D(48900) - D(50000)) * D("0.01997")
    fees = D("1.5") + D("0.01997") * D(48900) * D("0.0015")
    assert D(closed["pnl"]) == gross - fees == D("-24.9317995")
    assert closed["fees"] == "2.9647995" and closed["close_price"] == "48900"

    await cancel_a_resting_limit(user, conn, "45000")
    assert okx.orders[-1].status == "canceled"  # read back after OKX's ids-only answer
    await lost_reply_is_found(user, ctx, okx, conn)
    await bad_credentials_are_refused(user, okx, "okx")


async def test_swap_flow_in_contracts(user: Actor, ctx: AppContext, okx: FakeOkx) -> None:
    conn = await connect(user, okx, "okx", market_type="swap", leverage="5")
    assert okx.requests_to("GET", "/api/v5/account/config")  # one-way (net) mode: accepted
    assert [r.params for r in okx.requests_to("GET", "/api/v5/public/instruments")] == [
        {"instType": "SWAP"}
    ]
    balance = await user.ok("GET", f"/api/v1/connections/{conn['id']}/balance")
    assert balance["USDT"] == {"free": "10000", "used": "0", "total": "10000"}

    # BTC/USDT on a swap account is the linear perpetual BTC-USDT-SWAP, 0.01 BTC a contract:
    # 1000 USDT / (50000 x 0.01) = 2 contracts.
    execution = await signal(user, conn, sl_price="49000", tp_price="52000")
    assert execution["status"] == "filled" and execution["quantity"] == "2"
    [order] = okx.orders
    assert order.inst.id == "BTC-USDT-SWAP" and order.qty == 2 and not order.reduce_only
    [lever] = okx.requests_to("POST", "/api/v5/account/set-leverage")
    assert lever.params["lever"] == 5 and lever.params["mgnMode"] == "isolated"
    # fee: 2 x 0.01 x 50000 x 0.05 % = 0.5 USDT
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    assert position["quantity"] == "2" and position["fees"] == "0.5"
    assert position["leverage"] == "5"

    okx.set_price("BTC-USDT-SWAP", "48900")
    await tick_on_venue_prices(ctx)
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"
    exit_order = okx.orders[-1]
    assert exit_order.side == "sell" and exit_order.qty == 2 and exit_order.reduce_only
    # gross: (48900 - 50000) x 2 contracts x 0.01 = -22
    # fees:  0.5 at the entry, 2 x 0.01 x 48900 x 0.0005 = 0.489 at the exit
    # net:   -22 - 0.5 - 0.489 = -22.989 (not -2298.9: a contract is 0.01 BTC)
    assert D(closed["pnl"]) == D(-22) - D("0.5") - D("0.489") == D("-22.989")
    assert closed["fees"] == "0.989"
    free = okx.book.balance("USDT")[0]
    assert free == D(10000) - D("22.989")  # the venue's own account agrees to the last digit

    await cancel_a_resting_limit(user, conn, "45000")
    await lost_reply_is_found(user, ctx, okx, conn)
    await bad_credentials_are_refused(user, okx, "okx", "swap")


async def test_a_refusal_keeps_okx_s_own_reason(user: Actor, okx: FakeOkx) -> None:
    conn = await connect(user, okx, "okx", market_type="swap")
    okx.refuse_next_orders(1, "insufficient", "margin")
    execution = await signal(user, conn)
    # OKX nests the reason in data[0].sCode / sMsg under "All operations failed".
    assert execution["status"] == "rejected" and execution["error_code"] == "insufficient_funds"
    assert "51008" in execution["error_message"]
    assert "Insufficient USDT margin" in execution["error_message"]
    assert okx.orders == []


async def test_an_unread_ids_only_answer_stays_pending_never_guessed(
    user: Actor, ctx: AppContext, okx: FakeOkx
) -> None:
    """The order is placed (OKX answers its ids) and reading it back fails: it is recorded
    `pending` with the venue's order id, not `open`, and the tracker records what it became."""
    conn = await connect(user, okx, "okx", market_type="swap")
    reads = 1 + ctx.settings.exchange_read_retries
    okx.fail_next("GET", "/api/v5/trade/order", reads)
    execution = await signal(user, conn)
    assert execution["status"] == "pending" and execution["position_id"] is None
    [order] = okx.orders
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert log["order_id"] == order.id and log["status"] == "pending"
    await track_orders(ctx, now=utcnow() + timedelta(seconds=10))
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert log["status"] == "filled" and log["position_id"] is not None
    assert len(okx.requests_to(*ORDERS)) == 1
