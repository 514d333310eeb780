"""Liveness (no I/O) and readiness (database reachable, worker heartbeats fresh)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import select, text

from execution_service import __version__
from execution_service.db import utcnow
from execution_service.deps import ContextDep
from execution_service.models import WorkerHeartbeat

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/health/ready", responses={503: {"description": "not ready"}})
async def ready(ctx: ContextDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        async with ctx.session_factory() as session:
            await session.execute(text("SELECT 1"))
            beats = (await session.scalars(select(WorkerHeartbeat))).all()
        checks["database"] = {"ok": True}
    except Exception as exc:  # readiness reports any failure; it never raises
        checks["database"] = {"ok": False, "error": type(exc).__name__}
        beats = []
    if ctx.settings.workers_enabled:
        stale_after = timedelta(seconds=ctx.settings.heartbeat_stale_seconds)
        now = utcnow()
        fresh = [b.name for b in beats if now - b.beat_at <= stale_after]
        checks["workers"] = {"ok": bool(fresh), "fresh": sorted(fresh)}
    ok = all(check["ok"] for check in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )
