"""Issue #15: the OpenAPI request schemas state the bounds the server enforces; names refuse
control and bidi characters on every kind of row (API keys and PATCH included); 405 lists every
method of a path."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import Actor

PRESET = {"name": "p", "position_size_mode": "fixed_quantity", "position_size_value": "1"}


async def test_405_allow_lists_every_method_of_the_path(
    client: httpx.AsyncClient, user: Actor
) -> None:
    response = await user.request("PUT", "/api/v1/presets")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert {"GET", "POST"} <= set(response.headers["Allow"].replace(" ", "").split(","))
    # A path with an id: every method of its routes, not the first route's alone.
    one = await user.request("POST", "/api/v1/presets/1")
    assert one.status_code == 405
    assert {"GET", "PATCH", "DELETE"} <= set(one.headers["Allow"].replace(" ", "").split(","))


@pytest.mark.parametrize(
    "name",
    [
        "evil\u202egnp.exe",  # right-to-left override
        "a\u202ab",
        "a\u2066b",
        "a\u2069b",
        "zero\u200bwidth",  # Cf
        "new\nline",
        "tab\there",
        "nul\x00",
        "esc\x1b[31m",
        "c1\x85",
    ],
)
async def test_names_refuse_control_and_bidi_characters(
    admin: Actor, user: Actor, name: str
) -> None:
    preset = await user.ok("POST", "/api/v1/presets", 201, json=PRESET)
    attempts = [
        await user.post("/api/v1/presets", json={**PRESET, "name": name}),
        await user.patch(f"/api/v1/presets/{preset['id']}", json={"name": name}),
        await user.post("/api/v1/data-connections", json={"name": name}),
        await user.post(
            "/api/v1/connections", json={"name": name, "type": "paper", "preset_id": preset["id"]}
        ),
        await admin.post("/api/v1/api-keys", json={"name": name, "role": "service"}),
    ]
    for response in attempts:
        assert response.status_code == 422, (response.request.url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    # Ordinary Unicode is fine.
    assert (
        await user.post("/api/v1/presets", json={**PRESET, "name": "Größe 東京 🚀"})
    ).status_code == 201


def _bounds(schema: dict[str, Any]) -> dict[str, Any]:
    for option in schema.get("anyOf", [schema]):
        if option.get("type") in ("integer", "string"):
            return option
    raise AssertionError(schema)


async def test_openapi_request_bounds_are_the_servers(
    client: httpx.AsyncClient, user: Actor
) -> None:
    """Each documented bound of these request fields is enforced: the bound itself is accepted,
    one past it refused; and every request body refuses unknown fields, as documented."""
    spec = (await client.get("/openapi.json")).json()["components"]["schemas"]
    preset = spec["PresetCreate"]
    checked = 0
    for field in ("max_positions", "max_positions_per_symbol"):
        bounds = _bounds(preset["properties"][field])
        assert bounds["type"] == "integer"
        low, high = int(bounds["minimum"]), int(bounds["maximum"])
        for value, status in ((low, 201), (high, 201), (low - 1, 422), (high + 1, 422)):
            response = await user.post("/api/v1/presets", json={**PRESET, field: value})
            assert response.status_code == status, (field, value, response.text)
            checked += 1
    name = _bounds(preset["properties"]["name"])
    for value, status in (
        ("x" * name["maxLength"], 201),
        ("x" * (name["maxLength"] + 1), 422),
        ("x" * (name["minLength"] - 1), 422),
    ):
        response = await user.post("/api/v1/presets", json={**PRESET, "name": value})
        assert response.status_code == status
        checked += 1
    assert checked == 11
    for model in ("PresetCreate", "PresetUpdate", "DataConnectionCreate", "ApiKeyCreate"):
        assert spec[model].get("additionalProperties") is False, model
    unknown = await user.post("/api/v1/presets", json={**PRESET, "surprise": 1})
    assert unknown.status_code == 422
