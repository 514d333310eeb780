"""SL and TP held at Binance spot as one OCO list (`orders.protection`, the fake's orderList/oco,
through real ccxt): the list reserves the coins once; one leg's fill expires the other; an exit
of ours cancels the list first, so the coins it held can be sold."""

from __future__ import annotations

from decimal import Decimal as D

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.models import ExecutionConnection
from execution_service.orders.protection import PROTECTION_RETRY, protect_positions, settled
from execution_service.orders.tracker import track_orders
from tests.factories import Actor
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection, signal
from tests.venues.flow import tick_on_venue_prices

SMALL = {"position_size_mode": "fixed_quantity", "position_size_value": "0.01"}


async def _open(user: Actor, ctx: AppContext, fake: FakeBinance, **body: str) -> dict[str, object]:
    conn = await ccxt_connection(user, fake, **SMALL)
    execution = await signal(user, conn, **body)
    assert execution["status"] == "filled", execution
    await settled(ctx)
    return await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")  # type: ignore[no-any-return]


async def test_an_oco_holds_both_and_the_stop_closes(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    position = await _open(user, ctx, fake_binance, sl_price="49000", tp_price="52000")
    [oco] = fake_binance.order_lists(open_only=True)
    legs = {leg.type: leg for leg in oco.legs}
    assert set(legs) == {"STOP_LOSS", "LIMIT_MAKER"}
    assert legs["STOP_LOSS"].stop_price == D(49000) and legs["LIMIT_MAKER"].price == D(52000)
    held = D(str(position["quantity"]))  # bought 0.01, its fee taken in BTC
    assert legs["STOP_LOSS"].quantity == held and legs["LIMIT_MAKER"].quantity == held
    assert fake_binance.balance("BTC")[1] == held  # reserved once for both legs
    assert position["held_sl_price"] == "49000" and position["held_tp_price"] == "52000"

    fake_binance.set_price("BTC/USDT", "48900")  # through the stop: the venue sells at market
    [oco] = fake_binance.order_lists()
    statuses = {leg.type: leg.status for leg in oco.legs}
    assert statuses == {"STOP_LOSS": "FILLED", "LIMIT_MAKER": "EXPIRED"}
    await track_orders(ctx)
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"
    assert closed["close_price"] == "48900"
    logs = await user.ok("GET", "/api/v1/logs", params={"purpose": "protect", "symbol": "BTC/USDT"})
    mine = {
        log["order_type"]: log["status"]
        for log in logs["items"]
        if log["position_id"] == position["id"]
    }
    assert mine == {"stop": "filled", "target": "cancelled"}
    assert fake_binance.balance("BTC")[1] == 0


async def test_the_target_leg_fills(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    position = await _open(user, ctx, fake_binance, sl_price="49000", tp_price="52000")
    fake_binance.set_price("BTC/USDT", "52100")
    await track_orders(ctx)
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "tp"
    assert closed["close_price"] == "52000"  # the limit leg, at its price


async def test_a_manual_close_cancels_the_list_and_sells(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    position = await _open(user, ctx, fake_binance, sl_price="49000", tp_price="52000")
    closing = await user.ok("POST", f"/api/v1/positions/{position['id']}/close")
    assert closing["execution"]["status"] == "filled", closing
    [oco] = fake_binance.order_lists()
    assert {leg.status for leg in oco.legs} == {"CANCELED"}
    assert fake_binance.balance("BTC")[1] == 0


async def test_a_lone_stop_is_left_to_the_monitor_where_the_market_lists_no_stop_loss(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    """ccxt's 2024 Binance markets list STOP_LOSS_LIMIT, not STOP_LOSS: a stop-limit could rest
    unfilled past a gap while the monitor believed the stop held, so the lone SL stays the
    monitor's (ccxt refuses the type before anything is sent)."""
    position = await _open(user, ctx, fake_binance, sl_price="49000")
    assert [o for o in fake_binance.orders if o.type.startswith("STOP")] == []
    assert position["held_sl_price"] is None
    for _ in range(2):  # the pass asks the market first: no leg row, no refusal logged a minute
        await protect_positions(ctx, now=utcnow() + PROTECTION_RETRY * 2)
    logs = await user.ok("GET", "/api/v1/logs", params={"purpose": "protect"})
    assert [row for row in logs["items"] if row["position_id"] == position["id"]] == []
    fake_binance.set_price("BTC/USDT", "48000")
    for _ in range(50):
        await tick_on_venue_prices(ctx)
        closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
        if closed["status"] == "closed":
            break
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"


async def test_a_lone_stop_rests_where_the_market_lists_stop_loss(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance, **SMALL)
    fake_binance.enable_order_types("STOP_LOSS")  # as Binance's exchangeInfo lists it today
    async with ctx.session_factory() as session:
        row = await session.get(ExecutionConnection, conn["id"])
    assert row is not None
    await (await ctx.adapters.for_connection(row)).load_markets(reload=True)  # the new listing
    execution = await signal(user, conn, sl_price="49000")
    await settled(ctx)
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    [stop] = [o for o in fake_binance.orders if o.type == "STOP_LOSS" and o.status == "NEW"]
    assert stop.stop_price == D(49000) and position["held_sl_price"] == "49000"
