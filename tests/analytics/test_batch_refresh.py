"""A batch of fills refreshes its analytics rows in a few set-based statements
(`analytics.refresh_days`): the rows come out as refreshing each one alone makes them. A
netting sell to three paper accounts closes a position on each, in one transaction."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from execution_service.analytics import service as analytics
from execution_service.analytics.repository import STATS
from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.models import ExecutionAnalytics
from tests.factories import Actor, paper_setup


async def _rows(ctx: AppContext, ids: list[int]) -> dict[int, dict[str, Any]]:
    async with ctx.session_factory() as session:
        rows = await session.scalars(
            select(ExecutionAnalytics).where(ExecutionAnalytics.execution_connection_id.in_(ids))
        )
        return {
            r.execution_connection_id: {
                name: getattr(r, name) for name in (*STATS, "opening_equity", "date")
            }
            for r in rows
        }


async def test_a_batch_refresh_equals_refreshing_each_row(user: Actor, ctx: AppContext) -> None:
    accounts = [
        await paper_setup(
            user,
            paper={"fee_rate": "0.001"},
            position_size_mode="fixed_quantity",
            position_size_value=quantity,
        )
        for quantity in ("1", "2", "3")
    ]
    ids = [a.conn_id for a in accounts]
    await user.ok(
        "POST",
        "/api/v1/signals",
        201,
        json={"symbol": "BTC/USDT", "direction": "buy", "connection_ids": ids},
    )
    for acct in accounts:
        await acct.price("110")
    # No quantity: netting closes each account's position whole (a spot account opens nothing).
    sold = await user.ok(
        "POST",
        "/api/v1/signals",
        201,
        json={"symbol": "BTC/USDT", "direction": "sell", "connection_ids": ids},
    )
    assert sold["by_status"] == {"filled": 3}

    batched = await _rows(ctx, ids)
    assert sorted(batched) == sorted(ids)
    # Fees: 0.1 % of the entry's notional (100q) and of the exit's (110q).
    for acct, q in zip(accounts, (1, 2, 3), strict=True):
        row = batched[acct.conn_id]
        assert row["total_trades"] == 1 and row["winning_trades"] == 1
        assert row["net_pnl"] == Decimal("9.79") * q  # 10q gained, 0.1q + 0.11q in fees
        assert row["opening_equity"] is not None

    async with ctx.session_factory() as session:  # each row again, alone
        for connection_id in ids:
            await analytics.refresh_day(session, connection_id, utcnow().date())
        await session.commit()
    assert await _rows(ctx, ids) == batched
