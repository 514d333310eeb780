"""The position monitor, one tick at a time with prices the test sets; every figure by hand."""

from __future__ import annotations

from typing import Any

import pytest

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.positions import watch
from execution_service.workers.monitor import monitor_tick
from tests.factories import Actor, PaperSetup, paper_setup
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection, signal


async def open_position(acct: PaperSetup, **signal: Any) -> int:
    result = await acct.signal(**signal)
    assert result["executions"][0]["status"] == "filled", result
    return int(result["executions"][0]["position_id"])


async def tick_at(ctx: AppContext, acct: PaperSetup, price: str) -> None:
    await acct.price(price)
    await monitor_tick(ctx)


async def test_prices_and_unrealised_pnl_are_written(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="3"
    )
    pid = await open_position(acct, sl_price="90", tp_price="120")
    await tick_at(ctx, acct, "104.5")
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    # (104.5 - 100) * 3 = 13.5 unrealised; 13.5 / 300 = 4.5%
    assert position["current_price"] == "104.5" and position["pnl"] == "13.5"
    assert position["pnl_percentage"] == "4.5" and position["status"] == "open"
    assert position["last_price_update_at"]


async def test_stop_loss_closes(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="2"
    )
    pid = await open_position(acct, sl_price="95", tp_price="120")
    await tick_at(ctx, acct, "95.01")
    assert (await user.ok("GET", f"/api/v1/positions/{pid}"))["status"] == "open"
    await tick_at(ctx, acct, "94")
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    # The stop rested in the simulator at 95 and fired as the price went through it (no
    # slippage set): (95 - 100) * 2 = -10, not the 94 the tick saw
    assert position["status"] == "closed" and position["closed_reason"] == "sl"
    assert position["pnl"] == "-10" and position["close_price"] == "95"


async def test_take_profit_closes_a_short(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(
        user,
        market_type="swap",
        price="100",
        position_size_mode="fixed_quantity",
        position_size_value="2",
    )
    pid = await open_position(acct, direction="sell", sl_price="110", tp_price="90")
    await tick_at(ctx, acct, "89.5")
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    assert (
        position["closed_reason"] == "tp" and position["pnl"] == "20"
    )  # at its level: (100 - 90) * 2


async def test_trailing_stop_tracks_the_best_price(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(
        user,
        price="100",
        position_size_mode="fixed_quantity",
        position_size_value="1",
        trailing_stop_percent="10",
    )
    pid = await open_position(acct)
    opened = await user.ok("GET", f"/api/v1/positions/{pid}")
    assert (opened["best_price"], opened["trailing_stop_price"]) == ("100", "90")
    # best 130 -> trailing stop at 117; the API shows the level the monitor acts on
    for price, best, level in (("110", "110", "99"), ("130", "130", "117"), ("120", "130", "117")):
        await tick_at(ctx, acct, price)
        position = await user.ok("GET", f"/api/v1/positions/{pid}")
        assert position["status"] == "open"
        assert (position["best_price"], position["trailing_stop_price"]) == (best, level)
        listed = await user.ok("GET", "/api/v1/positions", params={"connection_id": acct.conn_id})
        assert listed["items"] == [position]
    await tick_at(ctx, acct, "117")
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    assert position["closed_reason"] == "trailing_stop" and position["pnl"] == "17"


async def test_break_even_moves_the_stop(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(
        user,
        price="100",
        position_size_mode="fixed_quantity",
        position_size_value="1",
        break_even_trigger_rr="2",
    )
    pid = await open_position(acct, sl_price="96")
    await tick_at(ctx, acct, "107.99")  # risk 4, needs 8 of profit
    assert (await user.ok("GET", f"/api/v1/positions/{pid}"))["sl_price"] == "96"
    await tick_at(ctx, acct, "108")
    assert (await user.ok("GET", f"/api/v1/positions/{pid}"))["sl_price"] == "100"
    await tick_at(ctx, acct, "100")
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    assert position["closed_reason"] == "sl" and position["pnl"] == "0"


async def test_partial_take_profits(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="10"
    )
    pid = await open_position(
        acct,
        sl_price="90",
        take_profits=[
            {"price": "110", "close_percent": "50"},
            {"price": "120", "close_percent": "50"},
        ],
    )
    await tick_at(ctx, acct, "111")
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    # 5 of 10 closed at the level, 110 (the tick saw 111): +50 realised, 5 left
    assert (
        position["status"] == "open"
        and position["quantity"] == "5"
        and position["realized_pnl"] == "50"
    )
    assert position["take_profits"][0] == {"price": "110", "close_percent": "50"}
    await tick_at(ctx, acct, "112")  # the first level is done: nothing more happens
    assert (await user.ok("GET", f"/api/v1/positions/{pid}"))["quantity"] == "5"
    await tick_at(ctx, acct, "120")
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    assert position["status"] == "closed" and position["closed_reason"] == "tp"
    assert position["pnl"] == "150"  # 50 + 5 * 20
    exits = await user.ok(
        "GET", "/api/v1/logs", params={"connection_id": acct.conn_id, "status": "filled"}
    )
    assert sorted(e["quantity"] for e in exits["items"] if e["purpose"] == "exit") == ["5", "5"]


async def test_a_stale_latest_price_is_ignored(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="1"
    )
    pid = await open_position(acct, sl_price="95")
    other = await user.data_connection()
    await user.ok(
        "PATCH", f"/api/v1/connections/{acct.conn_id}", json={"data_connection_id": other["id"]}
    )
    await user.push_price(other["id"], "BTC/USDT", "80", timestamp="2020-01-01T00:00:00Z")
    await monitor_tick(ctx)
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    assert position["status"] == "open" and position["current_price"] == "100"


async def test_a_refused_exit_is_retried_after_the_cooldown_not_every_tick(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(
        user,
        fake_binance,
        position_size_mode="fixed_quantity",
        position_size_value="0.001",
        stops_on_venue=False,  # the monitor's exits, refused
    )
    execution = await signal(user, conn, sl_price="45000")
    fake_binance.set_price("BTC/USDT", "44000")
    fake_binance.reject_next_orders(5, code=-1013, msg="Filter failure: LOT_SIZE")
    for _ in range(3):
        await monitor_tick(ctx)
    exits = await user.ok(
        "GET", "/api/v1/logs", params={"connection_id": conn["id"], "status": "rejected"}
    )
    assert exits["total"] == 1 and exits["items"][0]["error_code"] == "invalid_order"
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    assert position["status"] == "open"  # still watched; the next attempt comes after the cooldown
    fake_binance.reject_next_orders(0)


# --- every price of a tick is judged, in order, and a bar by its low and high ---------------


async def test_two_prices_in_one_tick_fire_the_trailing_stop(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(
        user,
        price="100",
        position_size_mode="fixed_quantity",
        position_size_value="1",
        trailing_stop_percent="5",
    )
    pid = await open_position(acct)
    await acct.price("110")  # best 110: the trailing stop rises to 104.5
    await acct.price("104")  # ... and is hit, before any tick saw 110
    await monitor_tick(ctx)
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    # Closed at the trailing stop's level, 104.5, where it rested in the simulator (the last
    # price is 104): 1 x (104.5 - 100) = 4.5.
    assert (position["closed_reason"], position["close_price"], position["pnl"]) == (
        "trailing_stop",
        "104.5",
        "4.5",
    )


async def test_a_bar_whose_low_crosses_the_stop_closes_the_position(
    user: Actor, ctx: AppContext
) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="1"
    )
    pid = await open_position(acct, sl_price="95", tp_price="120")
    bar = {"symbol": "BTC/USDT", "timeframe": "1m", "timestamp": utcnow().isoformat()}
    bar |= {"open": "100", "high": "101", "low": "90", "close": "99"}
    await user.ok(
        "POST",
        f"/api/v1/data-connections/{acct.data_connection['id']}/market-data",
        json={"bars": [bar]},
    )
    await monitor_tick(ctx)
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    # The low (90) went through the SL (95): the stop fills at its level, as it would have
    # resting in the simulator (not at the bar's close, 99).
    assert (position["status"], position["closed_reason"], position["close_price"]) == (
        "closed",
        "sl",
        "95",
    )


async def test_a_bar_spanning_both_stops_is_read_as_the_stop_loss_first(
    user: Actor, ctx: AppContext
) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="1"
    )
    pid = await open_position(acct, sl_price="95", tp_price="110")
    bar = {"symbol": "BTC/USDT", "timeframe": "1m", "timestamp": utcnow().isoformat()}
    bar |= {"open": "100", "high": "111", "low": "94", "close": "105"}
    await user.ok(
        "POST",
        f"/api/v1/data-connections/{acct.data_connection['id']}/market-data",
        json={"bars": [bar]},
    )
    await monitor_tick(ctx)
    assert (await user.ok("GET", f"/api/v1/positions/{pid}"))["closed_reason"] == "sl"


async def test_a_wick_judged_by_a_failed_tick_is_judged_again(
    user: Actor, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A price that crossed the SL and came back, while judging it failed: the marks roll back
    with the judging, and the next tick judges the same path and closes the position."""
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="1"
    )
    position_id = await open_position(acct, sl_price="95")
    await acct.price("94")  # through the stop...
    await acct.price("100")  # ... and back
    decide = watch._decide

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("judging failed")

    monkeypatch.setattr(watch, "_decide", failing)
    with pytest.raises(RuntimeError):
        await monitor_tick(ctx)
    monkeypatch.setattr(watch, "_decide", decide)
    report = await monitor_tick(ctx)
    assert report.closes == [position_id]
    closed = await user.ok("GET", f"/api/v1/positions/{position_id}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"
