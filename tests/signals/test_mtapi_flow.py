"""A MetaTrader (fx) connection through the service, end to end against the fake mtapi gateway:
activate, a signal sized in lots by risk_percent, SL/TP held by the broker, modify, close with the
broker's PnL in the account currency, and a lost reply found again through comment/magic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.orders.tracker import track_orders
from tests.factories import Actor
from tests.fakes.mtapi import FakeMtapi

CREDENTIALS = {
    "user": "7001234",
    "password": "mt-Passw0rd!",
    "host": "mt4.broker.test",
    "port": "443",
}


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[FakeMtapi]:
    async with FakeMtapi(**CREDENTIALS) as fake:  # type: ignore[arg-type]
        yield fake


@pytest.fixture
async def mt(gateway: FakeMtapi) -> AsyncIterator[FakeMtapi]:
    gateway.reset()
    yield gateway
    assert gateway.unexpected_requests == []


async def fx_connection(user: Actor, gateway: FakeMtapi, **preset: Any) -> dict[str, Any]:
    p = await user.preset(
        **(preset or {"position_size_mode": "risk_percent", "position_size_value": "1"})
    )
    conn = await user.ok(
        "POST",
        "/api/v1/connections",
        201,
        json={
            "name": "mt4",
            "type": "fx",
            "adapter": "mtapi",
            "api_base_url": gateway.base_url,
            "credentials": CREDENTIALS,
            "preset_id": p["id"],
        },
    )
    assert conn["api_key_hint"] is None and conn["credentials_set"]  # a 7-digit login is not hinted
    return await user.ok("POST", f"/api/v1/connections/{conn['id']}/activate")  # type: ignore[no-any-return]


async def test_fx_signal_in_lots_with_broker_stops_modify_and_close(
    user: Actor, mt: FakeMtapi
) -> None:
    conn = await fx_connection(user, mt)
    assert conn["status"] == "active"
    balance = await user.ok("GET", f"/api/v1/connections/{conn['id']}/balance")
    assert balance["USD"]["total"] == "10000"
    result = await user.ok(
        "POST",
        "/api/v1/signals",
        201,
        json={
            "symbol": "EUR/USD",
            "direction": "buy",
            "sl_price": "1.09500",
            "tp_price": "1.12000",
        },
    )
    [execution] = result["executions"]
    # 1% of 10000 USD = 100 at risk; (1.10000 - 1.09500) * 100000 per lot = 500 USD -> 0.2 lots
    assert execution["status"] == "filled" and execution["quantity"] == "0.2"
    [ticket] = mt.opened
    assert (
        ticket.lots == Decimal("0.2")
        and ticket.sl == Decimal("1.095")
        and ticket.tp == Decimal("1.12")
    )
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert ticket.comment == log["client_order_id"] and log["order_id"] == str(ticket.ticket)

    position_id = execution["position_id"]
    await user.ok("PATCH", f"/api/v1/positions/{position_id}", json={"sl_price": "1.09700"})
    assert mt.opened[0].sl == Decimal("1.097") and mt.opened[0].tp == Decimal("1.12")

    mt.set_quote("EURUSD", "1.10500", "1.10510")
    closed = await user.ok("POST", f"/api/v1/positions/{position_id}/close")
    assert mt.opened == [] and closed["execution"]["status"] == "filled"
    position = closed["position"]
    # bought at the ask 1.10010, sold at the bid 1.10500: 0.0049 * 0.2 * 100000 = 98 USD
    assert position["status"] == "closed" and Decimal(position["pnl"]) == Decimal("98")
    assert position["close_price"] == "1.105"


async def test_a_lost_order_reply_is_found_through_the_comment(
    user: Actor, ctx: AppContext, mt: FakeMtapi
) -> None:
    conn = await fx_connection(
        user, mt, position_size_mode="fixed_quantity", position_size_value="0.1"
    )
    mt.hang_next("/OrderSend")
    result = await user.ok(
        "POST", "/api/v1/signals", 201, json={"symbol": "EUR/USD", "direction": "sell"}
    )
    [execution] = result["executions"]
    assert execution["status"] == "pending" and len(mt.opened) == 1
    for _ in range(2):
        await track_orders(ctx, now=utcnow() + timedelta(seconds=10))
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert log["status"] == "filled" and log["order_id"] == str(mt.opened[0].ticket)
    positions = await user.ok("GET", "/api/v1/positions", params={"connection_id": conn["id"]})
    assert positions["total"] == 1 and len(mt.requests_to("/OrderSend")) == 1
