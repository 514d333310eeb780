"""Credentials appear in no response body, no log line and no error text."""

from __future__ import annotations

import logging

import pytest

from tests.factories import Actor

SECRET = "sekret-XYZ-0123456789-abcdefghij"
PUBLIC = "pubkey-ABCDEFGHIJ-0123456789"
PASSPHRASE = "pass-phrase-QWERTY-777"


async def test_credentials_never_leave_the_service(
    user: Actor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    creds = {"api_key": PUBLIC, "api_secret": SECRET, "passphrase": PASSPHRASE}
    bodies: list[str] = []

    async def call(method: str, url: str, json: object = None) -> None:
        response = await user.request(method, url, json=json)
        bodies.append(f"{response.status_code} {response.headers} {response.text}")

    await call(
        "POST",
        "/api/v1/connections",
        {
            "name": "x",
            "adapter": "ccxt",
            "exchange": "binance",
            "credentials": creds,
            "api_base_url": "http://127.0.0.1:9",
        },
    )
    conn_id = (await user.ok("GET", "/api/v1/connections"))["items"][0]["id"]
    for method, url, body in [
        ("GET", f"/api/v1/connections/{conn_id}", None),
        ("GET", "/api/v1/connections", None),
        ("POST", f"/api/v1/connections/{conn_id}/test", None),
        ("POST", f"/api/v1/connections/{conn_id}/activate", None),
        ("GET", f"/api/v1/connections/{conn_id}/balance", None),
        (
            "PATCH",
            f"/api/v1/connections/{conn_id}",
            {"credentials": {"api_key": PUBLIC, "api_secret": SECRET, "bogus": SECRET}},
        ),
        (
            "PATCH",
            f"/api/v1/connections/{conn_id}",
            {"credentials": {"api_key": PUBLIC, "api_secret": 12}},
        ),
        ("PATCH", f"/api/v1/connections/{conn_id}", {"credentials": creds}),
        ("POST", "/api/v1/connections", {"name": "x", "adapter": "paper", "credentials": creds}),
        (
            "POST",
            "/api/v1/connections",
            {"name": "x", "adapter": "ccxt", "exchange": "nope_nope", "credentials": creds},
        ),
        (
            "POST",
            "/api/v1/connections",
            {
                "name": "x",
                "adapter": "ccxt",
                "exchange": "binance",
                "credentials": {"api_key": SECRET},
            },
        ),
    ]:
        await call(method, url, body)
    assert len(bodies) == 12
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    for secret in (SECRET, PASSPHRASE):
        for body in bodies:
            assert secret not in body
        assert secret not in logged
    assert PUBLIC not in "".join(bodies)  # only the last four characters are ever shown
