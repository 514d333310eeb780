"""Signals end to end on paper accounts, both databases."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, func, select

from execution_service.context import AppContext
from execution_service.models import ExecutionLog, PaperOrder
from tests.factories import Actor, paper_setup


async def test_fixed_notional_buy_and_manual_close_book_exact_pnl(user: Actor) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_notional", position_size_value="1000"
    )
    signal = await acct.signal()
    [execution] = signal["executions"]
    assert (
        execution["status"] == "filled"
        and execution["quantity"] == "10"
        and execution["price"] == "100"
    )
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    assert (
        position["quantity"] == "10"
        and position["entry_price"] == "100"
        and position["status"] == "open"
    )

    await acct.price("110")
    closed = await user.ok("POST", f"/api/v1/positions/{position['id']}/close")
    assert closed["execution"]["status"] == "filled" and closed["execution"]["purpose"] == "exit"
    assert closed["execution"]["direction"] == "sell"
    position = closed["position"]
    assert position["status"] == "closed" and position["closed_reason"] == "manual"
    assert position["pnl"] == "100" and position["realized_pnl"] == "100"
    assert position["pnl_percentage"] == "10" and position["close_price"] == "110"
    balance = await user.ok("GET", f"/api/v1/connections/{acct.conn_id}/balance")
    assert balance["USDT"] == {"free": "10100", "used": "0", "total": "10100"}


async def test_fees_are_booked_to_the_last_decimal(user: Actor) -> None:
    acct = await paper_setup(
        user,
        price="100",
        paper={"fee_rate": "0.001"},
        position_size_mode="fixed_notional",
        position_size_value="1000",
    )
    signal = await acct.signal()
    position_id = signal["executions"][0]["position_id"]
    entry = await user.ok("GET", f"/api/v1/logs/{signal['executions'][0]['execution_log_id']}")
    assert entry["fee"] == "1" and entry["fee_currency"] == "USDT"  # 10 * 100 * 0.001
    await acct.price("110.37")
    closed = (await user.ok("POST", f"/api/v1/positions/{position_id}/close"))["position"]
    # gross (110.37 - 100) * 10 = 103.7; fees 1 + 10 * 110.37 * 0.001 = 1 + 1.1037 -> net 101.5963
    assert closed["pnl"] == "101.5963" and closed["fees"] == "2.1037"
    assert closed["pnl_percentage"] == "10.15963"  # 101.5963 / 1000 * 100


async def test_slippage_moves_the_fill_against_the_taker(user: Actor) -> None:
    acct = await paper_setup(
        user,
        price="200",
        paper={"slippage_bps": "25"},
        position_size_mode="fixed_quantity",
        position_size_value="1",
    )
    signal = await acct.signal()
    assert signal["executions"][0]["price"] == "200.5"  # 200 * 1.0025
    short = await acct.signal(direction="sell")
    assert short["executions"][0]["price"] == "199.5"


async def test_partial_close(user: Actor) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="4"
    )
    position_id = (await acct.signal())["executions"][0]["position_id"]
    await acct.price("90")
    first = await user.ok("POST", f"/api/v1/positions/{position_id}/close", json={"quantity": "1"})
    assert first["position"]["status"] == "open" and first["position"]["quantity"] == "3"
    assert first["position"]["realized_pnl"] == "-10"
    too_much = await user.post(f"/api/v1/positions/{position_id}/close", json={"quantity": "5"})
    assert too_much.status_code == 422
    await acct.price("120")
    final = (await user.ok("POST", f"/api/v1/positions/{position_id}/close"))["position"]
    assert final["status"] == "closed" and final["pnl"] == "50"  # -10 + 3 * 20
    again = await user.post(f"/api/v1/positions/{position_id}/close")
    assert again.status_code == 409
    exits = await user.ok(
        "GET", "/api/v1/logs", params={"connection_id": acct.conn_id, "status": "filled"}
    )
    assert sorted(e["client_order_id"] for e in exits["items"] if e["purpose"] == "exit") == [
        f"es-p{position_id}-x1",
        f"es-p{position_id}-x2",
    ]


async def test_a_short_position(user: Actor) -> None:
    acct = await paper_setup(
        user,
        market_type="swap",
        price="50",
        position_size_mode="fixed_quantity",
        position_size_value="2",
    )
    position_id = (await acct.signal(direction="sell", sl_price="55", tp_price="40"))["executions"][
        0
    ]["position_id"]
    position = await user.ok("GET", f"/api/v1/positions/{position_id}")
    assert (
        position["direction"] == "sell"
        and position["sl_price"] == "55"
        and position["tp_price"] == "40"
    )
    await acct.price("45")
    closed = (await user.ok("POST", f"/api/v1/positions/{position_id}/close"))["position"]
    assert closed["pnl"] == "10"


async def test_fifty_connections_one_inactive_one_broke(admin: Actor, ctx: AppContext) -> None:
    user = await admin.new_user()
    preset = await user.preset(position_size_mode="fixed_notional", position_size_value="500")
    dc = await user.data_connection()
    await user.push_price(dc["id"], "BTC/USDT", "100")
    conns = []
    for i in range(50):
        paper = {"balance": {"USDT": "10"}} if i == 7 else None
        body = {"paper": paper} if paper else {}
        conns.append(
            await user.paper_connection(
                preset_id=preset["id"], data_connection_id=dc["id"], activate=i != 13, **body
            )
        )
    response = await user.post(
        "/api/v1/signals",
        json={"external_id": "fan-out-1", "symbol": "BTC/USDT", "direction": "buy"},
    )
    assert response.status_code == 201
    executions = {e["connection_id"]: e for e in response.json()["executions"]}
    assert len(executions) == 49  # default targets: the active connections
    explicit = await user.post(
        "/api/v1/signals",
        json={
            "external_id": "fan-out-2",
            "symbol": "BTC/USDT",
            "direction": "buy",
            "connection_ids": [c["id"] for c in conns],
        },
    )
    assert explicit.status_code == 201
    executions = {e["connection_id"]: e for e in explicit.json()["executions"]}
    assert len(executions) == 50
    statuses = [e["status"] for e in executions.values()]
    assert statuses.count("filled") == 48 and statuses.count("rejected") == 2
    assert executions[conns[13]["id"]]["error_code"] == "connection_inactive"
    assert executions[conns[7]["id"]]["error_code"] == "insufficient_funds"

    async def paper_orders() -> int:
        async with ctx.session_factory() as session:
            ids = [c["id"] for c in conns]
            return (
                await session.scalar(
                    select(func.count())
                    .select_from(PaperOrder)
                    .where(PaperOrder.connection_id.in_(ids))
                )
                or 0
            )

    before = await paper_orders()
    replay = await user.post(
        "/api/v1/signals",
        json={
            "external_id": "fan-out-2",
            "symbol": "BTC/USDT",
            "direction": "buy",
            "connection_ids": [c["id"] for c in conns],
        },
    )
    assert replay.status_code == 200 and replay.json() == explicit.json()
    assert await paper_orders() == before == 48 + 48


async def test_concurrent_replays_send_once(user: Actor, ctx: AppContext) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="1"
    )
    body = {"external_id": "race", "symbol": "BTC/USDT", "direction": "buy"}
    responses = await asyncio.gather(*(user.post("/api/v1/signals", json=body) for _ in range(5)))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201]
    async with ctx.session_factory() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(PaperOrder)
            .where(PaperOrder.connection_id == acct.conn_id)
        )
    assert count == 1


async def test_same_external_id_for_two_owners_executes_for_both(
    user: Actor, other_user: Actor
) -> None:
    mine = await paper_setup(user, position_size_mode="fixed_quantity", position_size_value="1")
    theirs = await paper_setup(
        other_user, position_size_mode="fixed_quantity", position_size_value="1"
    )
    assert (await mine.signal(external_id="shared"))["executions"][0]["status"] == "filled"
    assert (await theirs.signal(external_id="shared"))["executions"][0]["status"] == "filled"


async def test_the_pending_row_is_committed_before_the_adapter_is_called(
    user: Actor, ctx: AppContext, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="1"
    )
    seen: list[tuple[str, str]] = []
    original = ctx.adapters.for_connection

    async def spying(conn):  # type: ignore[no-untyped-def]
        adapter = await original(conn)
        create = adapter.create_order

        async def create_order(
            symbol, side, type, amount, price, client_order_id, stops=None, **kw
        ):  # type: ignore[no-untyped-def]
            async with ctx.session_factory() as session:  # another session sees it: committed
                row = await session.scalar(
                    select(ExecutionLog).where(ExecutionLog.client_order_id == client_order_id)
                )
                seen.append((row.status, row.quantity.__str__()) if row else ("missing", ""))
            return await create(symbol, side, type, amount, price, client_order_id, stops, **kw)

        adapter.create_order = create_order  # type: ignore[method-assign]
        return adapter

    monkeypatch.setattr(ctx.adapters, "for_connection", spying)
    signal = await acct.signal()
    assert seen == [("pending", "1")]
    log = await user.ok("GET", f"/api/v1/logs/{signal['executions'][0]['execution_log_id']}")
    assert log["client_order_id"] == f"es-{signal['id']}-{acct.conn_id}-e"
    assert log["status"] == "filled" and log["latency_ms"] >= 0 and log["submitted_at"]
    assert log["response_data"]["paper"] is True


async def test_signal_read_and_list(user: Actor, other_user: Actor) -> None:
    acct = await paper_setup(user, position_size_mode="fixed_quantity", position_size_value="1")
    signal = await acct.signal(
        sl_price="90",
        take_profits=[
            {"price": "110", "close_percent": "50"},
            {"price": "120", "close_percent": "50"},
        ],
    )
    assert signal["take_profits"] == [
        {"price": "110", "close_percent": "50"},
        {"price": "120", "close_percent": "50"},
    ]
    assert await user.ok("GET", f"/api/v1/signals/{signal['id']}") == signal
    listed = await user.ok("GET", "/api/v1/signals")
    assert listed["total"] == 1 and listed["items"][0] == signal
    assert (await other_user.get(f"/api/v1/signals/{signal['id']}")).status_code == 404
    assert (await other_user.ok("GET", "/api/v1/signals"))["total"] == 0
    position = await user.ok("GET", f"/api/v1/positions/{signal['executions'][0]['position_id']}")
    assert position["take_profits"] == signal["take_profits"] and position["sl_price"] == "90"


async def test_signal_validation_writes_nothing(user: Actor, other_user: Actor) -> None:
    acct = await paper_setup(user, position_size_mode="fixed_quantity", position_size_value="1")
    theirs = await paper_setup(other_user)
    bad = [
        {"direction": "buy", "entry_price": "100", "sl_price": "101"},
        {"direction": "buy", "entry_price": "100", "tp_price": "99"},
        {"direction": "sell", "entry_price": "100", "sl_price": "99"},
        {"direction": "sell", "entry_price": "100", "tp_price": "101"},
        {"direction": "buy", "sl_price": "120", "tp_price": "110"},
        {"direction": "buy", "order_type": "limit"},
        {
            "direction": "buy",
            "tp_price": "110",
            "take_profits": [{"price": "120", "close_percent": "100"}],
        },
        {
            "direction": "buy",
            "take_profits": [
                {"price": "120", "close_percent": "60"},
                {"price": "130", "close_percent": "60"},
            ],
        },
        {"direction": "up"},
        {"direction": "buy", "quantity": "-1"},
        {"direction": "buy", "connection_ids": []},
        # A leader's or broker's bare name (BTCUSDT, GOLD.m) is a symbol; these are not.
        {"direction": "buy", "symbol": "BTC//USDT"},
        {"direction": "buy", "symbol": "BTC USDT"},
        {"direction": "buy", "symbol": "/USDT"},
    ]
    for body in bad:
        response = await user.post(
            "/api/v1/signals", json={"symbol": "BTC/USDT", "connection_ids": [acct.conn_id], **body}
        )
        assert response.status_code == 422, (body, response.text)
    not_mine = await user.post(
        "/api/v1/signals",
        json={"symbol": "BTC/USDT", "direction": "buy", "connection_ids": [theirs.conn_id]},
    )
    assert not_mine.status_code == 404
    assert (await user.ok("GET", "/api/v1/signals"))["total"] == 0
    assert (await user.ok("GET", "/api/v1/logs"))["total"] == 0


async def test_a_signal_reads_outside_the_write_transactions(user: Actor, ctx: AppContext) -> None:
    """Targets and account inputs come from the autocommit reader: on the main engine a paper
    signal is the signal's commit, the paper fill's and the outcome's, and nothing else."""
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="1"
    )
    await acct.signal()  # warm: caches and the pool
    if ctx.reader is ctx.engine:
        pytest.skip("an in-memory SQLite database reads through the main engine")
    commits: list[int] = []
    listener = lambda _conn: commits.append(1)  # noqa: E731
    event.listen(ctx.engine.sync_engine, "commit", listener)
    try:
        [execution] = (await acct.signal())["executions"]
    finally:
        event.remove(ctx.engine.sync_engine, "commit", listener)
    assert execution["status"] == "filled"
    assert len(commits) == 3
