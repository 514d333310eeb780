"""A tick woken by prices judges only the positions those prices belong to; the whole book is
marked once an interval."""

from __future__ import annotations

from execution_service.context import AppContext
from execution_service.workers.monitor import Monitor
from tests.factories import Actor, paper_setup
from tests.workers.test_monitor import open_position


async def test_pushed_prices_name_what_arrived(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(user, price="100")
    ctx.take_arrived_prices()
    await acct.price("101")
    await acct.price("3000", symbol="ETH/USDT")
    dc = int(acct.data_connection["id"])
    assert ctx.prices_changed.is_set()
    assert ctx.take_arrived_prices() == {(dc, "BTC/USDT"), (dc, "ETH/USDT")}
    assert ctx.take_arrived_prices() == set()


async def test_a_woken_tick_judges_only_the_symbols_that_arrived(
    user: Actor, ctx: AppContext
) -> None:
    kw = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}
    woken = await paper_setup(user, price="100", **kw)
    other = await paper_setup(user, price="100", **kw)
    woken_pid = await open_position(woken, sl_price="95")
    other_pid = await open_position(other, sl_price="95")
    monitor = Monitor(exit_wait=None)  # each tick ends when its exits have landed
    await monitor.tick(ctx)  # nothing arrived: the whole book

    await other.price("94")  # through the other's stop, but not what woke the next tick
    ctx.take_arrived_prices()
    await woken.price("94")
    await monitor.tick(ctx)  # within the interval: only the woken data connection's BTC/USDT
    closed = await user.ok("GET", f"/api/v1/positions/{woken_pid}")
    untouched = await user.ok("GET", f"/api/v1/positions/{other_pid}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "sl"
    assert untouched["status"] == "open" and untouched["current_price"] == "100"

    await Monitor(exit_wait=None).tick(
        ctx
    )  # a whole tick (its interval passed) judges every position
    untouched = await user.ok("GET", f"/api/v1/positions/{other_pid}")
    assert untouched["status"] == "closed" and untouched["closed_reason"] == "sl"
