"""Every pre-trade refusal leaves a `rejected` execution log with its stable code."""

from __future__ import annotations

from typing import Any

from tests.factories import Actor, PaperSetup, paper_setup

FQ1 = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}


async def _rejected(acct: PaperSetup, code: str, **signal: Any) -> None:
    result = await acct.signal(**signal)
    [execution] = result["executions"]
    assert execution["status"] == "rejected" and execution["error_code"] == code, execution
    assert execution["position_id"] is None and execution["error_message"]
    log = await acct.actor.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    assert log["status"] == "rejected" and log["error_code"] == code and log["order_id"] is None


async def test_connection_inactive(user: Actor) -> None:
    acct = await paper_setup(user, **FQ1)
    await user.ok("POST", f"/api/v1/connections/{acct.conn_id}/deactivate")
    await _rejected(acct, "connection_inactive")


async def test_no_preset_without_a_quantity(user: Actor) -> None:
    dc = await user.data_connection()
    await user.push_price(dc["id"], "BTC/USDT", "100")
    conn = await user.paper_connection(data_connection_id=dc["id"])
    acct = PaperSetup(user, {}, dc, conn)
    await _rejected(acct, "no_preset")
    filled = await acct.signal(quantity="2")
    assert (
        filled["executions"][0]["status"] == "filled" and filled["executions"][0]["quantity"] == "2"
    )


async def test_missing_stop_loss_for_risk_sizing(user: Actor) -> None:
    acct = await paper_setup(user, position_size_mode="risk_percent", position_size_value="1")
    await _rejected(acct, "missing_stop_loss")
    # 1% of 10000 = 100 at risk, 100 - 95 = 5 per unit -> 20
    sized = await acct.signal(sl_price="95")
    assert sized["executions"][0]["quantity"] == "20"


async def test_default_sl_from_the_preset_sizes_risk(user: Actor) -> None:
    acct = await paper_setup(
        user,
        position_size_mode="risk_percent",
        position_size_value="1",
        default_sl_percent="2",
        default_tp_percent="6",
    )
    signal = await acct.signal()
    # SL 100 * 0.98 = 98, risk 2 per unit, 100 at risk -> 50; TP 106
    assert signal["executions"][0]["quantity"] == "50"
    position = await user.ok("GET", f"/api/v1/positions/{signal['executions'][0]['position_id']}")
    assert position["sl_price"] == "98" and position["tp_price"] == "106"


async def test_max_positions(user: Actor) -> None:
    acct = await paper_setup(user, max_positions=1, **FQ1)
    assert (await acct.signal())["executions"][0]["status"] == "filled"
    await _rejected(acct, "max_positions")


async def test_max_positions_per_symbol(user: Actor) -> None:
    acct = await paper_setup(user, max_positions_per_symbol=1, **FQ1)
    await acct.price("50", symbol="ETH/USDT")
    assert (await acct.signal())["executions"][0]["status"] == "filled"
    await _rejected(acct, "max_positions_per_symbol")
    assert (await acct.signal(symbol="ETH/USDT"))["executions"][0]["status"] == "filled"


async def test_daily_loss_limit(user: Actor) -> None:
    acct = await paper_setup(
        user,
        max_daily_loss_percent="1",
        position_size_mode="fixed_quantity",
        position_size_value="10",
    )
    position_id = (await acct.signal())["executions"][0]["position_id"]
    await acct.price("89")  # lose 110 of a 10000 day start: over 1%
    await user.ok("POST", f"/api/v1/positions/{position_id}/close")
    await _rejected(acct, "daily_loss_limit")


async def test_below_minimum(user: Actor) -> None:
    acct = await paper_setup(user, **FQ1)
    await _rejected(acct, "below_minimum", quantity="0.000000001")  # rounds down to 0 at step 1e-8


async def test_insufficient_funds(user: Actor) -> None:
    acct = await paper_setup(
        user, position_size_mode="fixed_notional", position_size_value="10000.01"
    )
    await _rejected(acct, "insufficient_funds")


async def test_leverage_lets_a_bigger_order_through(user: Actor) -> None:
    acct = await paper_setup(
        user,
        market_type="swap",
        position_size_mode="fixed_notional",
        position_size_value="20000",
        leverage="2",
    )
    signal = await acct.signal()
    assert (
        signal["executions"][0]["status"] == "filled"
        and signal["executions"][0]["quantity"] == "200"
    )
    balance = await user.ok("GET", f"/api/v1/connections/{acct.conn_id}/balance")
    assert balance["USDT"] == {"free": "0", "used": "10000", "total": "10000"}


async def test_no_price(user: Actor) -> None:
    acct = await paper_setup(user, price=None, **FQ1)
    await _rejected(acct, "no_price")


async def test_stops_crossed_at_the_market_price(user: Actor) -> None:
    acct = await paper_setup(user, price="100", **FQ1)
    await _rejected(acct, "invalid_stops", sl_price="101")
    await _rejected(acct, "invalid_stops", direction="sell", tp_price="100.5")


async def test_rejections_are_listed(user: Actor) -> None:
    acct = await paper_setup(user, price=None, **FQ1)
    await acct.signal()
    await acct.signal()
    listed = await user.ok(
        "GET", "/api/v1/logs", params={"status": "rejected", "connection_id": acct.conn_id}
    )
    assert listed["total"] == 2 and {e["error_code"] for e in listed["items"]} == {"no_price"}
