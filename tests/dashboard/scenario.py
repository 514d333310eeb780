"""A trader's week, built through the API: two paper accounts with pushed prices, signals, closes by
hand and by the monitor (stop loss, take profit, trailing stop), open positions with stops, a
refused order, and another user's position that must not show.

The service closes positions at the present, so a week of history is made by moving six finished
trades back one day each (their open and close times, and their orders' fills) and recomputing
the days they left and joined with the analytics service, with each account's balance the day
before the first trade.
Every figure the dashboard shows then comes from these rows, through the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import update

from execution_service.analytics import service as analytics
from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.enums import Purpose
from execution_service.models import ExecutionLog, ExecutionPosition
from execution_service.workers.analytics import analytics_tick
from execution_service.workers.monitor import monitor_tick
from tests.factories import Actor, PaperSetup

BTC, ETH, SOL = "BTC/USDT", "ETH/USDT", "SOL/USDT"
FEES = {"fee_rate": "0.001", "slippage_bps": "2"}


@dataclass
class Week:
    btc: PaperSetup  # "BTC trend": 0.2 BTC a trade, SL 2 %, TP 4 %, trailing stop 1.5 %
    eth: PaperSetup  # "ETH/SOL swing" (swap): 2 a trade, stops per signal
    history: list[int]  # the trades moved back, oldest first
    open: list[int]  # still open: BTC long (trailing), ETH short (SL and TP), SOL long (none)
    closed_today: int
    theirs: int  # another user's open position


async def account(
    actor: Actor,
    name: str,
    balance: str,
    prices: dict[str, str],
    market_type: str = "swap",  # the scenario shorts, at the preset's leverage
    **preset: Any,
) -> PaperSetup:
    p = await actor.preset(name=f"{name} preset", position_size_mode="fixed_quantity", **preset)
    dc = await actor.data_connection(name=f"{name} prices")
    for symbol, price in prices.items():
        await actor.push_price(dc["id"], symbol, price)
    paper = {"balance": {"USDT": balance}, **FEES}
    conn = await actor.paper_connection(
        name=name,
        preset_id=p["id"],
        data_connection_id=dc["id"],
        paper=paper,
        market_type=market_type,
    )
    return PaperSetup(actor, p, dc, conn)


async def opened(acct: PaperSetup, symbol: str, direction: str = "buy", **body: Any) -> int:
    result = await acct.signal(symbol=symbol, direction=direction, **body)
    execution = result["executions"][0]
    assert execution["status"] == "filled", execution
    return int(execution["position_id"])


async def close(acct: PaperSetup, position_id: int) -> None:
    done = await acct.actor.ok("POST", f"/api/v1/positions/{position_id}/close")
    assert done["position"]["status"] == "closed", done


async def tick(ctx: AppContext, acct: PaperSetup, symbol: str, price: str) -> None:
    await acct.price(price, symbol)
    await monitor_tick(ctx)


async def closed_by(acct: PaperSetup, position_id: int, reason: str) -> None:
    position = await acct.actor.ok("GET", f"/api/v1/positions/{position_id}")
    assert (position["status"], position["closed_reason"]) == ("closed", reason), position


async def trades(ctx: AppContext, btc: PaperSetup, eth: PaperSetup) -> list[int]:
    """Six finished trades: by hand, stop loss, take profit, by hand, trailing stop, by hand."""
    one = await opened(btc, BTC)
    await btc.price("65500", BTC)
    await close(btc, one)  # a win by hand
    two = await opened(btc, BTC)
    await tick(ctx, btc, BTC, "64150")
    await closed_by(btc, two, "sl")
    three = await opened(eth, ETH, "sell", sl_price="3480", tp_price="3300")
    await tick(ctx, eth, ETH, "3290")
    await closed_by(eth, three, "tp")
    four = await opened(eth, ETH)
    await eth.price("3250", ETH)
    await close(eth, four)  # a loss by hand
    await btc.price("64000", BTC)
    five = await opened(btc, BTC)
    await tick(ctx, btc, BTC, "66000")  # the trailing stop follows to 65010
    await tick(ctx, btc, BTC, "65000")
    await closed_by(btc, five, "trailing_stop")
    six = await opened(eth, ETH)
    await eth.price("3320", ETH)
    await close(eth, six)
    return [one, two, three, four, five, six]


async def move_back(ctx: AppContext, week: list[int], balances: dict[int, str]) -> None:
    """Trade n of `week` (oldest first) closes len(week) - n days ago, its orders filled when it
    opened and closed; each account's balance is recorded on the day before the first, as the
    analytics worker would have."""
    today = utcnow().date()
    days: set[tuple[int, date]] = set()
    async with ctx.session_factory() as session:
        for n, position_id in enumerate(week):
            day = today - timedelta(days=len(week) - n)
            closed_at = datetime.combine(day, time(9 + n, 7 * n), UTC)
            opened_at = closed_at - timedelta(minutes=35 + 50 * n)
            moved = await session.execute(
                update(ExecutionPosition)
                .where(ExecutionPosition.id == position_id)
                .values(opened_at=opened_at, closed_at=closed_at)
                .returning(ExecutionPosition.execution_connection_id)
            )
            connection_id = moved.scalar_one()
            for purpose, at in ((Purpose.entry, opened_at), (Purpose.exit, closed_at)):
                await session.execute(
                    update(ExecutionLog)
                    .where(ExecutionLog.position_id == position_id, ExecutionLog.purpose == purpose)
                    .values(created_at=at, executed_at=at)
                )
            days |= {(connection_id, day), (connection_id, today)}
        for connection_id, day in sorted(days):
            await analytics.refresh_day(session, connection_id, day)
        start = today - timedelta(days=len(week) + 1)
        for connection_id, balance in balances.items():
            amount = Decimal(balance)
            await analytics.snapshot_balance(session, connection_id, start, amount, amount, True)
        await session.commit()


async def build_week(ctx: AppContext, user: Actor, other_user: Actor) -> Week:
    btc = await account(
        user,
        "BTC trend",
        "50000",
        {BTC: "64000"},
        position_size_value="0.2",
        default_sl_percent="2",
        default_tp_percent="4",
        trailing_stop_percent="1.5",
    )
    eth = await account(  # a swap account: it goes short too (a spot one cannot)
        user,
        "ETH/SOL swing",
        "20000",
        {ETH: "3400", SOL: "150"},
        market_type="swap",
        position_size_value="2",
    )
    history = await trades(ctx, btc, eth)
    await move_back(ctx, history, {btc.conn_id: "50000", eth.conn_id: "20000"})
    today = await opened(eth, ETH)
    await eth.price("3335", ETH)
    await close(eth, today)
    refused = await btc.signal(sl_price="70000")  # a stop above a long's entry
    assert refused["executions"][0]["status"] == "rejected", refused
    await btc.price("65000", BTC)
    still_open = [
        await opened(btc, BTC),
        await opened(eth, ETH, "sell", sl_price="3400", tp_price="3150"),
        await opened(eth, SOL),
    ]
    await eth.price("3301.5", ETH)
    await eth.price("152.37", SOL)
    await tick(ctx, btc, BTC, "65800")  # marks every open position; the trailing stop follows
    theirs = await account(other_user, "theirs", "90000", {BTC: "65000"}, position_size_value="1")
    their_position = await opened(theirs, BTC)
    await analytics_tick(ctx)  # today's balance and equity snapshots
    return Week(btc, eth, history, still_open, today, their_position)
