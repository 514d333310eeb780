"""SL and TP held at the venue (`orders.protection`) on Binance USDⓈ-M (the loopback fake's algo
orders, through real ccxt): placed once the entry fills, the venue closes the position by itself,
the fill is booked from the venue's order, and the sibling leg is cancelled."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

from execution_service.context import AppContext
from execution_service.orders.protection import protect_positions, settled
from execution_service.orders.tracker import track_orders
from tests.factories import Actor
from tests.fakes.binanceusdm import FakeBinanceUsdm
from tests.venues.flow import connect, signal, tick_on_venue_prices


async def _open(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm
) -> tuple[dict[str, Any], dict[str, Any]]:
    conn = await connect(user, usdm, "binanceusdm", market_type="swap", leverage="5")
    execution = await signal(user, conn, sl_price="49000", tp_price="52000")
    assert execution["status"] == "filled", execution
    await settled(ctx)  # the pass the fill started, in the background
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    return conn, position


async def _ticks_until(
    ctx: AppContext, user: Actor, position_id: int, field: str, value: str
) -> dict[str, Any]:
    """Monitor ticks until the position shows it: a tick waits only briefly for the venue's
    prices (a loaded machine's answer is taken by a later tick)."""
    for _ in range(50):
        await tick_on_venue_prices(ctx)
        position = await user.ok("GET", f"/api/v1/positions/{position_id}")
        if position[field] == value:
            return position  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"position {position_id}: {field} is {position[field]}, not {value}")


async def test_sl_and_tp_rest_at_the_venue_and_the_venue_closes(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm
) -> None:
    conn, position = await _open(user, ctx, usdm)
    held = sorted(usdm.algo_orders(open_only=True), key=lambda o: o.order_type)
    assert [(o.order_type, o.trigger_price, o.quantity, o.side, o.reduce_only) for o in held] == [
        ("STOP_MARKET", D(49000), D("0.02"), "SELL", True),
        ("TAKE_PROFIT_MARKET", D(52000), D("0.02"), "SELL", True),
    ]
    assert position["held_sl_price"] == "49000" and position["held_tp_price"] == "52000"
    logs = await user.ok("GET", "/api/v1/logs", params={"connection_id": conn["id"]})
    legs = [log for log in logs["items"] if log["purpose"] == "protect"]
    assert sorted((log["order_type"], log["status"], log["price"]) for log in legs) == [
        ("stop", "open", "49000"),
        ("target", "open", "52000"),
    ]
    assert {o.client_algo_id for o in held} == {log["client_order_id"] for log in legs}

    # A second pass places nothing more: the venue already holds both.
    await protect_positions(ctx)
    assert len(usdm.algo_orders()) == 2

    # The price falls through the SL: the monitor leaves it to the venue, which fires it.
    orders_before = len(usdm.orders)
    usdm.set_price("BTCUSDT", "48900")
    await tick_on_venue_prices(ctx)
    assert len(usdm.orders) == orders_before  # nothing of ours: the venue fired its own
    [fired] = [o for o in usdm.book.orders if o.source == "trigger"]
    assert fired.side == "sell" and fired.reduce_only and fired.qty == D("0.02")

    await track_orders(ctx)  # one tracker pass books the close from the venue's fill
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"
    assert closed["close_price"] == "48900"
    # gross (48900 - 50000) x 0.02 = -22; fees 0.5 at the entry, 0.489 at the stop's fill
    assert closed["fees"] == "0.989" and D(closed["pnl"]) == D("-22.989")
    assert usdm.book.balance("USDT")[0] == D(10000) - D("22.989")

    await protect_positions(ctx)  # the TP outlived its position: cancelled
    assert usdm.algo_orders(open_only=True) == []
    logs = await user.ok("GET", "/api/v1/logs", params={"connection_id": conn["id"]})
    legs = {log["order_type"]: log for log in logs["items"] if log["purpose"] == "protect"}
    assert legs["stop"]["status"] == "filled" and legs["stop"]["average_price"] == "48900"
    assert legs["stop"]["fee"] == "0.489" and legs["target"]["status"] == "cancelled"


async def test_a_manual_close_cancels_the_held_legs_first(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm
) -> None:
    _, position = await _open(user, ctx, usdm)
    closed = await user.ok("POST", f"/api/v1/positions/{position['id']}/close")
    assert closed["execution"]["status"] == "filled", closed
    assert closed["position"]["status"] == "closed" and closed["position"]["held_sl_price"] is None
    assert usdm.algo_orders(open_only=True) == []
    statuses = {o.algo_status for o in usdm.algo_orders()}
    assert statuses == {"CANCELED"}


async def test_a_refused_leg_is_left_to_the_monitor(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm
) -> None:
    conn = await connect(user, usdm, "binanceusdm", market_type="swap", leverage="5")
    usdm.refuse_next_algo_orders(1, "param", "refused for the test")
    execution = await signal(user, conn, sl_price="49000")
    await settled(ctx)
    assert usdm.algo_orders() == []
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    assert position["held_sl_price"] is None
    await protect_positions(ctx)
    assert len(usdm.requests_to("POST", "/fapi/v1/algoOrder")) == 1  # not retried at once
    [leg] = (
        await user.ok(
            "GET", "/api/v1/logs", params={"connection_id": conn["id"], "purpose": "protect"}
        )
    )["items"]
    assert leg["status"] == "rejected" and leg["order_type"] == "stop"
    usdm.set_price("BTCUSDT", "48900")
    closed = await _ticks_until(ctx, user, position["id"], "status", "closed")
    assert closed["closed_reason"] == "sl"  # the monitor emulated the SL


async def test_a_patch_moves_the_venue_stop_first(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm
) -> None:
    _, position = await _open(user, ctx, usdm)
    path = f"/api/v1/positions/{position['id']}"
    usdm.set_price("BTCUSDT", "50500")  # the price is moving while the stop is amended
    amended = await user.ok("PATCH", path, json={"sl_price": "49500"})
    assert amended["sl_price"] == "49500" and amended["held_sl_price"] == "49500"
    stops = [o for o in usdm.algo_orders(open_only=True) if o.order_type == "STOP_MARKET"]
    assert [(o.trigger_price, o.quantity) for o in stops] == [(D(49500), D("0.02"))]
    assert len(usdm.algo_orders(open_only=True)) == 2  # the TP untouched

    # The venue refuses the new level: the old stop still rests, and the position is unchanged.
    usdm.refuse_next_algo_orders(1, "param", "refused for the test")
    refused = await user.patch(path, json={"sl_price": "49800"})
    assert refused.status_code == 502 and refused.json()["code"] == "venue_refused"
    after = await user.ok("GET", path)
    assert after["sl_price"] == "49500" and after["held_sl_price"] == "49500"
    stops = [o for o in usdm.algo_orders(open_only=True) if o.order_type == "STOP_MARKET"]
    assert [o.trigger_price for o in stops] == [D(49500)]

    usdm.set_price("BTCUSDT", "49400")  # through the new level: the venue closes at it
    await track_orders(ctx)
    closed = await user.ok("GET", path)
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"


async def test_a_preset_can_leave_the_stops_to_the_monitor(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm
) -> None:
    conn = await connect(
        user, usdm, "binanceusdm", market_type="swap", leverage="5", stops_on_venue=False
    )
    execution = await signal(user, conn, sl_price="49000", tp_price="52000")
    await settled(ctx)
    await protect_positions(ctx)
    assert usdm.algo_orders() == []
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    assert position["held_sl_price"] is None and position["held_tp_price"] is None


async def test_the_venue_trails_the_trailing_stop(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm
) -> None:
    conn = await connect(
        user, usdm, "binanceusdm", market_type="swap", leverage="5", trailing_stop_percent="2"
    )
    execution = await signal(user, conn, sl_price="49000")
    await settled(ctx)
    legs = {o.order_type: o for o in usdm.algo_orders(open_only=True)}
    assert set(legs) == {"STOP_MARKET", "TRAILING_STOP_MARKET"}
    path = f"/api/v1/positions/{execution['position_id']}"
    position = await user.ok("GET", path)
    assert position["held_trailing_percent"] == "2" and position["held_sl_price"] == "49000"

    usdm.set_price("BTCUSDT", "52000")  # the venue's high-water mark: 52000, stop at 50960
    await tick_on_venue_prices(ctx)
    usdm.set_price("BTCUSDT", "50900")  # 2 % under the best: the venue fires its trailing stop
    await tick_on_venue_prices(ctx)  # the monitor leaves it to the venue: no exit of ours
    assert [o for o in usdm.orders if o.reduce_only] == []
    await track_orders(ctx)
    closed = await user.ok("GET", path)
    assert closed["status"] == "closed" and closed["closed_reason"] == "trailing_stop", closed
    assert closed["close_price"] == "50900"
    await protect_positions(ctx)
    assert usdm.algo_orders(open_only=True) == []  # the SL left behind: cancelled


async def test_a_leg_cancelled_at_the_venue_is_placed_again(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm
) -> None:
    _, position = await _open(user, ctx, usdm)
    [stop] = [t for t in usdm.book.triggers if t.status == "new" and t.kind == "stop"]
    usdm.book.cancel_trigger(stop)  # by hand, on the venue's website, while we were away
    await track_orders(ctx)  # the tracker reads it cancelled ...
    await protect_positions(ctx)  # ... and the pass places a new one
    stops = [o for o in usdm.algo_orders(open_only=True) if o.order_type == "STOP_MARKET"]
    assert [o.trigger_price for o in stops] == [D(49000)]
    assert stops[0].client_algo_id != stop.client_id
    after = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert after["held_sl_price"] == "49000"


async def test_the_venue_stop_follows_a_trailing_stop_it_cannot_trail(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm
) -> None:
    # 12 %: beyond the 0.1-10 % Binance trails itself. The monitor trails; the venue's stop
    # follows the level once it tightens enough.
    conn = await connect(
        user, usdm, "binanceusdm", market_type="swap", leverage="5", trailing_stop_percent="12"
    )
    execution = await signal(user, conn, sl_price="49000")
    await settled(ctx)
    path = f"/api/v1/positions/{execution['position_id']}"
    [stop] = usdm.algo_orders(open_only=True)
    assert (stop.order_type, stop.trigger_price) == ("STOP_MARKET", D(49000))  # over 44000

    usdm.set_price("BTCUSDT", "60000")  # the best: 60000, the trailing level 52800
    await _ticks_until(ctx, user, execution["position_id"], "best_price", "60000")
    await protect_positions(ctx)  # the new stop at 52800 first ...
    await protect_positions(ctx)  # ... then the old one cancelled
    [stop] = usdm.algo_orders(open_only=True)
    assert (stop.order_type, stop.trigger_price) == ("STOP_MARKET", D(52800))
    held = await user.ok("GET", path)
    assert held["held_sl_price"] == "52800" and held["trailing_stop_price"] == "52800"

    usdm.set_price("BTCUSDT", "60050")  # a move under 0.2 %: the venue's stop stays
    await _ticks_until(ctx, user, execution["position_id"], "best_price", "60050")
    await protect_positions(ctx)
    assert [o.trigger_price for o in usdm.algo_orders(open_only=True)] == [D(52800)]

    usdm.set_price("BTCUSDT", "52700")  # through it: the venue closes, as a trailing stop
    await track_orders(ctx)
    closed = await user.ok("GET", path)
    assert closed["status"] == "closed" and closed["closed_reason"] == "trailing_stop"
    assert closed["close_price"] == "52700"


async def test_an_exit_after_the_venue_stop_fired_is_not_sent(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm
) -> None:
    _, position = await _open(user, ctx, usdm)
    usdm.set_price("BTCUSDT", "48900")  # the venue fires the stop; no tracker pass yet
    sent = len(usdm.orders)
    closing = await user.ok("POST", f"/api/v1/positions/{position['id']}/close")
    assert closing["execution"]["status"] == "rejected"
    assert closing["execution"]["error_code"] == "closed_at_venue"
    assert len(usdm.orders) == sent  # nothing of ours went out
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"
