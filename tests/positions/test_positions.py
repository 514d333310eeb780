from __future__ import annotations

from tests.factories import Actor, paper_setup

FQ1 = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}


async def test_amend_stops_on_the_right_side_only(user: Actor) -> None:
    acct = await paper_setup(user, price="100", **FQ1)
    position_id = (await acct.signal())["executions"][0]["position_id"]
    url = f"/api/v1/positions/{position_id}"
    amended = await user.ok(
        "PATCH", url, json={"sl_price": "95", "tp_price": "120", "trailing_stop_percent": "2"}
    )
    assert (amended["sl_price"], amended["tp_price"], amended["trailing_stop_percent"]) == (
        "95",
        "120",
        "2",
    )
    for body in (
        {"sl_price": "100"},
        {"sl_price": "101"},
        {"tp_price": "99"},
        {},
        {"trailing_stop_percent": "0"},
    ):
        response = await user.patch(url, json=body)
        assert response.status_code == 422, body
    assert (await user.ok("GET", url))["sl_price"] == "95"


async def test_filters_and_ownership(user: Actor, other_user: Actor) -> None:
    acct = await paper_setup(user, price="100", **FQ1)
    await acct.price("20", symbol="ETH/USDT")
    btc = (await acct.signal())["executions"][0]["position_id"]
    await acct.signal(symbol="ETH/USDT")
    await user.ok("POST", f"/api/v1/positions/{btc}/close")
    assert (await user.ok("GET", "/api/v1/positions", params={"status": "open"}))["total"] == 1
    assert (await user.ok("GET", "/api/v1/positions", params={"status": "closed"}))["items"][0][
        "id"
    ] == btc
    assert (await user.ok("GET", "/api/v1/positions", params={"symbol": "ETH/USDT"}))["total"] == 1
    assert (await user.ok("GET", "/api/v1/positions", params={"connection_id": acct.conn_id}))[
        "total"
    ] == 2
    assert (await other_user.ok("GET", "/api/v1/positions"))["total"] == 0
    for method, suffix in (("GET", ""), ("PATCH", ""), ("POST", "/close")):
        response = await other_user.request(
            method,
            f"/api/v1/positions/{btc}{suffix}",
            json={"sl_price": "1"} if method == "PATCH" else None,
        )
        assert response.status_code == 404
