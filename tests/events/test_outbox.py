from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from execution_service.connections.service import CheckResult, record_check
from execution_service.context import AppContext
from execution_service.models import Event, ExecutionConnection
from execution_service.orders.tracker import track_orders
from tests.factories import Actor, paper_setup

FQ1 = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}


async def _events(ctx: AppContext, user_id: int | None) -> Sequence[Event]:
    async with ctx.session_factory() as session:
        stmt = select(Event).where(Event.user_id == user_id).order_by(Event.id)
        return (await session.scalars(stmt)).all()


async def test_each_order_and_position_transition_is_reported_once(
    ctx: AppContext, user: Actor
) -> None:
    acct = await paper_setup(user, price="100", **FQ1)
    entry = (await acct.signal())["executions"][0]
    await track_orders(ctx)  # reading back outcomes already recorded reports nothing new
    await acct.price("104")
    exit_log = (await user.ok("POST", f"/api/v1/positions/{entry['position_id']}/close"))[
        "execution"
    ]
    refused = (await acct.signal(symbol="ETH/USDT"))["executions"][0]  # no ETH price
    assert (refused["status"], refused["error_code"]) == ("rejected", "no_price")
    await track_orders(ctx)

    events = await _events(ctx, user.user_id)
    # The order event comes last in its transaction, so it names the position its fill moved.
    assert [e.type for e in events] == [
        "position.opened",
        "order.filled",
        "position.closed",
        "order.filled",
        "order.rejected",
    ]
    opened, entry_filled, closed, exit_filled, rejected = (e.payload for e in events)
    assert opened["position_id"] == closed["position_id"] == entry["position_id"]
    assert (opened["entry_price"], opened["quantity"]) == (entry["price"], "1")
    assert (entry_filled["execution_log_id"], entry_filled["purpose"]) == (
        entry["execution_log_id"],
        "entry",
    )
    assert entry_filled["position_id"] == entry["position_id"]
    assert (exit_filled["execution_log_id"], exit_filled["purpose"]) == (exit_log["id"], "exit")
    assert (closed["closed_reason"], closed["close_price"]) == ("manual", "104")
    assert (rejected["execution_log_id"], rejected["error_code"]) == (
        refused["execution_log_id"],
        "no_price",
    )
    assert all(e.admin_id is None and e.dispatched_at is None for e in events)


async def test_connection_error_is_reported_once_per_move_into_error(
    ctx: AppContext, user: Actor
) -> None:
    conn = await user.paper_connection()
    fatal = CheckResult(False, 5, "auth_failed: invalid API key", fatal=True)

    async def check(result: CheckResult, *, commit: bool = True) -> None:
        async with ctx.session_factory() as session:
            row = await session.get(ExecutionConnection, conn["id"])
            assert row is not None
            record_check(row, result)
            if commit:
                await session.commit()

    await check(fatal, commit=False)  # rolled back: the change and its event go together
    assert await _events(ctx, user.user_id) == []
    await check(fatal)
    await check(fatal)  # still in error: no news
    await check(CheckResult(True, 5, None))  # healed: inactive again
    await check(fatal)
    events = await _events(ctx, user.user_id)
    assert [e.type for e in events] == ["connection.error", "connection.error"]
    assert events[0].payload == {
        "connection_id": conn["id"],
        "name": conn["name"],
        "adapter": "paper",
        "exchange": None,
        "status": "error",
        "is_active": False,
        "last_error": "auth_failed: invalid API key",
        "consecutive_failures": 1,
    }
