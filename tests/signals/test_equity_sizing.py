"""Sizing on what the account is truly worth and what the trade truly costs, end to end on
paper accounts; every figure worked out by hand beside it."""

from __future__ import annotations

from execution_service.context import AppContext
from tests.factories import Actor, paper_setup
from tests.workers.test_monitor import open_position, tick_at


async def test_a_risk_percent_stop_out_loses_the_percent_fees_and_slippage_included(
    user: Actor, ctx: AppContext
) -> None:
    acct = await paper_setup(
        user,
        price="100",
        paper={"fee_rate": "0.001", "slippage_bps": "10"},
        position_size_mode="risk_percent",
        position_size_value="1",
    )
    pid = await open_position(acct, sl_price="95")
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    # Fills expected at 100.1 (10 bps against) and, stopped, at 95 x 0.999 = 94.905. Per unit:
    # 5.195 + 0.1 % x (100.1 + 94.905) = 5.390005; 1 % of 10000 / 5.390005 = 18.5528584...
    # -> the paper step 1e-8 -> 18.55285848.
    assert (position["quantity"], position["entry_price"]) == ("18.55285848", "100.1")
    await tick_at(ctx, acct, "95")
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    # (94.905 - 100.1) x q = -96.3820998036; fees 1.857141133848 + 1.7607590340444;
    # -18.55285848 x 5.390005 = -99.9999999714924: 1 % of 10000, short by less than a step.
    assert (position["closed_reason"], position["close_price"]) == ("sl", "94.905")
    assert position["pnl"] == "-99.9999999714924"
    balance = await user.ok("GET", f"/api/v1/connections/{acct.conn_id}/balance")
    # The paper ledger and the position's agree to the last digit: 10000 - 99.9999999714924.
    assert balance["USDT"]["total"] == "9900.0000000285076"


async def test_equity_counts_the_open_loss(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="10"
    )
    await open_position(acct)  # 10 @ 100: 1000 of the 10000 in the position
    await tick_at(ctx, acct, "90")  # unrealised (90 - 100) x 10 = -100
    await user.ok(
        "PATCH",
        f"/api/v1/presets/{acct.preset['id']}",
        json={"position_size_mode": "risk_percent", "position_size_value": "1"},
    )
    sized = await acct.signal(sl_price="85")
    # Equity 9000 free + 1000 in the position - 100 open loss = 9900; 1 % = 99 at risk;
    # 90 - 85 = 5 per unit -> 19.8 (the quote balance alone, 10000, would size 20).
    assert sized["executions"][0]["quantity"] == "19.8", sized


async def test_the_daily_loss_limit_counts_partial_exits_and_the_open_loss(
    user: Actor, ctx: AppContext
) -> None:
    acct = await paper_setup(
        user,
        price="100",
        paper={"balance": {"USDT": "1000"}},
        position_size_mode="fixed_quantity",
        position_size_value="5",
        max_daily_loss_percent="5",
    )
    pid = await open_position(acct)  # 5 @ 100 = 500
    await acct.price("92")
    await user.ok("POST", f"/api/v1/positions/{pid}/close", json={"quantity": "2"})
    # Realised today: 2 x (92 - 100) = -16, on a position still open; unrealised on the 3
    # left: 3 x -8 = -24. The day's result -40 on a day start of 1000 - 16 - 24 + 40 = 1000:
    # 4 %, under the 5 % limit.
    ok = await acct.signal()
    assert ok["executions"][0]["status"] == "filled", ok
    await tick_at(ctx, acct, "90")
    # Now 3 x -10 + 5 x (90 - 92) = -40 open, -16 realised: -56 >= 5 % of 1000 = 50.
    # (Counting only positions closed today, as before, it would see no loss at all.)
    refused = await acct.signal()
    assert refused["executions"][0]["error_code"] == "daily_loss_limit", refused
