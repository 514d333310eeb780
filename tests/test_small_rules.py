"""Issue #15's small ones: an Allow header on 405, strict integers, printable names, and
datetimes the service can hold (no 500 for an extreme but valid timestamp)."""

from __future__ import annotations

import pytest

from tests.factories import Actor

FQ = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}


async def test_405_says_what_is_allowed(user: Actor) -> None:
    response = await user.request("PUT", "/api/v1/presets")
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("value", [True, "3", 3.0, 2.5])
async def test_integers_are_strict(user: Actor, value: object) -> None:
    before = (await user.ok("GET", "/api/v1/presets"))["total"]
    response = await user.post("/api/v1/presets", json={"name": "p", **FQ, "max_positions": value})
    assert response.status_code == 422, response.text
    assert (await user.ok("GET", "/api/v1/presets"))["total"] == before  # nothing written


@pytest.mark.parametrize(
    "name",
    ["a\u202eb", "tab\there", "nul\x00", "zero\u200bwidth", "isolate\u2066x", "line\u2028", "  "],
)
async def test_names_hold_no_control_or_bidi_characters(user: Actor, name: str) -> None:
    for path, body in (
        ("/api/v1/presets", {"name": name, **FQ}),
        ("/api/v1/connections", {"name": name, "adapter": "paper"}),
        ("/api/v1/data-connections", {"name": name}),
    ):
        response = await user.post(path, json=body)
        assert response.status_code == 422, (path, name, response.text)
    assert (
        await user.post("/api/v1/presets", json={"name": "Ünïcødé ok 📈", **FQ})
    ).status_code == 201


@pytest.mark.parametrize(
    "moment", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "1900-01-01T00:00:00Z"]
)
async def test_extreme_timestamps_are_422_not_500(user: Actor, moment: str) -> None:
    dc = await user.data_connection()
    ingest = await user.post(
        f"/api/v1/data-connections/{dc['id']}/market-data",
        json={"prices": [{"symbol": "BTC/USDT", "price": "100", "timestamp": moment}]},
    )
    assert ingest.status_code == 422, ingest.text
    for path in (
        "/api/v1/logs",
        "/api/v1/analytics/summary",
        f"/api/v1/data-connections/{dc['id']}/market-data",
    ):
        response = await user.get(path, params={"since": moment, "symbol": "BTC/USDT"})
        assert response.status_code == 422, (path, response.text)
    assert (await user.get("/api/v1/logs")).status_code == 200  # the server is still fine
