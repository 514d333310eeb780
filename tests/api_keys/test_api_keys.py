from __future__ import annotations

import httpx

from tests.factories import Actor


async def test_admin_creates_a_key_shown_once_and_stored_hashed(admin: Actor, ctx) -> None:
    created = await admin.ok(
        "POST", "/api/v1/api-keys", 201, json={"name": "bot", "role": "user", "user_id": 42}
    )
    assert created["key"].startswith(f"exs_{created['prefix']}_")
    assert created["role"] == "user" and created["user_id"] == 42
    listed = await admin.ok("GET", "/api/v1/api-keys", params={"limit": 500})
    row = next(k for k in listed["items"] if k["id"] == created["id"])
    assert "key" not in row and "key_hash" not in row
    from execution_service.models import ApiKey

    async with ctx.session_factory() as session:
        stored = await session.get(ApiKey, created["id"])
    assert stored is not None and created["key"] not in stored.key_hash


async def test_me_reports_the_principal(admin: Actor) -> None:
    user = await admin.new_user()
    me = await user.ok("GET", "/api/v1/me")
    assert me == {
        "key_id": user.key_id,
        "name": f"user-{user.user_id}",
        "role": "user",
        "user_id": user.user_id,
    }


async def test_no_key_or_a_bad_key_is_401(client: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"X-API-Key": "exs_00000000_" + "x" * 32},
    ):
        response = await client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "unauthorized"


async def test_x_api_key_header_works(admin: Actor, client: httpx.AsyncClient) -> None:
    user = await admin.new_user()
    key = user.headers["Authorization"].removeprefix("Bearer ")
    response = await client.get("/api/v1/me", headers={"X-API-Key": key})
    assert response.status_code == 200 and response.json()["user_id"] == user.user_id


async def test_only_admin_manages_keys(admin: Actor) -> None:
    service = await admin.new_key("service")
    user = await admin.new_user()
    for actor in (service, user):
        assert (await actor.get("/api/v1/api-keys")).status_code == 403
        body = {"name": "x", "role": "admin"}
        assert (await actor.post("/api/v1/api-keys", json=body)).status_code == 403
        assert (await actor.delete(f"/api/v1/api-keys/{user.key_id}")).status_code == 403


async def test_revoked_key_stops_working(admin: Actor) -> None:
    user = await admin.new_user()
    assert (await user.get("/api/v1/me")).status_code == 200
    revoked = await admin.ok("DELETE", f"/api/v1/api-keys/{user.key_id}")
    assert revoked["revoked_at"] is not None
    assert (await user.get("/api/v1/me")).status_code == 401
    assert (await admin.delete("/api/v1/api-keys/999999")).status_code == 404


async def test_role_and_user_id_must_agree(admin: Actor) -> None:
    for body in ({"name": "u", "role": "user"}, {"name": "a", "role": "admin", "user_id": 5}):
        response = await admin.post("/api/v1/api-keys", json=body)
        assert response.status_code == 422
