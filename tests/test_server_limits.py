"""The served process's own limits (issue #15): a client cannot hold a connection open by
sending its headers or body slowly, and X-Forwarded-For is believed only from listed proxies."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.conftest import BOOTSTRAP_KEY
from tests.test_serve import free_port, until_up


@asynccontextmanager
async def served(tmp_path: Path, **settings: str) -> AsyncIterator[int]:
    port = free_port()
    env = {
        **os.environ,
        "EXEC_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/execution.db",
        "EXEC_ENCRYPTION_KEY_FILE": str(tmp_path / "keys"),
        "EXEC_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY,
        "EXEC_PORT": str(port),
        "EXEC_WORKERS_ENABLED": "false",
        **settings,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "execution_service.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            await until_up(http)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def closed_within(port: int, send: bytes, seconds: float) -> float:
    """Send `send` and nothing more; how long until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(send)
    await writer.drain()
    started = time.monotonic()
    try:
        data = await asyncio.wait_for(reader.read(), timeout=seconds)
    finally:
        writer.close()
    assert b"200 OK" not in data
    return time.monotonic() - started


async def test_slow_headers_and_slow_bodies_are_cut_off(tmp_path: Path) -> None:
    limits = {"EXEC_HTTP_HEADER_TIMEOUT_SECONDS": "0.5", "EXEC_HTTP_BODY_TIMEOUT_SECONDS": "0.5"}
    async with served(tmp_path, **limits) as port:
        assert await closed_within(port, b"", 5) < 2  # opened, never sent anything
        assert await closed_within(port, b"GET /health HTTP/1.1\r\nHost: x\r\n", 5) < 2
        body = b"POST /api/v1/presets HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        assert await closed_within(port, body, 5) < 2
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/health")).status_code == 200  # a prompt client is served


async def test_forwarded_for_is_believed_only_from_listed_proxies(tmp_path: Path) -> None:
    """Two bad keys (one prefix) "from" one address block that address for the prefix; a third
    "from" another address is blocked only if the server ignored the header."""

    async def third_from_elsewhere(port: int) -> int:
        bad = {"Authorization": "Bearer exs_00000000_wrong"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(2):
                r = await http.get("/api/v1/me", headers={**bad, "X-Forwarded-For": "203.0.113.7"})
                assert r.status_code == 401
            r = await http.get("/api/v1/me", headers={**bad, "X-Forwarded-For": "198.51.100.9"})
            return r.status_code

    tight = {"EXEC_AUTH_MAX_FAILURES": "2"}
    async with served(tmp_path, **tight) as port:
        assert await third_from_elsewhere(port) == 429  # not listed: both are 127.0.0.1
    async with served(tmp_path, **tight, EXEC_FORWARDED_ALLOW_IPS="127.0.0.1") as port:
        assert await third_from_elsewhere(port) == 401  # listed: two clients
