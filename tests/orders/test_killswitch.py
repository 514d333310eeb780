"""Kill switches and the drawdown stop-out, end to end on paper accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.models import Event
from execution_service.orders.stopout import guard_tick
from tests.factories import Actor, PaperSetup, paper_setup
from tests.workers.test_monitor import open_position


async def _events(ctx: AppContext, user: Actor, kind: str) -> list[dict[str, Any]]:
    async with ctx.session_factory() as session:
        rows = await session.scalars(
            select(Event)
            .where(Event.user_id == user.user_id, Event.type == kind)
            .order_by(Event.id)
        )
        return [e.payload for e in rows]


async def _three_and_a_limit(user: Actor) -> tuple[PaperSetup, list[int], int]:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="1"
    )
    pids = [await open_position(acct) for _ in range(3)]
    resting = await acct.signal(order_type="limit", entry_price="90")
    assert resting["executions"][0]["status"] == "open"
    return acct, pids, resting["executions"][0]["execution_log_id"]


async def test_close_all_on_a_connection_closes_and_cancels_everything_once(
    user: Actor, ctx: AppContext
) -> None:
    acct, pids, limit_id = await _three_and_a_limit(user)
    out = await user.ok("POST", f"/api/v1/connections/{acct.conn_id}/close-all")
    assert (out["connections"], out["cancelled"], out["closing"], out["failed"]) == (1, 1, 3, 0)
    assert {e["status"] for e in out["executions"]} == {"cancelled", "filled"}
    assert (await user.ok("GET", f"/api/v1/logs/{limit_id}"))["status"] == "cancelled"
    for pid in pids:
        position = await user.ok("GET", f"/api/v1/positions/{pid}")
        assert (position["status"], position["closed_reason"]) == ("closed", "close_all")
    again = await user.ok("POST", f"/api/v1/connections/{acct.conn_id}/close-all")
    assert (again["cancelled"], again["closing"], again["executions"]) == (0, 0, [])
    counts = [
        (e["cancelled"], e["closing"]) for e in await _events(ctx, user, "connection.closed_out")
    ]
    assert counts == [(1, 3), (0, 0)]


async def test_close_all_for_everything_the_caller_owns(
    user: Actor, other_user: Actor, admin: Actor
) -> None:
    mine, _, _ = await _three_and_a_limit(user)
    theirs, their_pids, _ = await _three_and_a_limit(other_user)
    out = await user.ok("POST", "/api/v1/close-all")
    assert (out["cancelled"], out["closing"]) == (1, 3)
    # Nothing of the other owner's was touched, and their connection is a 404 to this key.
    assert (await other_user.ok("GET", f"/api/v1/positions/{their_pids[0]}"))["status"] == "open"
    missing = await user.post(f"/api/v1/connections/{theirs.conn_id}/close-all")
    assert missing.status_code == 404
    refused = await user.post("/api/v1/close-all", json={"user_id": other_user.user_id})
    assert refused.status_code == 403
    # An admin must say whose: one user, or every owner; never by default.
    unscoped = await admin.post("/api/v1/close-all")
    assert unscoped.status_code == 422 and unscoped.json()["code"] == "close_all_scope"
    theirs_out = await admin.ok("POST", "/api/v1/close-all", json={"user_id": other_user.user_id})
    assert (theirs_out["cancelled"], theirs_out["closing"]) == (1, 3)
    assert mine.conn_id not in {e["connection_id"] for e in theirs_out["executions"]}


async def test_a_drawdown_stops_the_account_until_cleared(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(
        user,
        price="100",
        position_size_mode="fixed_quantity",
        position_size_value="10",
        stop_out_drawdown_percent="5",
    )
    await open_position(acct)  # 10 @ 100: 1000 of the 10000
    assert await guard_tick(ctx, utcnow()) == []  # peak 10000
    await acct.price("60")
    from execution_service.workers.monitor import monitor_tick

    await monitor_tick(ctx)  # marked: 10 x (60 - 100) = -400 open
    assert await guard_tick(ctx, utcnow()) == []  # 9600: 4 % under the peak
    await acct.price("49")
    await monitor_tick(ctx)  # 10 x -51 = -510: 9490 is 5.1 % under 10000
    assert await guard_tick(ctx, utcnow()) == [acct.conn_id]
    conn = await user.ok("GET", f"/api/v1/connections/{acct.conn_id}")
    assert conn["close_only"] is True and conn["stopped_out_at"] is not None
    assert conn["peak_equity"] == "10000"
    [stop] = await _events(ctx, user, "connection.stopped_out")
    assert (stop["action"], stop["equity"]) == ("close_only", "9490")
    skipped = await acct.signal()
    assert (skipped["executions"][0]["status"], skipped["executions"][0]["error_code"]) == (
        "skipped",
        "close_only",
    )
    cleared = await user.ok("POST", f"/api/v1/connections/{acct.conn_id}/clear-stop-out")
    assert cleared["close_only"] is False and cleared["stopped_out_at"] is None
    assert (await acct.signal())["executions"][0]["status"] == "filled"


async def test_a_stop_out_may_close_everything_and_pause(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(
        user,
        price="100",
        position_size_mode="fixed_quantity",
        position_size_value="10",
        stop_out_daily_loss="300",
        stop_out_action="close_and_pause",
    )
    pid = await open_position(acct)
    await guard_tick(ctx, utcnow())  # the day opens at 10000
    await acct.price("69")
    from execution_service.workers.monitor import monitor_tick

    await monitor_tick(ctx)  # 10 x -31 = -310: 310 >= 300 lost today
    assert await guard_tick(ctx, utcnow()) == [acct.conn_id]
    position = await user.ok("GET", f"/api/v1/positions/{pid}")
    assert (position["status"], position["closed_reason"]) == ("closed", "close_all")
    conn = await user.ok("GET", f"/api/v1/connections/{acct.conn_id}")
    assert (conn["is_active"], conn["close_only"]) == (False, True)
