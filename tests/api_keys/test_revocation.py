"""A revocation takes effect everywhere within a second (issue #15): open event streams of the
key close, and another API process (sharing the database) refuses the key. On PostgreSQL the
other process hears it by NOTIFY; on SQLite it keeps keys at most a second."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from execution_service.settings import Settings
from tests import pg
from tests.factories import Actor
from tests.test_server_limits import served


async def test_a_revoked_keys_event_stream_closes_within_a_second(
    admin: Actor, base_url: str
) -> None:
    user = await admin.new_user()
    async with (
        httpx.AsyncClient(base_url=base_url, headers=user.headers, timeout=10) as http,
        http.stream("GET", "/api/v1/events") as response,
    ):
        assert response.status_code == 200
        lines = response.aiter_lines()
        assert (await anext(lines)).startswith("retry:")
        await admin.ok("DELETE", f"/api/v1/api-keys/{user.key_id}")
        revoked_at = time.monotonic()
        rest = [line async for line in lines]  # ends when the server closes the stream
        assert time.monotonic() - revoked_at < 1.0
        assert "event: revoked" in rest


async def test_another_process_refuses_a_revoked_key_within_a_second(
    admin: Actor, settings: Settings, tmp_path: Path
) -> None:
    user = await admin.new_user()
    env = {"EXEC_DATABASE_URL": settings.database_url, "EXEC_MIGRATE_ON_START": "false"}
    env |= pg.SERVICE_POOLS
    env["EXEC_ENCRYPTION_KEYS"] = settings.encryption_keys.get_secret_value()  # type: ignore[union-attr]
    async with (
        served(tmp_path, **env) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=user.headers) as other,
    ):
        for _ in range(3):  # the other process has the key cached now
            assert (await other.get("/api/v1/me")).status_code == 200
        await admin.ok("DELETE", f"/api/v1/api-keys/{user.key_id}")
        revoked_at = time.monotonic()
        while (await other.get("/api/v1/me")).status_code == 200:
            assert time.monotonic() - revoked_at < 1.0, "still accepted after a second"
            await asyncio.sleep(0.05)
        assert (await other.get("/api/v1/me")).status_code == 401


async def test_event_streams_per_key_are_capped(admin: Actor, base_url: str) -> None:
    user = await admin.new_user()
    async with httpx.AsyncClient(base_url=base_url, headers=user.headers, timeout=10) as http:
        streams = [http.stream("GET", "/api/v1/events") for _ in range(5)]
        opened = [await s.__aenter__() for s in streams]
        try:
            readers = [response.aiter_lines() for response in opened]  # kept: a dropped
            for response, lines in zip(opened, readers, strict=True):  # reader closes its stream
                assert response.status_code == 200
                await anext(lines)  # each is live on the server
            sixth = await http.get("/api/v1/events")
            assert sixth.status_code == 429 and "EXEC_SSE_STREAMS_PER_KEY" in sixth.text
            other = await admin.new_user()
            async with http.stream("GET", "/api/v1/events", headers=other.headers) as theirs:
                assert theirs.status_code == 200  # another key's own cap
        finally:
            for s in streams:
                await s.__aexit__(None, None, None)
