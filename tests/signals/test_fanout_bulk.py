"""A paper fan-out's outcomes recorded set-based (`orders.bulk`) leave exactly the rows the
per-order recording (`record_outcomes`, an ORM unit of work) leaves: the same logs, positions,
paper books, events (in the same order) and analytics, over a buy, a netting sell (whose exits
go through `bulk.record_exits`) and a buy."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from execution_service.context import AppContext
from execution_service.models import (
    Event,
    ExecutionAnalytics,
    ExecutionLog,
    ExecutionPosition,
    PaperBalance,
    PaperHolding,
    PaperOrder,
)
from execution_service.orders import bulk
from tests.factories import Actor

TARGETS = 200
POOR = {7, 50, 199}  # too poor to open: refused `insufficient_funds`

# Columns that differ between two otherwise equal worlds: ids and moments.
SKIPPED = {"id", "created_at", "updated_at", "user_id", "admin_id"}


async def _world(actor: Actor) -> list[int]:
    preset = await actor.preset(
        position_size_mode="fixed_quantity",
        position_size_value="2",
        default_sl_percent="2",
        default_tp_percent="4",
        trailing_stop_percent="1.5",
        leverage="3",
    )
    dc = await actor.data_connection()
    await actor.push_price(dc["id"], "BTC/USDT", "100.5")
    body = {"preset_id": preset["id"], "data_connection_id": dc["id"]}
    ids = []
    for i in range(TARGETS):
        paper: dict[str, Any] = {"fee_rate": "0.001", "slippage_bps": "5"}
        if i in POOR:
            paper["balance"] = {"USDT": "50"}
        ids.append((await actor.paper_connection(**body, paper=paper))["id"])
    return ids


async def _trade(actor: Actor, ids: list[int]) -> list[dict[str, Any]]:
    answers = []
    for direction in ("buy", "sell", "buy"):
        body = {"symbol": "BTC/USDT", "direction": direction, "connection_ids": ids}
        answers.append(await actor.ok("POST", "/api/v1/signals", 201, json=body))
    return answers


def _plain(row: Any, index: dict[int, int]) -> dict[str, Any]:
    out = {}
    for column in row.__table__.columns:
        name, value = column.key, getattr(row, column.key)
        if name in SKIPPED:
            continue
        if name in ("execution_connection_id", "connection_id"):
            value = index[value]
        elif name.endswith("_id") or name.endswith("_at"):
            value = value is not None  # an id or a moment: there or not
        elif name == "latency_ms":
            value = value is not None and value >= 0
        out[name] = value
    return out


def _payload(payload: dict[str, Any], index: dict[int, int]) -> dict[str, Any]:
    return {
        k: index[v]
        if k == "connection_id"
        else (v is not None if k.endswith(("_id", "_at")) else v)
        for k, v in payload.items()
    }


async def _rows(ctx: AppContext, actor: Actor, ids: list[int]) -> dict[str, Any]:
    index = {conn_id: i for i, conn_id in enumerate(ids)}
    out: dict[str, Any] = {}
    async with ctx.session_factory() as session:
        for name, model, column, order in [
            ("logs", ExecutionLog, ExecutionLog.execution_connection_id, ExecutionLog.id),
            (
                "positions",
                ExecutionPosition,
                ExecutionPosition.execution_connection_id,
                ExecutionPosition.id,
            ),
            ("balances", PaperBalance, PaperBalance.connection_id, PaperBalance.id),
            ("holdings", PaperHolding, PaperHolding.connection_id, PaperHolding.id),
            ("paper_orders", PaperOrder, PaperOrder.connection_id, PaperOrder.id),
            (
                "analytics",
                ExecutionAnalytics,
                ExecutionAnalytics.execution_connection_id,
                ExecutionAnalytics.id,
            ),
        ]:
            rows = await session.scalars(select(model).where(column.in_(ids)).order_by(order))
            plain = [_plain(r, index) for r in rows]
            # In each account's order: accounts are recorded in one order in both worlds, but
            # a row's id is not the comparison (two worlds' sequences interleave).
            out[name] = sorted(plain, key=lambda r: repr(sorted(r.items(), key=repr)))
        events = await session.scalars(
            select(Event).where(Event.user_id == actor.user_id).order_by(Event.id)
        )
        out["events"] = [
            (e.type, _payload(e.payload, index))
            for e in events
            if e.payload.get("connection_id") in index
        ]
    return out


async def test_bulk_recording_leaves_the_rows_the_per_order_recording_leaves(
    user: Actor, other_user: Actor, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int]] = []
    entries, exits = bulk.record_entries, bulk.record_exits

    async def counting_entries(ctx: AppContext, logs: Any, outcomes: Any) -> Any:
        if logs:
            seen.append(("entries", len(logs)))
        return await entries(ctx, logs, outcomes)

    async def counting_exits(ctx: AppContext, logs: Any, outcomes: Any, days: Any = None) -> Any:
        if logs:
            seen.append(("exits", len(logs)))
        return await exits(ctx, logs, outcomes, days)

    monkeypatch.setattr(bulk, "record_entries", counting_entries)
    monkeypatch.setattr(bulk, "record_exits", counting_exits)
    fast_ids = await _world(user)
    fast = await _trade(user, fast_ids)
    opened = TARGETS - len(POOR)
    # the buy, the sell's exits of what the buy opened (it opens nothing), the next buy
    assert seen == [("entries", opened), ("exits", opened), ("entries", opened)]

    # As before: every outcome through record_outcomes, one ORM unit of work.
    monkeypatch.setattr(bulk, "eligible", lambda *_: False)
    monkeypatch.setattr(bulk, "eligible_exit", lambda *_: False)
    slow_ids = await _world(other_user)
    slow = await _trade(other_user, slow_ids)

    for a, b in zip(fast, slow, strict=True):
        assert a["by_status"] == b["by_status"]
        assert a["executions_total"] == b["executions_total"] == TARGETS
    assert fast[0]["by_status"] == {"filled": TARGETS - len(POOR), "rejected": len(POOR)}
    expected, got = await _rows(ctx, other_user, slow_ids), await _rows(ctx, user, fast_ids)
    for name in expected:
        assert got[name] == expected[name], name
    assert len(got["events"]) > 3 * TARGETS
