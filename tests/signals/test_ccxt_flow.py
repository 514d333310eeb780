"""The whole flow through real ccxt over loopback to the fake Binance, which checks every
signature: activate, signal, order with our client order id, position, manual close."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.conftest import EXAMPLE_API_KEY, EXAMPLE_API_SECRET
from tests.factories import Actor
from tests.fakes.binance import FakeBinance


async def ccxt_connection(
    user: Actor,
    fake: FakeBinance,
    *,
    secret: str = EXAMPLE_API_SECRET,
    activate: bool = True,
    **preset: Any,
) -> dict[str, Any]:
    p = await user.preset(
        **(preset or {"position_size_mode": "fixed_notional", "position_size_value": "1000"})
    )
    conn = await user.ok(
        "POST",
        "/api/v1/connections",
        201,
        json={
            "name": "binance",
            "adapter": "ccxt",
            "exchange": "binance",
            "api_base_url": fake.base_url,
            "credentials": {"api_key": EXAMPLE_API_KEY, "api_secret": secret},
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


async def test_full_flow(user: Actor, fake_binance: FakeBinance) -> None:
    fake_binance.set_price("BTC/USDT", "30000")
    conn = await ccxt_connection(user, fake_binance)
    assert conn["status"] == "active" and conn["api_key_hint"] == "Eh8A"
    assert fake_binance.requests_to("GET", "/api/v3/account")  # signed, verified by the fake
    balance = await user.ok("GET", f"/api/v1/connections/{conn['id']}/balance")
    assert balance["USDT"] == {"free": "10000", "used": "0", "total": "10000"}

    execution = await signal(user, conn)
    # 1000 / 30000 = 0.0333.. rounded down to the LOT_SIZE step 0.00001
    assert execution["status"] == "filled" and execution["quantity"] == "0.03333"
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    [order] = fake_binance.orders
    assert order.client_order_id == log["client_order_id"] and str(order.orig_qty) == "0.03333"
    assert log["order_id"] == str(order.order_id) and log["average_price"] == "30000"
    assert Decimal(log["fee"]) == Decimal("0.00003333")  # the fake charges 0.1% in the base asset

    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    # The fee came out of the bought BTC: we hold 0.03333 - 0.00003333, and it cost 1 USDT.
    assert position["quantity"] == "0.03329667" and position["fees"] == "0.9999"
    assert position["status"] == "open" and position["entry_price"] == "30000"
    fake_binance.set_price("BTC/USDT", "31000")
    closed = await user.ok("POST", f"/api/v1/positions/{position['id']}/close")
    assert closed["position"]["status"] == "closed" and closed["execution"]["status"] == "filled"
    sell = fake_binance.orders[-1]
    assert sell.side == "SELL" and sell.client_order_id == closed["execution"]["client_order_id"]
    assert str(sell.orig_qty) == "0.03329"  # rounded down to the step; the dust stays
    assert len(fake_binance.orders) == 2
    # 0.03329 sold at 31000: gross 0.03329 x 1000 = 33.29; fees: the entry's 0.9999 and the
    # exit's 0.03329 x 31000 x 0.1 % = 1.03199. The dust (0.03329667 - 0.03329 = 0.00000667 BTC)
    # is still held: its PnL at the close price, 0.00000667 x 1000 = 0.00667, counts too.
    # 33.29 - 0.9999 - 1.03199 + 0.00667 = 31.26478
    gross = Decimal("0.03329") * (Decimal("31000") - Decimal("30000"))
    dust = (Decimal("0.03329667") - Decimal("0.03329")) * (Decimal("31000") - Decimal("30000"))
    fees = Decimal("0.9999") + Decimal("0.03329") * Decimal("31000") * Decimal("0.001")
    assert Decimal(closed["position"]["pnl"]) == gross - fees + dust == Decimal("31.26478")
    assert closed["execution"]["status"] == "filled"


async def test_an_order_under_min_notional_never_reaches_the_exchange(
    user: Actor, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(
        user, fake_binance, position_size_mode="fixed_quantity", position_size_value="0.00001"
    )
    execution = await signal(user, conn)  # 0.00001 * 50000 = 0.5 USDT, under the 5 USDT minimum
    assert execution["status"] == "rejected" and execution["error_code"] == "below_minimum"
    assert fake_binance.requests_to("POST", "/api/v3/order") == []


async def test_exchange_refusals_are_translated(user: Actor, fake_binance: FakeBinance) -> None:
    conn = await ccxt_connection(user, fake_binance)
    fake_binance.reject_next_orders(
        1, code=-2010, msg="Account has insufficient balance for requested action."
    )
    assert (await signal(user, conn))["error_code"] == "insufficient_funds"
    fake_binance.reject_next_orders(1, code=-1013, msg="Filter failure: LOT_SIZE")
    assert (await signal(user, conn))["error_code"] == "invalid_order"
    assert fake_binance.orders == []


async def test_a_bad_secret_puts_the_connection_in_error(
    user: Actor, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(
        user, fake_binance, secret="wrong-secret-" + "x" * 40, activate=False
    )
    refused = await user.post(f"/api/v1/connections/{conn['id']}/activate")
    assert refused.status_code == 409 and refused.json()["code"] == "check_failed"
    after = await user.ok("GET", f"/api/v1/connections/{conn['id']}")
    assert after["status"] == "error" and after["is_active"] is False
    assert after["consecutive_failures"] == 1 and after["last_error"].startswith("auth_failed")


async def test_accept_then_timeout_stays_pending_and_is_not_resent(
    user: Actor, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance)
    fake_binance.hang_next_orders(1)
    execution = await signal(user, conn)
    assert execution["status"] == "pending" and execution["position_id"] is None
    assert "outcome unknown" in execution["error_message"]
    assert len(fake_binance.requests_to("POST", "/api/v3/order")) == 1
    [order] = fake_binance.orders
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert order.client_order_id == log["client_order_id"] and log["status"] == "pending"
