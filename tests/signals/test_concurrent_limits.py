"""Pre-trade limits hold under concurrency, not only one request at a time: signals that arrive
together on one account see each other's pending entries (the account is locked while they are
checked and recorded), and pending or resting entries count toward the limits."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from execution_service.context import AppContext
from execution_service.models import ExecutionPosition, PaperOrder
from execution_service.signals import service as signal_service
from tests.factories import Actor, paper_setup
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection

SIGNALS = 20


async def _storm(user: Actor, conn_id: int, **body: Any) -> Counter[str]:
    payload = {"symbol": "BTC/USDT", "direction": "buy", "connection_ids": [conn_id], **body}
    responses = await asyncio.gather(
        *(user.post("/api/v1/signals", json=payload) for _ in range(SIGNALS))
    )
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    outcomes: Counter[str] = Counter()
    for r in responses:
        (execution,) = r.json()["executions"]
        outcomes[execution["error_code"] or execution["status"]] += 1
    return outcomes


async def _positions(ctx: AppContext, conn_id: int) -> int:
    async with ctx.session_factory() as session:
        stmt = select(func.count()).where(ExecutionPosition.execution_connection_id == conn_id)
        return int(await session.scalar(stmt) or 0)


async def test_concurrent_signals_on_paper_open_exactly_max_positions(
    user: Actor, ctx: AppContext
) -> None:
    acct = await paper_setup(
        user, position_size_mode="fixed_quantity", position_size_value="1", max_positions=1
    )
    assert await _storm(user, acct.conn_id) == {"filled": 1, "max_positions": SIGNALS - 1}
    assert await _positions(ctx, acct.conn_id) == 1
    async with ctx.session_factory() as session:
        stmt = select(func.count()).where(PaperOrder.connection_id == acct.conn_id)
        assert await session.scalar(stmt) == 1  # one order reached the venue


async def test_concurrent_signals_on_ccxt_send_exactly_one_order(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(
        user,
        fake_binance,
        position_size_mode="fixed_notional",
        position_size_value="100",
        max_positions=1,
    )
    assert await _storm(user, conn["id"]) == {"filled": 1, "max_positions": SIGNALS - 1}
    assert len(fake_binance.orders) == 1
    assert await _positions(ctx, conn["id"]) == 1


async def test_per_symbol_limit_holds_under_concurrency(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(
        user,
        position_size_mode="fixed_quantity",
        position_size_value="1",
        max_positions_per_symbol=2,
    )
    outcomes = await _storm(user, acct.conn_id)
    assert outcomes == {"filled": 2, "max_positions_per_symbol": SIGNALS - 2}
    assert await _positions(ctx, acct.conn_id) == 2


async def test_a_resting_entry_counts_toward_the_limit(user: Actor) -> None:
    acct = await paper_setup(
        user, position_size_mode="fixed_quantity", position_size_value="1", max_positions=1
    )
    resting = await acct.signal(order_type="limit", entry_price="90")
    assert resting["executions"][0]["status"] == "open"  # below the market: it rests
    refused = await acct.signal()
    assert refused["executions"][0]["error_code"] == "max_positions"
    await user.ok("POST", f"/api/v1/logs/{resting['executions'][0]['execution_log_id']}/cancel")
    assert (await acct.signal())["executions"][0]["status"] == "filled"  # room again


async def test_a_signal_for_a_user_trades_only_that_users_accounts(
    user: Actor, other_user: Actor, admin: Actor
) -> None:
    mine = await paper_setup(user, position_size_mode="fixed_quantity", position_size_value="1")
    theirs = await paper_setup(
        other_user, position_size_mode="fixed_quantity", position_size_value="1"
    )
    body = {"symbol": "BTC/USDT", "direction": "buy", "user_id": user.user_id}
    refused = await admin.post(
        "/api/v1/signals", json={**body, "connection_ids": [mine.conn_id, theirs.conn_id]}
    )
    assert refused.status_code == 404 and str(theirs.conn_id) in refused.json()["detail"]
    ok = await admin.ok(
        "POST", "/api/v1/signals", 201, json={**body, "connection_ids": [mine.conn_id]}
    )
    assert ok["executions"][0]["status"] == "filled"
    # A platform signal (no owner named) may still name any account: a copy-trading fan-out.
    both = [mine.conn_id, theirs.conn_id]
    fanout = await admin.ok(
        "POST",
        "/api/v1/signals",
        201,
        json={"symbol": "BTC/USDT", "direction": "buy", "connection_ids": both},
    )
    assert [e["status"] for e in fanout["executions"]] == ["filled", "filled"]


async def test_a_loss_realised_while_a_signal_is_decided_stops_it(
    user: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daily-loss limit is read again under the account's lock: a close that lands between
    a signal's decision and its recording counts."""
    acct = await paper_setup(
        user,
        position_size_mode="fixed_quantity",
        position_size_value="10",
        max_daily_loss_percent="1",
    )
    opened = await acct.signal()
    position_id = opened["executions"][0]["position_id"]
    await acct.price("80")  # 10 x -20: a loss of 200, 2 % of the account
    decide = signal_service.decide_all

    async def decide_then_lose(*args: Any) -> Any:
        decided = await decide(*args)
        await user.ok("POST", f"/api/v1/positions/{position_id}/close")  # lands meanwhile
        return decided

    monkeypatch.setattr(signal_service, "decide_all", decide_then_lose)
    late = await acct.signal()
    assert late["executions"][0]["error_code"] == "daily_loss_limit"
    monkeypatch.undo()
    assert (await acct.signal())["executions"][0]["error_code"] == "daily_loss_limit"
