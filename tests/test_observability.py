"""Request ids and structured logs: every answer carries an `X-Request-ID`, and the log lines of a
signal carry the ids of what they are about."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from execution_service import observability
from execution_service.app import create_app
from execution_service.settings import Settings
from tests.factories import Actor, paper_setup


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The service's own JSON handler, writing to a buffer, on the `execution_service` loggers."""
    out = io.StringIO()
    logger = logging.getLogger("execution_service")
    handler = observability.handler("json", out)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(level)


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_a_sane_request_id_is_echoed(client: httpx.AsyncClient, admin: Actor) -> None:
    rid = "req-2026.11/abc:42"
    response = await client.get("/api/v1/me", headers={**admin.headers, "X-Request-ID": rid})
    assert response.headers["x-request-id"] == rid


@pytest.mark.parametrize("sent", [None, "has spaces in it", "x" * 129, "semi;colon"])
async def test_otherwise_one_is_generated(client: httpx.AsyncClient, sent: str | None) -> None:
    headers = {"X-Request-ID": sent} if sent is not None else {}
    response = await client.get("/health", headers=headers)
    rid = response.headers["x-request-id"]
    assert rid != sent and len(rid) == 32 and int(rid, 16) >= 0


async def test_errors_carry_a_request_id_too(client: httpx.AsyncClient) -> None:
    unauthorized = await client.get("/api/v1/me")
    not_found = await client.get("/no/such/path")
    too_large = await client.post(
        "/api/v1/presets", content=b"x" * 2_000_000, headers={"content-type": "application/json"}
    )
    assert [r.status_code for r in (unauthorized, not_found, too_large)] == [401, 404, 413]
    ids = {r.headers["x-request-id"] for r in (unauthorized, not_found, too_large)}
    assert len(ids) == 3


async def test_an_unhandled_error_still_carries_the_request_id(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500 and response.headers["x-request-id"] == "boom-1"
    assert response.json()["code"] == "internal_error"


async def test_a_signal_logs_json_with_its_ids(
    client: httpx.AsyncClient, user: Actor, json_lines: io.StringIO
) -> None:
    acct = await paper_setup(user, position_size_mode="fixed_quantity", position_size_value="1")
    payload = {"symbol": "BTC/USDT", "direction": "buy", "connection_ids": [acct.conn_id]}
    response = await client.post(
        "/api/v1/signals", json=payload, headers={**user.headers, "X-Request-ID": "sig-req-1"}
    )
    assert response.status_code == 201, response.text
    signal = response.json()
    client_order_id = f"es-{signal['id']}-{acct.conn_id}-e"
    order = [line for line in lines(json_lines) if line.get("client_order_id") == client_order_id]
    assert order, json_lines.getvalue()
    line = order[0]
    assert line["request_id"] == "sig-req-1"
    assert line["connection_id"] == acct.conn_id
    assert line["signal_id"] == signal["id"]
    assert line["status"] == "filled" and line["level"] == "INFO"
    assert {"time", "logger", "message", "latency_ms"} <= line.keys()
    access = [line for line in lines(json_lines) if line.get("route") == "/api/v1/signals"]
    assert access and access[-1]["request_id"] == "sig-req-1" and access[-1]["status"] == 201


def test_secrets_are_redacted_from_extras_and_messages(json_lines: io.StringIO) -> None:
    log = logging.getLogger("execution_service.test")
    key = "exs_0d69db07_4L1fTY6XsquzwCWT8iAeVlVjRvHfpsDE"
    log.info(
        "created %s",
        key,
        extra={"api_secret": "s3cr3t-value", "payload": {"password": "hunter2", "n": 1}},
    )
    text = json_lines.getvalue()
    assert "s3cr3t-value" not in text and "hunter2" not in text and key not in text
    line = lines(json_lines)[-1]
    assert line["api_secret"] == "***" and line["payload"] == {"password": "***", "n": 1}
    assert line["message"] == "created exs_0d69db07_***"


def test_log_format_follows_the_environment() -> None:
    assert Settings(env="development").effective_log_format == "text"
    assert Settings(env="production").effective_log_format == "json"
    assert Settings(env="production", log_format="text").effective_log_format == "text"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    record.signal_id = 7
    assert observability.TextFormatter().format(record).endswith("x: hello signal_id=7")
