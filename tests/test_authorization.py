"""A user key never sees or changes another user's rows: 404 on every route with an id."""

from __future__ import annotations

from tests.factories import Actor


async def _rows_of(owner: Actor) -> dict[str, int]:
    preset = await owner.preset()
    dc = await owner.data_connection()
    await owner.push_price(dc["id"], "BTC/USDT", "100")
    conn = await owner.paper_connection(preset_id=preset["id"], data_connection_id=dc["id"])
    return {"preset": preset["id"], "dc": dc["id"], "conn": conn["id"]}


def _routes(ids: dict[str, int]) -> list[tuple[str, str, dict | None]]:
    p, d, c = ids["preset"], ids["dc"], ids["conn"]
    return [
        ("GET", f"/api/v1/presets/{p}", None),
        ("PATCH", f"/api/v1/presets/{p}", {"name": "stolen"}),
        ("DELETE", f"/api/v1/presets/{p}", None),
        ("GET", f"/api/v1/data-connections/{d}", None),
        ("PATCH", f"/api/v1/data-connections/{d}", {"name": "stolen"}),
        ("DELETE", f"/api/v1/data-connections/{d}", None),
        (
            "POST",
            f"/api/v1/data-connections/{d}/market-data",
            {"prices": [{"symbol": "BTC/USDT", "price": "1"}]},
        ),
        ("GET", f"/api/v1/data-connections/{d}/market-data/latest?symbol=BTC/USDT", None),
        ("GET", f"/api/v1/connections/{c}", None),
        ("PATCH", f"/api/v1/connections/{c}", {"name": "stolen"}),
        ("DELETE", f"/api/v1/connections/{c}", None),
        ("POST", f"/api/v1/connections/{c}/test", None),
        ("POST", f"/api/v1/connections/{c}/activate", None),
        ("POST", f"/api/v1/connections/{c}/deactivate", None),
        ("GET", f"/api/v1/connections/{c}/balance", None),
    ]


async def test_another_users_rows_are_404_and_unchanged(user: Actor, other_user: Actor) -> None:
    ids = await _rows_of(user)
    before = {
        "preset": await user.ok("GET", f"/api/v1/presets/{ids['preset']}"),
        "dc": await user.ok("GET", f"/api/v1/data-connections/{ids['dc']}"),
        "conn": await user.ok("GET", f"/api/v1/connections/{ids['conn']}"),
    }
    for method, url, body in _routes(ids):
        response = await other_user.request(method, url, json=body)
        assert response.status_code == 404, (method, url, response.status_code)
        assert response.json()["code"] == "not_found"
    assert before["preset"] == await user.ok("GET", f"/api/v1/presets/{ids['preset']}")
    assert before["dc"] == await user.ok("GET", f"/api/v1/data-connections/{ids['dc']}")
    assert before["conn"] == await user.ok("GET", f"/api/v1/connections/{ids['conn']}")
    latest = await user.ok(
        "GET", f"/api/v1/data-connections/{ids['dc']}/market-data/latest?symbol=BTC/USDT"
    )
    assert latest["price"] == "100"


async def test_lists_show_only_own_rows(user: Actor, other_user: Actor, admin: Actor) -> None:
    ids = await _rows_of(user)
    for path in ("presets", "data-connections", "connections"):
        theirs = await other_user.ok("GET", f"/api/v1/{path}")
        assert theirs["items"] == [] and theirs["total"] == 0
        mine = await user.ok("GET", f"/api/v1/{path}")
        assert mine["total"] == 1
    # The newest are last (id order), and the session's database may hold more than a page.
    total = (await admin.ok("GET", "/api/v1/connections", params={"limit": 1}))["total"]
    last = {"limit": 500, "offset": max(total - 500, 0)}
    everything = await admin.ok("GET", "/api/v1/connections", params=last)
    assert ids["conn"] in {c["id"] for c in everything["items"]}


async def test_admin_and_service_see_a_users_rows(user: Actor, admin: Actor) -> None:
    ids = await _rows_of(user)
    service = await admin.new_key("service")
    for actor in (admin, service):
        assert (await actor.ok("GET", f"/api/v1/connections/{ids['conn']}"))[
            "user_id"
        ] == user.user_id


async def test_trading_rows_of_another_user_are_404_and_filters_do_not_leak(
    user: Actor, other_user: Actor
) -> None:
    from tests.factories import paper_setup

    acct = await paper_setup(user, position_size_mode="fixed_quantity", position_size_value="1")
    signal = await acct.signal(sl_price="90")
    log_id = signal["executions"][0]["execution_log_id"]
    position_id = signal["executions"][0]["position_id"]
    for method, url, body in [
        ("GET", f"/api/v1/signals/{signal['id']}", None),
        ("GET", f"/api/v1/logs/{log_id}", None),
        ("POST", f"/api/v1/logs/{log_id}/cancel", None),
        ("GET", f"/api/v1/positions/{position_id}", None),
        ("PATCH", f"/api/v1/positions/{position_id}", {"sl_price": "1"}),
        ("POST", f"/api/v1/positions/{position_id}/close", None),
        ("GET", f"/api/v1/analytics/daily?connection_id={acct.conn_id}", None),
        ("GET", f"/api/v1/analytics/summary?connection_id={acct.conn_id}", None),
        ("GET", f"/api/v1/analytics/equity?connection_id={acct.conn_id}", None),
    ]:
        response = await other_user.request(method, url, json=body)
        assert response.status_code == 404, (method, url, response.status_code)
    for path, params in [
        ("logs", {"connection_id": acct.conn_id}),
        ("logs", {"signal_id": signal["id"]}),
        ("logs", {"symbol": "BTC/USDT"}),
        ("positions", {"connection_id": acct.conn_id}),
        ("positions", {"symbol": "BTC/USDT", "status": "open"}),
        ("signals", {}),
    ]:
        listed = await other_user.ok("GET", f"/api/v1/{path}", params=params)
        assert listed["items"] == [] and listed["total"] == 0, (path, params)
    position = await user.ok("GET", f"/api/v1/positions/{position_id}")
    assert position["status"] == "open" and position["sl_price"] == "90"
