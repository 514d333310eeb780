"""Day-opening equity is a snapshot, PnL counts on the day it was realised, and a drawdown
percent without a known starting equity is null: real trades on paper accounts through the API,
checked against figures worked out by hand (the arithmetic beside each).

The service books at the present, so "yesterday" is made the way the dashboard's scenario makes
its week: what an account did so far (its orders, positions and analytics rows) is moved back
one day, and the day it left is recomputed."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from execution_service.analytics import service as analytics
from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.models import ExecutionAnalytics, ExecutionLog, ExecutionPosition
from execution_service.workers.analytics import analytics_tick
from execution_service.workers.monitor import monitor_tick
from tests.factories import Actor, PaperSetup, paper_setup

DAY = timedelta(days=1)
FEES = {"fee_rate": "0.001"}  # 0.1 % of each fill's notional, in USDT; no slippage


async def account(user: Actor, quantity: str) -> PaperSetup:
    """10000 USDT (the paper default), BTC/USDT at 100, `quantity` BTC a signal."""
    return await paper_setup(
        user, paper=FEES, position_size_mode="fixed_quantity", position_size_value=quantity
    )


async def row(user: Actor, acct: PaperSetup, day: date) -> dict[str, Any]:
    params = {"connection_id": acct.conn_id, "since": str(day), "until": str(day)}
    [found] = (await user.ok("GET", "/api/v1/analytics/daily", params=params))["items"]
    return found  # type: ignore[no-any-return]


async def summary(user: Actor, acct: PaperSetup, **params: str) -> dict[str, Any]:
    params = {"connection_id": str(acct.conn_id), **params}
    return await user.ok("GET", "/api/v1/analytics/summary", params=params)  # type: ignore[no-any-return]


def pick(found: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {k: found[k] for k in expected}


async def back_one_day(ctx: AppContext, connection_id: int, *, rows: bool = True) -> date:
    """Everything the account did so far happened one day earlier: its orders' times, its
    positions' times and (`rows`) its analytics rows. Returns the day it happened on."""
    today = utcnow().date()
    async with ctx.session_factory() as session:
        logs = await session.scalars(
            select(ExecutionLog).where(ExecutionLog.execution_connection_id == connection_id)
        )
        for log in logs:
            log.created_at -= DAY
            log.executed_at = log.executed_at - DAY if log.executed_at else None
        positions = await session.scalars(
            select(ExecutionPosition).where(
                ExecutionPosition.execution_connection_id == connection_id
            )
        )
        for position in positions:
            position.opened_at -= DAY
            position.closed_at = position.closed_at - DAY if position.closed_at else None
        if rows:
            days = await session.scalars(
                select(ExecutionAnalytics).where(
                    ExecutionAnalytics.execution_connection_id == connection_id
                )
            )
            for day_row in days:
                day_row.date -= DAY
        await session.flush()
        await analytics.refresh_day(session, connection_id, today - DAY)
        await session.commit()
    return today - DAY


async def test_the_opening_equity_is_the_snapshot_before_the_entry_fee(
    user: Actor, ctx: AppContext
) -> None:
    """The issue's case: one entry open, its fee paid. Derived, the opening read 9999.89."""
    acct = await account(user, "1")
    await acct.price("110")
    opened = await acct.signal()
    assert opened["executions"][0]["status"] == "filled"
    await analytics_tick(ctx)  # the balance snapshot
    today = utcnow().date()
    expected = {
        "opening_equity": "10000",  # the equity the signal was sized against, before its fill
        "balance": "9999.89",  # 10000 - the entry fee 1 x 110 x 0.001 = 0.11
        "equity": "9999.89",  # balance + open PnL 0 (marked at its fill price, 110)
        "total_trades": 0,  # nothing closed
        "net_pnl": "-0.11",  # the entry fee, realised at the open
        "max_drawdown": "0.11",  # 10000 -> 9999.89
        "max_drawdown_percent": "0.0011",  # 0.11 / 10000 x 100
    }
    assert pick(await row(user, acct, today), expected) == expected

    # Later that day a second entry and more snapshots move the balance and the equity, never
    # the opening.
    await acct.price("120")
    await acct.signal()  # 1 x 120 x 0.001 = 0.12 fee
    await monitor_tick(ctx)  # marks both positions at 120
    await analytics_tick(ctx)
    await analytics_tick(ctx)
    later = {
        "opening_equity": "10000",
        "balance": "9999.77",  # 9999.89 - 0.12
        "equity": "10009.77",  # 9999.77 + the first position's 1 x (120 - 110) = 10 + 0
        "net_pnl": "-0.23",  # -0.11 - 0.12
        "max_drawdown_percent": "0.0023",  # 0.23 / 10000 x 100
    }
    assert pick(await row(user, acct, today), later) == later
    s = await summary(user, acct, since=str(today))
    assert (s["starting_equity"], s["net_pnl"], s["total_trades"]) == ("10000", "-0.23", 0)


# A long of 2 BTC bought at 100 on day 1; 1 sold at 110 on day 1, the other at 120 on day 2.
# Bookings: entry fee 2 x 100 x 0.001 = 0.2 -> -0.2
#           day 1 exit: (110 - 100) x 1 = 10 gross, fee 110 x 0.001 = 0.11 -> 9.89
#           day 2 exit: (120 - 100) x 1 = 20 gross, fee 120 x 0.001 = 0.12 -> 19.88
# The position: -0.2 + 9.89 + 19.88 = 29.57, one winning trade, closed on day 2.
# Balance: 10000 - 0.2 + 9.89 = 10009.69 after day 1; + 19.88 = 10029.57 after day 2.
# Equity at the end of day 1: 10009.69 + the open 1 BTC's (110 - 100) x 1 = 10 -> 10019.69.
DAY_1 = {
    "opening_equity": "10000",  # the signal's snapshot, before its fee
    "total_trades": 0,  # nothing closed on day 1
    "winning_trades": 0,
    "gross_profit": "0",
    "net_pnl": "9.69",  # -0.2 + 9.89: the partial exit counts on its own day
    "max_drawdown": "0.2",  # 10000 -> 9999.8, then 10009.69
    "max_drawdown_percent": "0.002",  # 0.2 / 10000 x 100
    "balance": "10009.69",
    "equity": "10019.69",
}
DAY_2 = {
    "opening_equity": "10019.69",  # day 1's closing equity: nothing happened in between
    "total_trades": 1,  # the position closed on day 2
    "winning_trades": 1,
    "gross_profit": "29.57",  # the trade's whole net PnL: its statistics are per position
    "net_pnl": "19.88",  # only what day 2 realised
    "max_drawdown": "0",  # 10019.69 -> 10039.57
    "max_drawdown_percent": "0",
    "balance": "10029.57",
    "equity": "10029.57",  # nothing open
}
BOTH_DAYS = {
    "starting_equity": "10000",  # day 1's opening
    "total_trades": 1,
    "gross_profit": "29.57",
    "net_pnl": "29.57",  # 9.69 + 19.88: the whole trade is in the range
    "best_trade": "29.57",
    "max_drawdown": "0.2",  # 10000 -> 9999.8 -> 10009.69 -> 10029.57
    "max_drawdown_percent": "0.002",  # 0.2 / 10000 x 100
}
ONLY_DAY_1 = {
    "starting_equity": "10000",
    "total_trades": 0,
    "net_pnl": "9.69",
    "best_trade": None,
    "max_drawdown": "0.2",
    "max_drawdown_percent": "0.002",
}
ONLY_DAY_2 = {
    "starting_equity": "10019.69",  # day 2's opening snapshot
    "total_trades": 1,
    "net_pnl": "19.88",  # not 29.57: day 1 realised the rest
    "best_trade": "29.57",
    "max_drawdown": "0",
    "max_drawdown_percent": "0",
}


@pytest.mark.parametrize(
    "midnight_snapshot",
    [
        # The analytics worker's first tick of day 2 measures the account (it holds a
        # position): 10009.69 + 10 = 10019.69.
        pytest.param(True, id="opened-by-the-worker-at-midnight"),
        # No tick before the close: the exit is day 2's first activity, and opens it at the
        # equity last measured before it, day 1's closing snapshot: 10019.69 again.
        pytest.param(False, id="opened-by-the-first-fill"),
    ],
)
async def test_a_partial_exit_counts_on_its_day_and_the_rest_on_the_next(
    user: Actor, ctx: AppContext, midnight_snapshot: bool
) -> None:
    acct = await account(user, "2")
    position_id = (await acct.signal())["executions"][0]["position_id"]
    await acct.price("110")
    part = await user.ok("POST", f"/api/v1/positions/{position_id}/close", json={"quantity": "1"})
    assert part["position"]["status"] == "open" and part["position"]["pnl"] == "10"
    await analytics_tick(ctx)  # day 1's last snapshot
    day_1 = await back_one_day(ctx, acct.conn_id)
    day_2 = day_1 + DAY

    if midnight_snapshot:
        await analytics_tick(ctx)
    await acct.price("120")
    closed = await user.ok("POST", f"/api/v1/positions/{position_id}/close")
    assert closed["position"]["pnl"] == "29.57"
    await analytics_tick(ctx)

    assert pick(await row(user, acct, day_1), DAY_1) == DAY_1
    assert pick(await row(user, acct, day_2), DAY_2) == DAY_2
    both = await summary(user, acct, since=str(day_1), until=str(day_2))
    assert pick(both, BOTH_DAYS) == BOTH_DAYS
    one = await summary(user, acct, since=str(day_1), until=str(day_1))
    assert pick(one, ONLY_DAY_1) == ONLY_DAY_1
    two = await summary(user, acct, since=str(day_2), until=str(day_2))
    assert pick(two, ONLY_DAY_2) == ONLY_DAY_2

    # The curve: one point per booking, each on its own day.
    curve = await user.ok("GET", "/api/v1/analytics/equity", params={"connection_id": acct.conn_id})
    assert [(p["timestamp"][:10], p["pnl"], p["equity"]) for p in curve["points"]] == [
        (str(day_1), "0", "10000"),  # the start, at the first booking
        (str(day_1), "-0.2", "9999.8"),  # 10000 - 0.2
        (str(day_1), "9.89", "10009.69"),  # 9999.8 + 9.89
        (str(day_2), "19.88", "10029.57"),  # 10009.69 + 19.88
    ]


async def test_the_drawdown_percent_is_null_without_a_starting_equity(
    user: Actor, ctx: AppContext
) -> None:
    """A day the service never measured (history from before snapshots): its figures are
    there, its drawdown percent is unknown, not 0."""
    acct = await account(user, "1")
    position_id = (await acct.signal())["executions"][0]["position_id"]
    await acct.price("90")
    await user.ok("POST", f"/api/v1/positions/{position_id}/close")
    # The trade moves back a day; its day's snapshot does not (there was none that day).
    day = await back_one_day(ctx, acct.conn_id, rows=False)
    # Bookings: entry fee 100 x 0.001 = 0.1 -> -0.1; exit (90 - 100) x 1 = -10, fee 0.09 ->
    # -10.09; the trade -10.19. Curve from 0 (unknown start): 0, -0.1, -10.19 -> drawdown 10.19.
    expected = {
        "opening_equity": None,
        "total_trades": 1,
        "losing_trades": 1,
        "net_pnl": "-10.19",
        "max_drawdown": "10.19",
        "max_drawdown_percent": None,
    }
    assert pick(await row(user, acct, day), expected) == expected
    s = await summary(user, acct, until=str(day))
    assert (s["starting_equity"], s["max_drawdown"], s["max_drawdown_percent"]) == (
        None,
        "10.19",
        None,
    )
    csv = await user.get(
        "/api/v1/analytics/summary",
        params={"connection_id": acct.conn_id, "until": str(day), "format": "csv"},
    )
    header, values = csv.text.splitlines()
    assert (
        dict(zip(header.split(","), values.split(","), strict=True))["max_drawdown_percent"] == ""
    )  # null: an empty cell
    # Nothing traded before the account existed: no starting equity, no percent either.
    before = await summary(user, acct, until=str(day - DAY))
    assert (before["starting_equity"], before["max_drawdown_percent"]) == (None, None)
