"""Paper accounts honour their market type, end to end through the API: spot borrows nothing and
never shorts; swap is isolated margin, liquidated at its maintenance margin, never below zero."""

from __future__ import annotations

from decimal import Decimal

from execution_service.context import AppContext
from execution_service.orders.tracker import track_orders
from tests.factories import Actor, paper_setup
from tests.workers.test_monitor import open_position, tick_at

TEN_X = dict(
    market_type="swap",
    paper={"balance": {"USDT": "1000"}},
    position_size_mode="fixed_quantity",
    position_size_value="1",
    leverage="10",
)


async def test_a_spot_paper_account_refuses_a_short_and_leverage(user: Actor) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="150"
    )
    # 150 x 100 = 15000 > 10000 free: at leverage 1 (the preset's 3x does not apply on spot).
    await user.ok("PATCH", f"/api/v1/presets/{acct.preset['id']}", json={"leverage": "3"})
    big = await acct.signal()
    assert big["executions"][0]["error_code"] == "insufficient_funds", big
    # Nothing held: a sell would be a short, which spot cannot hold.
    short = await acct.signal(direction="sell", quantity="1")
    assert short["executions"][0]["error_code"] == "insufficient_funds", short
    assert short["executions"][0]["position_id"] is None


async def test_a_gap_through_the_liquidation_price_liquidates_and_equity_stays_at_zero(
    user: Actor, ctx: AppContext
) -> None:
    acct = await paper_setup(user, price="10000", **TEN_X)
    pid = await open_position(acct, sl_price="9500")
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    # Margin 10000 / 10 = 1000. Long liquidation at E (1 - 1/L) / (1 - m), m = 0.5 %:
    # 10000 x 0.9 / 0.995 = 9045.2261306532663316582... -> 18 places, ties to even.
    assert position["liquidation_price"] == "9045.226130653266331658"
    assert (position["leverage"], position["return_on_margin"]) == ("10", "0")
    await tick_at(ctx, acct, "8500")  # a gap through the SL and the liquidation price
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    # (8500 - 10000) x 1 = -1500 at the gap price, but isolated margin loses only the 1000
    # posted; no fee is set. The venue liquidates before our SL order could reach it.
    assert (position["status"], position["closed_reason"]) == ("closed", "liquidation")
    assert (position["pnl"], position["realized_pnl"]) == ("-1000", "-1000")
    balance = await user.ok("GET", f"/api/v1/connections/{acct.conn_id}/balance")
    # 1000 start - 1000 lost = 0: never below zero, and the ledger equals the positions'.
    assert balance["USDT"] == {"free": "0", "used": "0", "total": "0"}


async def test_a_stop_above_the_liquidation_price_is_the_way_out(
    user: Actor, ctx: AppContext
) -> None:
    acct = await paper_setup(user, price="10000", **TEN_X)
    pid = await open_position(acct, sl_price="9500")
    await tick_at(ctx, acct, "9400")  # through the SL, above the liquidation price
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    # The stop fills at its level, 9500 (the tick saw 9400): (9500 - 10000) x 1 = -500;
    # return on margin = -5 % x 10 = -50 %.
    assert (position["closed_reason"], position["pnl"]) == ("sl", "-500")
    assert (position["pnl_percentage"], position["return_on_margin"]) == ("-5", "-50")
    balance = await user.ok("GET", f"/api/v1/connections/{acct.conn_id}/balance")
    assert balance["USDT"]["total"] == "500"  # 1000 - 500


async def test_a_short_is_liquidated_above_its_entry(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(user, price="10000", **TEN_X)
    pid = await open_position(acct, direction="sell")
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    # Short: E (1 + 1/L) / (1 + m) = 10000 x 1.1 / 1.005 = 10945.2736318407960199004975... (18 places)
    assert position["liquidation_price"] == "10945.2736318407960199"
    await tick_at(ctx, acct, "10945.27")
    assert (await user.ok("GET", f"/api/v1/positions/{pid}"))["status"] == "open"
    await tick_at(ctx, acct, "10946")
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    # (10000 - 10946) x 1 = -946: within the 1000 posted, so booked as it is.
    assert (position["closed_reason"], position["pnl"]) == ("liquidation", "-946")


async def test_a_resting_entry_holds_its_funds_until_cancelled(user: Actor) -> None:
    acct = await paper_setup(
        user,
        price="100",
        paper={"balance": {"USDT": "1000"}, "fee_rate": "0.001"},
        position_size_mode="fixed_quantity",
        position_size_value="6",
    )
    resting = await acct.signal(order_type="limit", entry_price="90")
    assert resting["executions"][0]["status"] == "open", resting
    balance = await user.ok("GET", f"/api/v1/connections/{acct.conn_id}/balance")
    # 6 x 90 = 540, and its fee 0.54, held: 1000 - 540.54 = 459.46 free.
    assert balance["USDT"] == {"free": "459.46", "used": "540.54", "total": "1000"}
    second = await acct.signal(order_type="limit", entry_price="90")
    # Another 540 + 0.54 fee does not fit in 459.46: the same funds cannot rest twice.
    assert second["executions"][0]["error_code"] == "insufficient_funds", second
    log_id = resting["executions"][0]["execution_log_id"]
    cancelled = await user.ok("POST", f"/api/v1/logs/{log_id}/cancel")
    assert cancelled["status"] == "cancelled"
    balance = await user.ok("GET", f"/api/v1/connections/{acct.conn_id}/balance")
    assert balance["USDT"] == {"free": "1000", "used": "0", "total": "1000"}


async def test_a_resting_entry_that_fills_books_as_a_market_one_would(
    user: Actor, ctx: AppContext
) -> None:
    acct = await paper_setup(
        user,
        price="100",
        paper={"balance": {"USDT": "1000"}, "fee_rate": "0.001"},
        position_size_mode="fixed_quantity",
        position_size_value="6",
    )
    resting = await acct.signal(order_type="limit", entry_price="90")
    await acct.price("89")
    log_id = resting["executions"][0]["execution_log_id"]
    # The tracker's look-up fills it at its limit: the hold is released, the fill booked.
    await track_orders(ctx)
    log = await user.ok("GET", f"/api/v1/logs/{log_id}")
    assert log["status"] == "filled"
    balance = await user.ok("GET", f"/api/v1/connections/{acct.conn_id}/balance")
    # 540 in the position, the fee 0.54 paid: 1000 - 540 - 0.54 = 459.46 free.
    assert balance["USDT"] == {"free": "459.46", "used": "540", "total": "999.46"}


async def test_the_paper_ledger_is_its_start_plus_every_realised_pnl(user: Actor) -> None:
    acct = await paper_setup(
        user,
        price="100.37",
        paper={"balance": {"USDT": "1000"}, "fee_rate": "0.00075", "slippage_bps": "3"},
        position_size_mode="fixed_quantity",
        position_size_value="3.3",
    )
    pid = await open_position(acct)
    await acct.price("110.11")
    await user.ok("POST", f"/api/v1/positions/{pid}/close", json={"quantity": "1.1"})
    await acct.price("95.07")
    closed = await user.ok("POST", f"/api/v1/positions/{pid}/close")
    realized = closed["position"]["realized_pnl"]
    # Entry 3.3 @ 100.37 x 1.0003 = 100.400111; exits 1.1 @ 110.11 x 0.9997 = 110.076967 and
    # 2.2 @ 95.07 x 0.9997 = 95.041479; each fill pays 0.075 % of its notional:
    # 1.1 x 9.676856 + 2.2 x -5.358632 - 0.075 % x (331.3203663 + 121.0846637 + 209.0912538)
    # = 10.6445416 - 11.7889904 - 0.49612221285 = -1.64057101285.
    assert realized == "-1.64057101285"
    balance = await user.ok("GET", f"/api/v1/connections/{acct.conn_id}/balance")
    assert balance["USDT"]["used"] == "0"
    assert Decimal(balance["USDT"]["total"]) == 1000 + Decimal(realized)
