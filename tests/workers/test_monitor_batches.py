"""A batch of closes by the monitor: the day's analytics row is refreshed once after the batch,
and still reflects every close the tick made."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from execution_service.context import AppContext
from execution_service.enums import OrderStatus
from execution_service.exchanges.base import OrderResult
from execution_service.models import ExecutionAnalytics, ExecutionLog, ExecutionPosition
from execution_service.orders import bulk, closes
from execution_service.orders.lifecycle import Recording, apply_result
from execution_service.workers.monitor import monitor_tick
from tests.factories import Actor, paper_setup


@pytest.mark.parametrize("group", [500, 2])  # 2: claimed and sent two at a time
async def test_closes_in_one_tick_are_all_in_the_days_analytics(
    user: Actor, ctx: AppContext, monkeypatch: pytest.MonkeyPatch, group: int
) -> None:
    monkeypatch.setattr(closes, "CLAIM_GROUP", group)
    monkeypatch.setattr(bulk, "GROUP", group)
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="2"
    )
    for _ in range(3):
        result = await acct.signal(sl_price="95", tp_price="120")
        assert result["executions"][0]["status"] == "filled"
    await acct.price("94")
    report = await monitor_tick(ctx)
    assert len(report.closes) == 3
    daily = await user.ok("GET", "/api/v1/analytics/daily", params={"connection_id": acct.conn_id})
    [row] = daily["items"]
    # three stops filled at their level, 95 (the price is 94), on 2 bought at 100: -10 each
    assert row["total_trades"] == 3 and row["losing_trades"] == 3 and row["net_pnl"] == "-30"


async def test_a_deferred_close_names_its_day_instead_of_refreshing_it(
    user: Actor, ctx: AppContext
) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="1"
    )
    result = await acct.signal(sl_price="95")
    position_id = result["executions"][0]["position_id"]
    async with ctx.session_factory() as session:
        position = await session.get(ExecutionPosition, position_id)
        assert position is not None
        exit_log = ExecutionLog(
            execution_connection_id=acct.conn_id,
            position_id=position_id,
            purpose="exit",
            client_order_id=f"deferred-{position_id}",
            symbol="BTC/USDT",
            direction="sell",
            order_type="market",
            quantity=Decimal(1),
            status="pending",
            close_reason="manual",
            plan={"full_close": True},
        )
        session.add(exit_log)
        await session.flush()
        filled = OrderResult(
            "x1",
            exit_log.client_order_id,
            "BTC/USDT",
            "sell",
            "market",
            OrderStatus.filled,
            Decimal(1),
            Decimal(1),
            Decimal(90),
        )
        recording = Recording()
        await apply_result(session, exit_log, filled, adapter="paper", recording=recording)
        days: set[tuple[int, date]] = set()
        await recording.finish(session, analytics_days=days)
        await session.commit()
        closed_day: date = position.closed_at.date()  # type: ignore[union-attr]
        rows = (
            await session.scalars(
                select(ExecutionAnalytics).where(
                    ExecutionAnalytics.execution_connection_id == acct.conn_id
                )
            )
        ).all()
    assert days == {(acct.conn_id, closed_day)}
    # Not refreshed inside the block: the row (if the entry made one) has no trade yet.
    assert all(r.total_trades == 0 for r in rows)
