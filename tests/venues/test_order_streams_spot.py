"""Order updates pushed by Binance spot (the fake's WebSocket API user data stream, through real
ccxt.pro: `userDataStream.subscribe.signature`, then `executionReport` events): a resting limit
that fills, and a venue-held OCO stop that fires, are booked within milliseconds, without a
tracker pass; a subscription with a bad signature is refused."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import pytest

from execution_service.context import AppContext
from execution_service.exchanges.base import AuthFailed
from execution_service.exchanges.ccxt.adapter import CcxtAdapter
from execution_service.orders.protection import settled
from execution_service.outbound.policy import OutboundPolicy
from execution_service.workers.order_streams import OrderStreams
from tests.factories import Actor
from tests.fakes.binance import FakeBinance
from tests.venues.flow import connect, signal, until

SMALL = {"position_size_mode": "fixed_quantity", "position_size_value": "0.01"}


@pytest.fixture
async def spot(ctx: AppContext) -> AsyncIterator[FakeBinance]:
    """A fresh fake of its own (its own keys): no earlier test's stream is subscribed to it."""
    ctx.adapters.forget_prices()
    key, secret = secrets.token_hex(16), secrets.token_hex(16)
    async with FakeBinance(api_key=key, api_secret=secret) as fake:
        yield fake
    unexpected = [(r.method, r.path) for r in fake.unexpected_requests]
    assert not unexpected, f"requests to paths the venue does not serve: {unexpected}"


def _credentials(fake: FakeBinance, secret: str | None = None) -> dict[str, str]:
    return {"api_key": fake.api_key, "api_secret": secret or fake.api_secret}


async def _streaming(fake: FakeBinance, streams: OrderStreams, ctx: AppContext) -> None:
    await streams.tick(ctx)

    async def subscribed() -> bool:
        return fake.user_data.subscribed(fake.api_key) > 0

    await until(subscribed)


def _trades(fake: FakeBinance, client_order_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in fake.user_data.sent
        if e["e"] == "executionReport" and e["c"] == client_order_id and e["x"] == "TRADE"
    ]


async def test_a_resting_limit_filled_is_booked_from_the_pushed_update(
    user: Actor, ctx: AppContext, spot: FakeBinance, streams: OrderStreams
) -> None:
    conn = await connect(user, spot, "binance", credentials=_credentials(spot), **SMALL)
    execution = await signal(user, conn, order_type="limit", entry_price="49500")
    assert execution["status"] == "open", execution
    await _streaming(spot, streams, ctx)
    [subscribe] = [r for r in spot.user_data.requests if "signature" in r["params"]]
    assert subscribe["method"] == "userDataStream.subscribe.signature"
    assert spot.requests_to("GET", "/api/v3/exchangeInfo").__len__() == 1  # markets shared

    path = f"/api/v1/logs/{execution['execution_log_id']}"

    async def filled() -> bool:
        return bool((await user.ok("GET", path))["status"] == "filled")

    async def partly() -> bool:
        return bool((await user.ok("GET", path))["filled_quantity"] == "0.004")

    client_id = (await user.ok("GET", path))["client_order_id"]
    spot.fill_order(client_order_id=client_id, qty="0.004")  # a first trade: PARTIALLY_FILLED
    assert await until(partly) < 1.0
    assert (await user.ok("GET", path))["status"] == "partially_filled"
    spot.set_price("BTC/USDT", "49400")  # crosses the limit: the rest trades
    took = await until(filled)  # no tracker pass: the pushed update did it
    assert took < 1.0
    log = await user.ok("GET", path)
    first, trade = _trades(spot, client_id)
    assert first["X"] == "PARTIALLY_FILLED" and first["l"] == first["z"] == "0.00400000"
    assert trade["l"] == "0.00600000"
    assert trade["X"] == "FILLED" and trade["i"] == int(log["order_id"])
    assert log["average_price"] == "49500" and trade["L"] == "49500.00000000"
    assert log["filled_quantity"] == "0.01" and trade["z"] == "0.01000000"
    assert log["fee"] == "0.00001" and trade["n"] == "0.00000600"  # 0.1 % of the coins bought
    assert log["fee_currency"] == trade["N"] == "BTC"
    assert log["position_id"] is not None


async def test_a_fired_oco_stop_is_booked_from_the_pushed_update(
    user: Actor, ctx: AppContext, spot: FakeBinance, streams: OrderStreams
) -> None:
    conn = await connect(user, spot, "binance", credentials=_credentials(spot), **SMALL)
    execution = await signal(user, conn, sl_price="49000", tp_price="52000")
    assert execution["status"] == "filled", execution
    await settled(ctx)  # the OCO list rests at the venue
    [oco] = spot.order_lists(open_only=True)
    await _streaming(spot, streams, ctx)

    path = f"/api/v1/positions/{execution['position_id']}"

    async def closed() -> bool:
        return bool((await user.ok("GET", path))["status"] == "closed")

    spot.set_price("BTC/USDT", "48900")  # through the stop: the venue sells, expires the target
    took = await until(closed)
    assert took < 1.0
    position = await user.ok("GET", path)
    assert position["closed_reason"] == "sl" and position["close_price"] == "48900"
    stop = next(leg for leg in oco.legs if leg.type == "STOP_LOSS")
    [trade] = _trades(spot, stop.client_order_id)
    assert trade["g"] == oco.order_list_id and trade["L"] == "48900.00000000"
    logs = await user.ok("GET", "/api/v1/logs", params={"purpose": "protect"})
    [exit_log] = [g for g in logs["items"] if g["client_order_id"] == stop.client_order_id]
    assert exit_log["status"] == "filled" and exit_log["average_price"] == "48900"
    assert D(exit_log["fee"]) == D(trade["n"]) and exit_log["fee_currency"] == trade["N"]
    expired = [
        e for e in spot.user_data.sent if e["e"] == "executionReport" and e["x"] == "EXPIRED"
    ]
    assert [e["o"] for e in expired] == ["LIMIT_MAKER"]
    assert [e["L"] for e in spot.user_data.sent if e["e"] == "listStatus"][-1] == "ALL_DONE"
    await settled(ctx)
    assert spot.order_lists(open_only=True) == []


async def test_a_dropped_session_subscribes_again(
    user: Actor, ctx: AppContext, spot: FakeBinance, streams: OrderStreams
) -> None:
    conn = await connect(user, spot, "binance", credentials=_credentials(spot), **SMALL)
    execution = await signal(user, conn, sl_price="49000", tp_price="52000")
    await settled(ctx)
    await _streaming(spot, streams, ctx)
    spot.user_data.drop_all()

    async def dropped() -> bool:
        return spot.user_data.subscribed() == 0

    await until(dropped)

    async def back() -> bool:
        return spot.user_data.subscribed(spot.api_key) == 1

    await until(back, 10)  # a new client, a new signed subscription
    subscribes = [r for r in spot.user_data.requests if "signature" in r["params"]]
    assert len(subscribes) == 2
    spot.set_price("BTC/USDT", "48900")
    path = f"/api/v1/positions/{execution['position_id']}"

    async def closed() -> bool:
        return bool((await user.ok("GET", path))["status"] == "closed")

    assert await until(closed) < 1.0
    assert conn["id"] not in streams.retrying


async def test_a_cancel_is_pushed_under_the_orders_own_client_id(
    ctx: AppContext, spot: FakeBinance
) -> None:
    adapter = CcxtAdapter(
        "binance",
        _credentials(spot),
        api_base_url=spot.base_url,
        outbound=OutboundPolicy(allow_private=True),
    )
    try:
        await adapter.load_markets()
        assert await adapter.watch_order_changes() == []  # subscribed: nothing changed yet
        await adapter.create_order("BTC/USDT", "buy", "limit", D("0.01"), D(40000), "es-1-2-e")
        assert await _changes(adapter) == ["es-1-2-e"]
        await adapter.cancel_order("BTC/USDT", client_order_id="es-1-2-e")
        assert await _changes(adapter) == ["es-1-2-e"]
    finally:
        await adapter.close()
    new, cancel = [e for e in spot.user_data.sent if e["e"] == "executionReport"]
    assert (new["x"], new["c"], new["C"], new["w"]) == ("NEW", "es-1-2-e", "", True)
    assert (cancel["x"], cancel["X"], cancel["C"]) == ("CANCELED", "CANCELED", "es-1-2-e")
    assert cancel["c"] != "es-1-2-e"  # the cancel request's own id
    assert spot.requests_to("GET", "/api/v3/exchangeInfo").__len__() == 1


async def _changes(adapter: CcxtAdapter) -> list[str]:
    for _ in range(20):
        changed = await adapter.watch_order_changes()
        if changed:
            return changed
    return []


async def test_a_bad_signature_is_refused(ctx: AppContext, spot: FakeBinance) -> None:
    client: dict[str, Any] = {
        "api_base_url": spot.base_url,
        "outbound": OutboundPolicy(allow_private=True),
    }
    wrong = CcxtAdapter("binance", _credentials(spot, "wrong-" + spot.api_secret), **client)
    right = CcxtAdapter("binance", _credentials(spot), **client)
    try:
        with pytest.raises(AuthFailed):
            await wrong.watch_order_changes()
        [refusal] = spot.user_data.refused
        assert refusal["status"] == 400 and refusal["error"]["code"] == -1022
        assert refusal["error"]["msg"] == "Signature for this request is not valid."
        assert spot.user_data.subscribed() == 0
        assert await right.watch_order_changes() == []  # the right secret is subscribed
        assert spot.user_data.subscribed(spot.api_key) == 1
    finally:
        await wrong.close()
        await right.close()
