"""Bad input gets a 4xx problem+json and writes nothing."""

from __future__ import annotations

import httpx

from execution_service.settings import Settings
from tests.factories import Actor


async def _counts(user: Actor) -> tuple[int, int, int]:
    return tuple(
        [
            (await user.ok("GET", f"/api/v1/{p}"))["total"]
            for p in ("presets", "data-connections", "connections")
        ]
    )  # type: ignore[return-value]


async def test_malformed_and_mistyped_bodies(user: Actor, client: httpx.AsyncClient) -> None:
    before = await _counts(user)
    cases = [
        ("/api/v1/presets", b"{not json"),
        ("/api/v1/presets", b"[]"),
        (
            "/api/v1/presets",
            b'{"name": 5, "position_size_mode": "fixed_quantity", "position_size_value": "1"}',
        ),
        (
            "/api/v1/presets",
            b'{"name": "x", "position_size_mode": "fixed_quantity", "position_size_value": true}',
        ),
        (
            "/api/v1/presets",
            b'{"name": "x", "position_size_mode": "fixed_quantity", "position_size_value": "1e400"}',
        ),
        ("/api/v1/data-connections", b'{"name": ""}'),
        (
            "/api/v1/connections",
            b'{"name": "c", "adapter": "paper", "paper": {"balance": {"USDT": "-5"}}}',
        ),
        (
            "/api/v1/connections",
            b'{"name": "c", "adapter": "paper", "paper": {"balance": {"usdt lower": "5"}}}',
        ),
        # Strict where lax parsing would guess: a boolean is no owner id, 0 or "yes" no flag.
        (
            "/api/v1/presets",
            b'{"name": "x", "position_size_mode": "fixed_quantity", "position_size_value": "1",'
            b' "user_id": true}',
        ),
        ("/api/v1/data-connections", b'{"name": "d", "type": "manual", "sandbox": 0}'),
        ("/api/v1/connections", b'{"name": "c", "adapter": "paper", "sandbox": "yes"}'),
    ]
    for url, body in cases:
        response = await client.post(
            url, content=body, headers={**user.headers, "content-type": "application/json"}
        )
        assert response.status_code == 422, (url, body, response.text)
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert {"type", "title", "status", "detail", "code", "errors"} <= problem.keys()
        assert all({"loc", "msg"} == e.keys() for e in problem["errors"])
    assert await _counts(user) == before


async def test_oversized_bodies_are_413(
    user: Actor, client: httpx.AsyncClient, settings: Settings
) -> None:
    before = await _counts(user)
    big = b'{"name": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    response = await client.post(
        "/api/v1/presets", content=big, headers={**user.headers, "content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"

    async def chunks():  # no Content-Length: the limit still holds
        for _ in range(settings.max_body_bytes // 1000 + 2):
            yield b"x" * 1000

    response = await client.post(
        "/api/v1/presets",
        content=chunks(),
        headers={**user.headers, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert await _counts(user) == before


async def test_unknown_routes_and_methods_are_problems(user: Actor) -> None:
    response = await user.get("/api/v1/nope")
    assert (
        response.status_code == 404
        and response.headers["content-type"] == "application/problem+json"
    )
    response = await user.request("PUT", "/api/v1/presets")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


async def test_list_limits(user: Actor) -> None:
    assert (await user.get("/api/v1/presets", params={"limit": 501})).status_code == 422
    assert (await user.get("/api/v1/presets", params={"offset": -1})).status_code == 422
    page = await user.ok("GET", "/api/v1/presets", params={"limit": 500})
    assert page["limit"] == 500 and page["offset"] == 0


async def test_a_nul_character_is_refused_not_a_500(user: Actor) -> None:
    dc = await user.data_connection()
    response = await user.get(
        f"/api/v1/data-connections/{dc['id']}/market-data/latest", params={"symbol": "00\x00"}
    )
    assert response.status_code in (404, 422), (
        response.text
    )  # SQLite finds nothing; PostgreSQL refuses it
    created = await user.post(
        "/api/v1/presets",
        json={
            "name": "nul\x00name",
            "position_size_mode": "fixed_quantity",
            "position_size_value": "1",
        },
    )
    assert created.status_code in (201, 422)


async def test_a_number_is_no_datetime_in_a_query(user: Actor) -> None:
    """pydantic reads `since=0` as the Unix epoch; a client that sent it meant something else."""
    for url in ("/api/v1/logs", "/api/v1/analytics/summary", "/api/v1/analytics/daily"):
        for bad in ("0", "1700000000", "-5", "1.5e9"):
            response = await user.get(f"{url}?since={bad}")
            assert response.status_code == 422, (url, bad, response.text)
        assert (await user.get(f"{url}?since=2026-01-01T00:00:00Z")).status_code == 200
    assert (await user.get("/api/v1/analytics/summary?since=2026-01-01")).status_code == 200
