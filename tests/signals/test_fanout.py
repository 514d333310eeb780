"""One signal to several paper accounts: every target decided, every `pending` row committed in
one transaction before the batch is sent, and each account's outcome as if sent alone."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from execution_service.context import AppContext
from execution_service.exchanges.paper import batch
from execution_service.models import Event, ExecutionLog
from tests.factories import Actor


async def test_a_fan_out_commits_every_pending_row_before_the_batch_is_sent(
    user: Actor, ctx: AppContext, monkeypatch: Any
) -> None:
    preset = await user.preset(position_size_mode="fixed_quantity", position_size_value="2")
    dc = await user.data_connection()
    await user.push_price(dc["id"], "BTC/USDT", "100")
    body = {"preset_id": preset["id"], "data_connection_id": dc["id"]}
    rich = [await user.paper_connection(**body) for _ in range(3)]
    poor = await user.paper_connection(**body, paper={"balance": {"USDT": "50"}})
    asleep = await user.paper_connection(**body, activate=False)
    ids = [c["id"] for c in [*rich, poor, asleep]]

    seen: list[list[tuple[str, str]]] = []
    original = batch.create_orders

    async def spying(factory: Any, requests: Any) -> Any:
        async with ctx.session_factory() as session:  # another session sees them: committed
            rows = await session.scalars(
                select(ExecutionLog)
                .where(ExecutionLog.client_order_id.in_([r.client_order_id for r in requests]))
                .order_by(ExecutionLog.id)
            )
            seen.append([(r.status, str(r.quantity)) for r in rows])
        return await original(factory, requests)

    monkeypatch.setattr(batch, "create_orders", spying)
    signal = await user.ok(
        "POST",
        "/api/v1/signals",
        201,
        json={"symbol": "BTC/USDT", "direction": "buy", "connection_ids": ids},
    )
    assert seen == [[("pending", "2")] * 3]  # one batch: the three that passed the checks
    by_conn = {e["connection_id"]: e for e in signal["executions"]}
    assert [by_conn[c["id"]]["status"] for c in rich] == ["filled"] * 3
    assert by_conn[poor["id"]]["error_code"] == "insufficient_funds"
    assert by_conn[asleep["id"]]["error_code"] == "connection_inactive"
    assert signal == await user.ok("GET", f"/api/v1/signals/{signal['id']}")

    for c in rich:
        execution = by_conn[c["id"]]
        position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
        assert position["quantity"] == "2" and position["entry_price"] == "100"
        assert position["connection_id"] == c["id"] and position["status"] == "open"
        log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
        assert log["client_order_id"] == f"es-{signal['id']}-{c['id']}-e"
        assert log["position_id"] == position["id"] and log["submitted_at"]
        assert log["latency_ms"] >= 0 and log["response_data"]["paper"] is True
        balance = await user.ok("GET", f"/api/v1/connections/{c['id']}/balance")
        assert balance["USDT"]["used"] == "200"

    async with ctx.session_factory() as session:
        log_ids = {e["execution_log_id"] for e in signal["executions"]}
        events = (
            await session.scalars(
                select(Event).where(Event.user_id == user.user_id).order_by(Event.id)
            )
        ).all()
    kinds = sorted(
        (e.type, e.payload.get("execution_log_id") or e.payload.get("id"))
        for e in events
        if e.type in ("order.filled", "order.rejected", "position.opened")
    )
    filled = sorted(by_conn[c["id"]]["execution_log_id"] for c in rich)
    assert [k for k, _ in kinds].count("order.filled") == 3
    assert [k for k, _ in kinds].count("position.opened") == 3
    assert [k for k, _ in kinds].count("order.rejected") == 2
    assert {i for k, i in kinds if k == "order.filled"} == set(filled) <= log_ids
    # Each fill's event names the position it opened (inserted with the others, announced after).
    assert all(e.payload["position_id"] for e in events if e.type == "order.filled")


async def test_a_replayed_fan_out_sends_nothing(user: Actor, ctx: AppContext) -> None:
    preset = await user.preset(position_size_mode="fixed_quantity", position_size_value="1")
    dc = await user.data_connection()
    await user.push_price(dc["id"], "BTC/USDT", "100")
    body = {"preset_id": preset["id"], "data_connection_id": dc["id"]}
    ids = [(await user.paper_connection(**body))["id"] for _ in range(3)]
    payload = {"symbol": "BTC/USDT", "direction": "buy", "connection_ids": ids, "external_id": "f1"}
    first = await user.ok("POST", "/api/v1/signals", 201, json=payload)
    again = await user.ok("POST", "/api/v1/signals", 200, json=payload)
    assert again == first
    async with ctx.session_factory() as session:
        rows = await session.scalars(
            select(ExecutionLog.id).where(ExecutionLog.execution_connection_id.in_(ids))
        )
        assert len(rows.all()) == 3
