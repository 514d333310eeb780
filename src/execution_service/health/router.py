"""Liveness (no I/O), readiness (database reachable, worker heartbeats fresh), and Prometheus
metrics (unauthenticated, like the probes: operators keep them on their own network)."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from execution_service import __version__, metrics
from execution_service.deps import ContextDep
from execution_service.health import service

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/health/ready", responses={503: {"description": "not ready"}})
async def ready(ctx: ContextDep) -> JSONResponse:
    checks = await service.readiness(ctx)
    failing = [name for name, check in checks.items() if not check.get("ok", True)]
    if not failing:  # market_data has no `ok`: reported, never failing
        return JSONResponse({"status": "ok", "checks": checks})
    # Which check failed, in one line a probe's log or a person reads without parsing `checks`.
    detail = "not ready: " + ", ".join(
        f"{name} stale" if name in ("position_monitor", "order_tracker") else f"{name} failing"
        for name in failing
    )
    return JSONResponse(
        {"status": "unavailable", "detail": detail, "checks": checks}, status_code=503
    )


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus_metrics(ctx: ContextDep) -> Response:
    """Prometheus text exposition format: the series are listed in the README."""
    with contextlib.suppress(Exception):  # the request budgets' gauges, as the store has them
        await ctx.adapters.budget_states()
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
