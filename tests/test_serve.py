"""The service as `make run` starts it: a real process, SQLite, API and workers together."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BOOTSTRAP_KEY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until_up(http: httpx.AsyncClient) -> None:
    """Until the served process answers /health (20 s at most)."""
    for _ in range(200):
        try:
            if (await http.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    raise AssertionError("the service did not start")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    env = {
        **os.environ,
        "EXEC_OUTBOUND_ALLOW_PRIVATE": "true",  # the fakes listen on loopback
        "EXEC_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/execution.db",
        "EXEC_ENCRYPTION_KEY_FILE": str(tmp_path / "keys"),
        "EXEC_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY,
        "EXEC_PORT": str(port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "execution_service.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    headers = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10
    ) as http:
        try:
            await until_up(http)
            yield http
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: -15 after a clean shutdown.
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode in (0, -15) and "Application shutdown complete" in err, err


async def test_a_price_across_the_stop_closes_the_position_within_two_seconds(
    served: httpx.AsyncClient,
) -> None:
    http = served
    ready = await http.get("/health/ready")
    assert ready.status_code in (200, 503)
    preset = (
        await http.post(
            "/api/v1/presets",
            json={"name": "p", "position_size_mode": "fixed_quantity", "position_size_value": "1"},
        )
    ).json()
    dc = (await http.post("/api/v1/data-connections", json={"name": "feed"})).json()
    prices = f"/api/v1/data-connections/{dc['id']}/market-data"
    await http.post(prices, json={"prices": [{"symbol": "BTC/USDT", "price": "100"}]})
    conn = (
        await http.post(
            "/api/v1/connections",
            json={
                "name": "paper",
                "adapter": "paper",
                "preset_id": preset["id"],
                "data_connection_id": dc["id"],
            },
        )
    ).json()
    await http.post(f"/api/v1/connections/{conn['id']}/activate")
    signal = (
        await http.post(
            "/api/v1/signals", json={"symbol": "BTC/USDT", "direction": "buy", "sl_price": "95"}
        )
    ).json()
    assert "executions" in signal, signal
    position_id = signal["executions"][0]["position_id"]

    started = time.monotonic()
    await http.post(prices, json={"prices": [{"symbol": "BTC/USDT", "price": "94"}]})
    while True:
        position = (await http.get(f"/api/v1/positions/{position_id}")).json()
        if position["status"] == "closed":
            break
        assert time.monotonic() - started < 2, f"still {position['status']} after 2 s"
        await asyncio.sleep(0.05)
    # The paper stop fills at its level, 95 (the price is 94): (95 - 100) x 1 = -5
    assert position["closed_reason"] == "sl" and position["pnl"] == "-5"
    # Ready once every loop that protects money has ticked: the order tracker's first tick may
    # come after this close on a loaded machine (until then /health/ready is rightly 503).
    for _ in range(100):
        ready = await http.get("/health/ready")
        if ready.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert ready.status_code == 200, ready.text
    assert "position_monitor" in ready.json()["checks"]["workers"]["fresh"]
