"""Liveness (no I/O), readiness (database reachable, worker heartbeats fresh), and Prometheus
metrics (unauthenticated, like the probes: operators keep them on their own network)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import select, text

from execution_service import __version__, metrics
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


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus_metrics() -> Response:
    """Prometheus text exposition format: the series are listed in the README."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
