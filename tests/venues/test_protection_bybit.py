"""SL and TP held at the venue on Bybit v5 linear perpetuals (the loopback fake's conditional
orders, through real ccxt): placed once the entry fills, fired by the venue and booked from its
fill, and a new level amended in place, so the venue never holds two stops nor none."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

from execution_service.context import AppContext
from execution_service.orders.protection import protect_positions, settled
from execution_service.orders.tracker import track_orders
from tests.factories import Actor
from tests.fakes.bybit import FakeBybit
from tests.venues.flow import connect, signal, tick_on_venue_prices


async def _open(
    user: Actor, ctx: AppContext, bybit: FakeBybit, **body: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    conn = await connect(user, bybit, "bybit", market_type="swap", leverage="5")
    execution = await signal(user, conn, **({"sl_price": "49000", "tp_price": "52000"} | body))
    assert execution["status"] == "filled", execution
    await settled(ctx)  # the pass the fill started, in the background
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    return conn, position


async def _legs(user: Actor, conn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    params = {"connection_id": conn["id"], "purpose": "protect"}
    logs = await user.ok("GET", "/api/v1/logs", params=params)
    return {log["order_type"]: log for log in logs["items"]}


def _stops(bybit: FakeBybit) -> list[Any]:
    """The live SL orders of the long: sells that fire on a fall (triggerDirection 2)."""
    return [o for o in bybit.conditional_orders(live_only=True) if o.trigger_direction == 2]


async def test_sl_and_tp_rest_as_conditional_orders_and_the_venue_closes(
    user: Actor, ctx: AppContext, bybit: FakeBybit
) -> None:
    conn, position = await _open(user, ctx, bybit)
    held = sorted(bybit.conditional_orders(live_only=True), key=lambda o: o.trigger_direction)
    view = [(o.side, o.trigger_price, o.trigger_direction, o.qty, o.reduce_only) for o in held]
    assert view == [("Sell", D(52000), 1, D("0.02"), True), ("Sell", D(49000), 2, D("0.02"), True)]
    [create_sl] = [
        r.params
        for r in bybit.requests_to("POST", "/v5/order/create")
        if r.params.get("triggerDirection") == 2
    ]
    # What ccxt sends for `stopLossPrice`: a reduce-only conditional market order.
    assert create_sl["orderType"] == "Market" and create_sl["triggerPrice"] == "49000"
    assert create_sl["reduceOnly"] is True and create_sl["category"] == "linear"
    # Looked up among conditional orders (ccxt's `trigger`: orderFilter=StopOrder).
    lookups = bybit.requests_to("GET", "/v5/order/realtime")
    assert any(r.params.get("orderFilter") == "StopOrder" for r in lookups)
    assert position["held_sl_price"] == "49000" and position["held_tp_price"] == "52000"
    legs = await _legs(user, conn)
    assert (legs["stop"]["status"], legs["target"]["status"]) == ("open", "open")
    assert {o.order_link_id for o in held} == {legs["stop"]["client_order_id"],
                                              legs["target"]["client_order_id"]}  # fmt: skip
    await protect_positions(ctx)  # the venue holds both: nothing more is placed
    assert len(bybit.conditional_orders()) == 2

    # Through the SL: the monitor leaves it to the venue, which fires its own order.
    sent = len(bybit.orders)
    bybit.set_price("BTCUSDT", "48900")
    await tick_on_venue_prices(ctx)
    assert len(bybit.orders) == sent  # nothing of ours went out
    assert "BTCUSDT" not in bybit.books.linear.positions
    [fired] = [o for o in bybit.conditional_orders() if o.order_status == "Filled"]
    assert fired.order_link_id == legs["stop"]["client_order_id"]

    await track_orders(ctx)  # one tracker pass books the close from the venue's fill
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"
    assert closed["close_price"] == "48900"
    # gross (48900 - 50000) x 0.02 = -22; fees 0.55 at the entry, 0.02 x 48900 x 0.00055 =
    # 0.5379 at the stop's fill
    assert closed["fees"] == "1.0879" and D(closed["pnl"]) == D("-23.0879")
    assert bybit.books.linear.balance("USDT")[0] == D(10000) - D("23.0879")

    await protect_positions(ctx)  # the TP outlived its position: cancelled
    assert bybit.conditional_orders(live_only=True) == []
    legs = await _legs(user, conn)
    assert legs["stop"]["status"] == "filled" and legs["stop"]["average_price"] == "48900"
    assert legs["stop"]["fee"] == "0.5379" and legs["stop"]["order_id"] == fired.order_id
    assert legs["target"]["status"] == "cancelled"
    [tp] = [o for o in bybit.conditional_orders() if o.trigger_direction == 1]
    assert tp.order_status == "Deactivated"


async def test_a_patch_amends_the_stop_in_place_while_the_price_moves(
    user: Actor, ctx: AppContext, bybit: FakeBybit
) -> None:
    conn, position = await _open(user, ctx, bybit)
    [before] = _stops(bybit)
    seen: list[int] = []
    levels: list[D] = []
    done = asyncio.Event()

    async def watch() -> None:  # the venue's book, every 2 ms
        while not done.is_set():
            stops = _stops(bybit)
            seen.append(len(stops))
            levels.extend(o.trigger_price for o in stops)
            await asyncio.sleep(0.002)

    async def move() -> None:  # up and down, through neither level
        prices = ["50400", "49800", "50900", "49700", "51500", "50100"]
        while not done.is_set():
            for price in prices:
                bybit.set_price("BTCUSDT", price)
                await asyncio.sleep(0.003)

    tasks = [asyncio.create_task(watch()), asyncio.create_task(move())]
    try:
        await asyncio.sleep(0.05)
        path = f"/api/v1/positions/{position['id']}"
        amended = await user.ok("PATCH", path, json={"sl_price": "49500"})
        await asyncio.sleep(0.05)
    finally:
        done.set()
        for task in tasks:
            await task
    assert amended["sl_price"] == "49500" and amended["held_sl_price"] == "49500"
    assert len(seen) > 5 and set(seen) == {1}, seen  # never none, never two
    assert levels[0] == D(49000) and levels[-1] == D(49500)
    [after] = _stops(bybit)
    assert (after.order_id, after.order_link_id) == (before.order_id, before.order_link_id)
    assert after.trigger_price == D(49500) and after.qty == D("0.02") and after.reduce_only
    [amend] = bybit.requests_to("POST", "/v5/order/amend")
    assert amend.params["triggerPrice"] == "49500" and amend.params["orderId"] == before.order_id
    assert not [r for r in bybit.requests_to("POST", "/v5/order/create") if r.at > amend.at]
    assert len(bybit.conditional_orders()) == 2  # no leg placed nor cancelled: the TP untouched

    legs = await _legs(user, conn)
    assert legs["stop"]["price"] == "49500" and legs["stop"]["status"] == "open"
    detail = await user.ok("GET", f"/api/v1/logs/{legs['stop']['id']}")
    assert detail["client_order_id"] == before.order_link_id
    await protect_positions(
        ctx
    )  # the pass finds the venue in step: nothing placed, nothing cancelled
    assert [o.trigger_price for o in _stops(bybit)] == [D(49500)]

    bybit.set_price("BTCUSDT", "49400")  # through the new level: the venue closes at it
    await track_orders(ctx)
    closed = await user.ok("GET", path)
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"
    assert closed["close_price"] == "49400"
    await protect_positions(ctx)  # the TP outlived its position
    assert bybit.conditional_orders(live_only=True) == []


async def test_a_refused_amend_changes_nothing(
    user: Actor, ctx: AppContext, bybit: FakeBybit
) -> None:
    _, position = await _open(user, ctx, bybit)
    path = f"/api/v1/positions/{position['id']}"
    [stop] = _stops(bybit)

    # A level the price already crossed: our own check, nothing sent.
    bybit.set_price("BTCUSDT", "49600")
    await tick_on_venue_prices(ctx)
    crossed = await user.patch(path, json={"sl_price": "49700"})
    assert crossed.status_code == 422
    assert bybit.requests_to("POST", "/v5/order/amend") == []

    # The venue refuses (its 110093: the level is on the wrong side of its own last price).
    bybit.refuse_next_amends(1, "expect_falling", "refused for the test")
    refused = await user.patch(path, json={"sl_price": "49500"})
    assert refused.status_code == 502 and refused.json()["code"] == "venue_refused"
    assert "110093" in refused.json()["detail"]
    after = await user.ok("GET", path)
    assert after["sl_price"] == "49000" and after["held_sl_price"] == "49000"
    [still] = _stops(bybit)
    assert (still.order_id, still.trigger_price) == (stop.order_id, D(49000))

    # The stop already fired at the venue: too late to amend (110001), and the fill is booked.
    bybit.set_price("BTCUSDT", "48950")
    late = await user.patch(path, json={"sl_price": "48800"})
    assert late.status_code == 502 and late.json()["code"] == "venue_refused"
    assert "110001" in late.json()["detail"]
    await track_orders(ctx)
    closed = await user.ok("GET", path)
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"
    assert closed["close_price"] == "48950" and closed["sl_price"] == "49000"


async def test_a_short_is_held_the_other_way_round(
    user: Actor, ctx: AppContext, bybit: FakeBybit
) -> None:
    conn, position = await _open(
        user, ctx, bybit, direction="sell", sl_price="51000", tp_price="48000"
    )
    held = {o.trigger_direction: o for o in bybit.conditional_orders(live_only=True)}
    assert held[1].side == held[2].side == "Buy"  # reduce-only buys
    assert (held[1].trigger_price, held[2].trigger_price) == (D(51000), D(48000))
    bybit.set_price("BTCUSDT", "47900")  # through the TP
    await track_orders(ctx)
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "tp"
    assert closed["close_price"] == "47900"
    await protect_positions(ctx)
    assert bybit.conditional_orders(live_only=True) == []
    legs = await _legs(user, conn)
    assert legs["target"]["status"] == "filled" and legs["stop"]["status"] == "cancelled"
