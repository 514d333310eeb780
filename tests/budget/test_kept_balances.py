"""Kept balances (issue #21): every balance a venue reports is kept in the database, and a
fan-out whose venue budget has no room for fresh reads sizes from it, in any process, instead of
queueing its orders behind 20-weight balance reads. A copy older than one of our executions on
the account is never used."""

from __future__ import annotations

import time
from decimal import Decimal

from execution_service.connections.repository import ConnectionRepository
from execution_service.connections.service import probe
from execution_service.context import AppContext
from execution_service.exchanges.budget import Priority, VenueBudget, VenueLimits, Window, calling
from execution_service.exchanges.ccxt.budgeting import venue_key
from execution_service.exchanges.kept.repository import KeptBalanceRepository
from execution_service.workers.monitor import monitor_tick
from tests.factories import Actor
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection, signal


def _budget(ctx: AppContext, fake: FakeBinance) -> VenueBudget:
    budgets = ctx.adapters.budgets
    assert budgets is not None
    return budgets.get(venue_key("binance", False, fake.base_url), None, VenueLimits(Window(1, 60)))


async def _kept(ctx: AppContext, conn_id: int) -> dict[str, list[str]] | None:
    async with ctx.session_factory() as session:
        kept = await KeptBalanceRepository(session).unspent([conn_id])
    return kept[conn_id][0] if conn_id in kept else None


async def test_a_fan_out_short_of_budget_sizes_from_the_kept_balance_in_a_new_process(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    fake_binance.set_price("BTC/USDT", "30000")
    conn = await ccxt_connection(user, fake_binance)  # activation reads the balance
    await ctx.adapters.kept.flush()  # (written within a second anyway)
    assert (await _kept(ctx, conn["id"]) or {})["USDT"] == ["10000", "0", "10000"]

    await ctx.adapters.evict(conn["id"])  # no copy in memory: as in another process
    budget = _budget(ctx, fake_binance)
    # Room for orders, none for a read that has a kept copy (the background share).
    await budget.report_used(int(budget.limits.weight.limit * 0.7))
    reads = len(fake_binance.requests_to("GET", "/api/v3/account"))
    execution = await signal(user, conn)
    assert execution["status"] == "filled" and execution["quantity"] == "0.03333"
    assert len(fake_binance.requests_to("GET", "/api/v3/account")) == reads  # none sent

    # Our fill changed the account after that copy was read: it is not used again.
    await ctx.adapters.evict(conn["id"])
    assert await _kept(ctx, conn["id"]) is None
    execution = await signal(user, conn, direction="sell")
    assert execution["status"] == "filled"
    assert len(fake_binance.requests_to("GET", "/api/v3/account")) == reads + 1  # read fresh


async def test_a_stop_on_a_spot_account_goes_without_waiting_for_a_balance_read(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    """The monitor's exits read what a spot account holds only within the budget's background
    share: when it has no room, the exit sells the position's own quantity at once instead of
    queueing behind 20-weight reads (a crash through 1,000 accounts' stops)."""
    fake_binance.set_price("BTC/USDT", "30000")
    conn = await ccxt_connection(
        user, fake_binance, position_size_mode="fixed_quantity", position_size_value="0.001"
    )
    assert (await signal(user, conn, sl_price="29000"))["status"] == "filled"
    await ctx.adapters.evict(conn["id"])  # no copy in memory (and ours filled since the kept one)
    budget = _budget(ctx, fake_binance)
    await budget.report_used(int(budget.limits.weight.limit * 0.7))
    reads = len(fake_binance.requests_to("GET", "/api/v3/account"))
    fake_binance.set_price("BTC/USDT", "28000")
    started = time.monotonic()
    await monitor_tick(ctx)
    assert time.monotonic() - started < 2
    listed = await user.ok("GET", "/api/v1/positions", params={"connection_id": conn["id"]})
    (position,) = listed["items"]
    assert position["status"] == "closed" and position["closed_reason"] == "sl"
    assert len(fake_binance.requests_to("GET", "/api/v3/account")) == reads
    sells = [o for o in fake_binance.orders if o.side == "SELL"]
    # The position's own quantity: 0.001 bought, its fee taken in BTC (0.000999), to the step.
    assert sells[-1].orig_qty == Decimal("0.00099")


async def test_a_health_check_the_budget_has_no_room_for_leaves_the_kept_copy(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    """A health check asks the venue, not a copy; when the budget has no room for it, the
    account's copy (our fills booked in) stays for sizing rather than being dropped."""
    fake_binance.set_price("BTC/USDT", "30000")
    conn = await ccxt_connection(user, fake_binance)
    assert (await signal(user, conn))["status"] == "filled"  # the copy now has this fill booked
    budget = _budget(ctx, fake_binance)
    await budget.report_used(int(budget.limits.weight.limit * 0.7))
    async with ctx.session_factory() as session:
        row = await ConnectionRepository(session).by_id(conn["id"])
    assert row is not None
    with calling(Priority.BACKGROUND, within=0.2):
        result = await probe(ctx, row)
    assert result.busy_for is not None  # not checked, not counted
    reads = len(fake_binance.requests_to("GET", "/api/v3/account"))
    assert (await signal(user, conn))["status"] == "filled"
    assert len(fake_binance.requests_to("GET", "/api/v3/account")) == reads  # sized from it
