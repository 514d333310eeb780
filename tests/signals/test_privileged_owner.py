"""An admin or service signal for user N touches only user N's connections (issue #15): naming
another owner's connection is a 404 with nothing written, and a signal without connection ids
fans out to user N's accounts alone."""

from __future__ import annotations

from tests.factories import Actor, paper_setup

FQ1 = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}


async def test_a_privileged_signal_for_one_user_cannot_trade_anothers_connection(
    admin: Actor, user: Actor, other_user: Actor
) -> None:
    victim = await paper_setup(user, **FQ1)
    named = await paper_setup(other_user, **FQ1)
    service = await admin.new_key("service")
    for caller in (admin, service):
        response = await caller.post(
            "/api/v1/signals",
            json={
                "symbol": "BTC/USDT",
                "direction": "buy",
                "user_id": other_user.user_id,
                "connection_ids": [victim.conn_id],
            },
        )
        assert response.status_code == 404, response.text
    assert (await user.ok("GET", "/api/v1/logs"))["total"] == 0
    assert (await user.ok("GET", "/api/v1/positions"))["total"] == 0

    # Without connection ids: user N's own accounts, and only those.
    signal = await admin.ok(
        "POST",
        "/api/v1/signals",
        201,
        json={"symbol": "BTC/USDT", "direction": "buy", "user_id": other_user.user_id},
    )
    assert {e["connection_id"] for e in signal["executions"]} == {named.conn_id}
    assert (await user.ok("GET", "/api/v1/logs"))["total"] == 0
