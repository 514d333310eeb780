from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.health.repository import HeartbeatRepository
from execution_service.health.service import readiness
from execution_service.workers.runner import WorkerRunner


async def test_ready_lists_the_loops_that_beat_recently(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctx.settings, "workers_enabled", True)
    fresh, stale = f"fresh_{uuid.uuid4().hex[:8]}", f"stale_{uuid.uuid4().hex[:8]}"
    await WorkerRunner(ctx, loops=[]).heartbeat(fresh)
    long_ago = utcnow() - timedelta(seconds=ctx.settings.heartbeat_stale_seconds + 60)
    async with ctx.session_factory() as session:
        await HeartbeatRepository(session).beat(stale, "elsewhere:1", long_ago)
        await session.commit()

    checks = await readiness(ctx)

    assert checks["database"] == {"ok": True}
    assert checks["workers"]["ok"] is True
    assert fresh in checks["workers"]["fresh"] and stale not in checks["workers"]["fresh"]


async def test_a_beat_replaces_the_loops_row_whichever_process_beats(ctx: AppContext) -> None:
    name = f"loop_{uuid.uuid4().hex[:8]}"
    async with ctx.session_factory() as session:
        repo = HeartbeatRepository(session)
        await repo.ping()
        await repo.beat(name, "host-a:1", utcnow() - timedelta(seconds=5))
        await repo.beat(name, "host-b:2", utcnow())
        await session.commit()
        rows = [b for b in await repo.beats() if b.name == name]
    assert len(rows) == 1 and rows[0].instance == "host-b:2"


async def test_not_ready_without_workers_when_this_process_runs_them(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctx.settings, "workers_enabled", True)
    monkeypatch.setattr(ctx.settings, "heartbeat_stale_seconds", 1e-9)  # every beat is stale

    checks = await readiness(ctx)

    assert checks["workers"] == {"ok": False, "fresh": []}
