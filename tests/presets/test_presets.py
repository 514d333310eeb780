from __future__ import annotations

from tests.factories import Actor


async def test_preset_crud(user: Actor) -> None:
    preset = await user.preset(
        name="risk",
        position_size_mode="risk_percent",
        position_size_value="1.5",
        default_sl_percent="2",
        leverage="3",
        max_positions=4,
    )
    assert preset["user_id"] == user.user_id
    assert preset["position_size_value"] == "1.5" and preset["leverage"] == "3"
    fetched = await user.ok("GET", f"/api/v1/presets/{preset['id']}")
    assert fetched == preset
    patched = await user.ok(
        "PATCH",
        f"/api/v1/presets/{preset['id']}",
        json={"max_positions": 9, "default_tp_percent": 4},
    )
    assert patched["max_positions"] == 9 and patched["default_tp_percent"] == "4"
    listed = await user.ok("GET", "/api/v1/presets")
    assert [p["id"] for p in listed["items"]] == [preset["id"]] and listed["total"] == 1
    await user.ok("DELETE", f"/api/v1/presets/{preset['id']}", 204)
    assert (await user.get(f"/api/v1/presets/{preset['id']}")).status_code == 404


async def test_preset_validation(user: Actor) -> None:
    bad = [
        {"position_size_value": "-1"},
        {"position_size_value": "abc"},
        {"position_size_mode": "martingale"},
        {"position_size_mode": "risk_percent", "position_size_value": "150"},
        {"leverage": "0.5"},
        {"max_positions": 0},
        {"default_sl_percent": "NaN"},
        {"unknown_field": 1},
    ]
    for override in bad:
        body = {
            "name": "p",
            "position_size_mode": "fixed_notional",
            "position_size_value": "10",
            **override,
        }
        response = await user.post("/api/v1/presets", json=body)
        assert response.status_code == 422, (override, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"]
    preset = await user.preset()
    response = await user.patch(f"/api/v1/presets/{preset['id']}", json={"name": None})
    assert response.status_code == 422
    assert (await user.ok("GET", "/api/v1/presets"))["total"] == 1


async def test_deleting_a_preset_in_use_is_409(user: Actor) -> None:
    preset = await user.preset()
    await user.paper_connection(preset_id=preset["id"], activate=False)
    response = await user.delete(f"/api/v1/presets/{preset['id']}")
    assert response.status_code == 409 and response.json()["code"] == "preset_in_use"
    assert "used by a connection" in response.json()["detail"]


async def test_admin_creates_for_a_user_and_user_cannot_create_for_another(
    admin: Actor, user: Actor
) -> None:
    preset = await admin.preset(user_id=user.user_id)
    assert (await user.ok("GET", f"/api/v1/presets/{preset['id']}"))["user_id"] == user.user_id
    response = await user.post(
        "/api/v1/presets",
        json={
            "name": "x",
            "position_size_mode": "fixed_quantity",
            "position_size_value": "1",
            "user_id": 1,
        },
    )
    assert response.status_code == 403
