"""A fan-out's outcomes recorded set-based (`orders.bulk`) leave alone a row that is no longer
`pending` when they are recorded (reconciliation got there first): that one goes through
`record_outcomes`, which says so, and keeps what was recorded; the others are filled."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select, update

from execution_service.context import AppContext
from execution_service.enums import OrderStatus
from execution_service.exchanges.paper import batch
from execution_service.models import Event, ExecutionLog, ExecutionPosition
from tests.factories import Actor


async def test_a_row_recorded_meanwhile_is_left_to_the_single_order_path(
    user: Actor, ctx: AppContext, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    preset = await user.preset(position_size_mode="fixed_quantity", position_size_value="2")
    dc = await user.data_connection()
    await user.push_price(dc["id"], "BTC/USDT", "100")
    body = {"preset_id": preset["id"], "data_connection_id": dc["id"]}
    ids = [(await user.paper_connection(**body))["id"] for _ in range(4)]
    late = ids[1]
    original = batch.create_orders

    async def tracker_first(factory: Any, requests: Any) -> Any:
        # The tracker calls this one lost while the batch is at the venue, which fills it.
        async with ctx.session_factory() as session:
            await session.execute(
                update(ExecutionLog)
                .where(ExecutionLog.execution_connection_id == late)
                .values(status=OrderStatus.rejected, error_code="never_sent")
            )
            await session.commit()
        return await original(factory, requests)

    monkeypatch.setattr(batch, "create_orders", tracker_first)
    with caplog.at_level(logging.ERROR, logger="execution_service.orders.outcomes"):
        signal = await user.ok(
            "POST",
            "/api/v1/signals",
            201,
            json={"symbol": "BTC/USDT", "direction": "buy", "connection_ids": ids},
        )
    by_conn = {e["connection_id"]: e for e in signal["executions"]}
    assert by_conn[late]["status"] == "rejected" and by_conn[late]["error_code"] == "never_sent"
    assert by_conn[late]["position_id"] is None
    assert signal["by_status"] == {"filled": 3, "rejected": 1}
    assert "filled after it was recorded never_sent" in caplog.text
    assert signal == await user.ok("GET", f"/api/v1/signals/{signal['id']}")

    async with ctx.session_factory() as session:
        held = set(
            await session.scalars(
                select(ExecutionPosition.execution_connection_id).where(
                    ExecutionPosition.execution_connection_id.in_(ids)
                )
            )
        )
        events = [
            (e.type, e.payload.get("connection_id"))
            for e in await session.scalars(
                select(Event).where(Event.user_id == user.user_id).order_by(Event.id)
            )
        ]
    assert held == set(ids) - {late}
    assert ("order.filled", late) not in events
    filled = [c for kind, c in events if kind == "order.filled"]
    assert sorted(filled) == sorted(set(ids) - {late})
    # Each fill announced after its position, as one order's are.
    for c in filled:
        assert events.index(("position.opened", c)) < events.index(("order.filled", c))
