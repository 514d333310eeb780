"""Netting, one account and one symbol at a time: an opposite signal reduces or closes what is
held first; only the rest may open the other way, where the preset allows it and the account
can hold either side. Figures worked out by hand beside each."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from execution_service.signals.netting import Held, NetClose, Netting, net
from tests.factories import Actor, PaperSetup, paper_setup
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection

A, B = Held(1, D(1)), Held(2, D("0.5"))


@pytest.mark.parametrize(
    ("opposite", "quantity", "reverse", "expected"),
    [
        ([], None, False, Netting()),  # nothing held the other way: an entry as usual
        ([], D(2), True, Netting(quantity=D(2))),
        # No quantity: close everything the other way; reverse only where allowed.
        ([A, B], None, False, Netting((NetClose(1, None, True), NetClose(2, None, True)), False)),
        ([A], None, True, Netting((NetClose(1, None, True),), True)),
        # 0.4 against a long of 1: reduce it to 0.6, nothing opens.
        ([A], D("0.4"), True, Netting((NetClose(1, D("0.4"), False),), False)),
        # 1.2 against 1 then 0.5 (oldest first): 1 closes whole, 0.2 of the second.
        (
            [A, B],
            D("1.2"),
            False,
            Netting((NetClose(1, None, True), NetClose(2, D("0.2"), False)), False),
        ),
        # 1.5 against 1: 1 closes; 0.5 opens the other way only if allowed.
        ([A], D("1.5"), False, Netting((NetClose(1, None, True),), False)),
        ([A], D("1.5"), True, Netting((NetClose(1, None, True),), True, D("0.5"))),
    ],
)
def test_net(opposite: list[Held], quantity: D | None, reverse: bool, expected: Netting) -> None:
    assert net(opposite, quantity, reverse) == expected


async def _open_long(acct: PaperSetup, quantity: str = "1") -> int:
    opened = await acct.signal(quantity=quantity)
    assert opened["executions"][0]["status"] == "filled"
    return int(opened["executions"][0]["position_id"])


async def _position(user: Actor, position_id: int) -> dict[str, Any]:
    return await user.ok("GET", f"/api/v1/positions/{position_id}")  # type: ignore[no-any-return]


async def test_an_opposite_signal_closes_the_long_and_opens_nothing_on_spot(user: Actor) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="1"
    )
    long_id = await _open_long(acct)
    await acct.price("110")
    sold = await acct.signal(direction="sell")
    [execution] = sold["executions"]
    assert (execution["purpose"], execution["status"], execution["position_id"]) == (
        "exit",
        "filled",
        long_id,
    )
    closed = await _position(user, long_id)
    # 1 x (110 - 100) = 10, no fees on this paper account.
    assert (closed["status"], closed["closed_reason"], closed["pnl"]) == ("closed", "signal", "10")
    positions = await user.ok("GET", "/api/v1/positions", params={"status": "open"})
    assert positions["total"] == 0  # no short was opened
    assert sold == await user.ok("GET", f"/api/v1/signals/{sold['id']}")


async def test_a_smaller_opposite_signal_reduces_the_long(user: Actor) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="1"
    )
    long_id = await _open_long(acct)
    await acct.signal(direction="sell", quantity="0.4")
    reduced = await _position(user, long_id)
    # 1 - 0.4 = 0.6 left; 0.4 x (100 - 100) = 0 realised.
    assert (reduced["status"], reduced["quantity"], reduced["realized_pnl"]) == ("open", "0.6", "0")


async def test_on_swap_the_rest_reverses_where_the_preset_says_so(user: Actor) -> None:
    preset = await user.preset(
        position_size_mode="fixed_quantity", position_size_value="2", reverse_on_opposite=True
    )
    dc = await user.data_connection()
    await user.push_price(dc["id"], "BTC/USDT", "100")
    conn = await user.paper_connection(
        preset_id=preset["id"], data_connection_id=dc["id"], market_type="swap"
    )
    acct = PaperSetup(user, preset, dc, conn)
    long_id = await _open_long(acct, "1")
    reversed_ = await acct.signal(
        direction="sell"
    )  # closes the long, then a short sized as usual: 2
    purposes = [(e["purpose"], e["status"]) for e in reversed_["executions"]]
    assert purposes == [("entry", "filled"), ("exit", "filled")] or purposes == [
        ("exit", "filled"),
        ("entry", "filled"),
    ]
    assert (await _position(user, long_id))["closed_reason"] == "signal"
    short_id = next(e["position_id"] for e in reversed_["executions"] if e["purpose"] == "entry")
    short = await _position(user, short_id)
    assert (short["direction"], short["quantity"], short["status"]) == ("sell", "2", "open")


async def test_without_the_preset_setting_swap_does_not_reverse(user: Actor) -> None:
    preset = await user.preset(position_size_mode="fixed_quantity", position_size_value="2")
    dc = await user.data_connection()
    await user.push_price(dc["id"], "BTC/USDT", "100")
    conn = await user.paper_connection(
        preset_id=preset["id"], data_connection_id=dc["id"], market_type="swap"
    )
    acct = PaperSetup(user, preset, dc, conn)
    await _open_long(acct)
    sold = await acct.signal(direction="sell")
    assert [e["purpose"] for e in sold["executions"]] == ["exit"]
    assert (await user.ok("GET", "/api/v1/positions", params={"status": "open"}))["total"] == 0


async def test_a_spot_long_on_ccxt_closes_to_what_is_held(
    user: Actor, fake_binance: FakeBinance
) -> None:
    """Binance takes a buy's fee in BTC: the long holds what was filled less that fee, and the
    opposite signal sells it down to less than one amount step (the dust)."""
    fake_binance.set_price("BTC/USDT", "30000")
    start, _ = fake_binance.balance("BTC")
    conn = await ccxt_connection(
        user, fake_binance, position_size_mode="fixed_quantity", position_size_value="0.001"
    )
    body = {"symbol": "BTC/USDT", "connection_ids": [conn["id"]]}
    bought = await user.ok("POST", "/api/v1/signals", 201, json={**body, "direction": "buy"})
    long_id = bought["executions"][0]["position_id"]
    held = await _position(user, long_id)
    # 0.001 filled, fee 0.1 % of it in BTC = 0.000001: 0.000999 held.
    assert held["quantity"] == "0.000999"
    sold = await user.ok("POST", "/api/v1/signals", 201, json={**body, "direction": "sell"})
    assert [(e["purpose"], e["status"]) for e in sold["executions"]] == [("exit", "filled")]
    closed = await _position(user, long_id)
    assert (closed["status"], closed["closed_reason"]) == ("closed", "signal")
    free, locked = fake_binance.balance("BTC")
    # 0.000999 at Binance's step of 0.00001 sells 0.00099: 0.000009 BTC of dust stays.
    assert (free - start, locked) == (D("0.000009"), D(0))
    exit_log = await user.ok("GET", f"/api/v1/logs/{sold['executions'][0]['execution_log_id']}")
    assert exit_log["quantity"] == "0.00099"
    assert not [o for o in fake_binance.orders if o.side == "SELL" and o.status != "FILLED"]


async def test_exits_refused_too_often_flag_the_position_and_stop_the_monitor(
    user: Actor, ctx: Any, fake_binance: FakeBinance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No exit is retried forever: after EXEC_EXIT_MAX_REFUSALS refusals in a row the position is
    flagged (field and event) and the monitor leaves it to an operator."""
    from execution_service.workers.monitor import monitor_tick

    monkeypatch.setattr(ctx.settings, "exit_max_refusals", 2)
    monkeypatch.setattr(ctx.settings, "exit_retry_seconds", 0)
    fake_binance.set_price("BTC/USDT", "30000")
    conn = await ccxt_connection(
        user, fake_binance, position_size_mode="fixed_quantity", position_size_value="0.001"
    )
    body = {
        "symbol": "BTC/USDT",
        "direction": "buy",
        "connection_ids": [conn["id"]],
        "sl_price": "29000",
    }
    opened = await user.ok("POST", "/api/v1/signals", 201, json=body)
    position_id = opened["executions"][0]["position_id"]
    fake_binance.reject_next_orders(10, code=-2010)  # the venue refuses every sell
    fake_binance.set_price("BTC/USDT", "28000")  # the SL is crossed
    for _ in range(4):
        await monitor_tick(ctx)
    position = await _position(user, position_id)
    assert (position["status"], position["exit_refusals"]) == ("open", 2)
    assert position["flagged_at"] is not None
    sells = [
        r
        for r in fake_binance.requests_to("POST", "/api/v3/order")
        if r.params.get("side") == "SELL"
        # this position's exits only: other tests' positions share the fake venue and the monitor
        and str(r.params.get("newClientOrderId", "")).startswith(f"es-p{position_id}-")
    ]
    assert len(sells) == 2  # two tries, then the monitor stopped
    async with ctx.session_factory() as session:
        from sqlalchemy import select

        from execution_service.models import Event

        types = [
            e.type
            for e in await session.scalars(select(Event).where(Event.user_id == user.user_id))
        ]
    assert types.count("position.flagged") == 1
    # An operator closes it by hand once the venue takes orders again: the flag clears.
    fake_binance._rejects.clear()
    closed = await user.ok("POST", f"/api/v1/positions/{position_id}/close")
    assert closed["position"]["status"] == "closed"


async def test_a_partial_close_marks_what_is_left(user: Actor) -> None:
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="3"
    )
    position_id = await _open_long(acct, "3")
    await acct.price("110")
    await user.ok("POST", f"/api/v1/positions/{position_id}/close", json={"quantity": "1"})
    left = await _position(user, position_id)
    # 3 - 1 = 2 left; unrealised 2 x (110 - 100) = 20, not the old size's 30; realised 1 x 10.
    assert (left["quantity"], left["pnl"], left["realized_pnl"]) == ("2", "20", "10")
    # 20 over the notional 2 x 100 = 200 is 10 %, and the paper account's leverage 1 keeps it.
    assert (left["pnl_percentage"], left["return_on_margin"]) == ("10", "10")
