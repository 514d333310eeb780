"""Readiness: the database answers, and (when this process runs workers) some loop has beaten
recently, and the position monitor and the order tracker each within their own threshold.
Stale market-data feeds (and venues whose public prices stopped answering the monitor), and
feeds polled while their venue could stream them, are reported beside, without making the
service unready: a venue's outage is not this service's, and every replica would drop out of
the load balancer together over it (alert on `stale` and `polling`, or on the
`execution_market_data_stale_feeds`, `execution_market_data_feeds{mode}` and
`execution_price_venues_stale` gauges)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.health.repository import HeartbeatRepository
from execution_service.market_data.feeds import polled_streams, stale_feeds
from execution_service.market_data.prices import venue_name
from execution_service.models import WorkerHeartbeat
from execution_service.positions.repository.shares import ShareRepository


async def readiness(ctx: AppContext) -> dict[str, dict[str, Any]]:
    """Each check by name, each with `ok` but `market_data` and `monitor_shares` (reported,
    never failing). Never raises: a failure is a check that is not ok."""
    checks: dict[str, dict[str, Any]] = {}
    beats: Sequence[WorkerHeartbeat]
    stale: list[int] | None = None
    polling: list[int] = []
    owners: dict[str, int] | None = None
    try:
        async with ctx.session_factory() as session:
            repo = HeartbeatRepository(session)
            await repo.ping()
            beats = await repo.beats()
            stale = await stale_feeds(session, ctx.settings.market_data_stale_seconds)
            polling = await polled_streams(session, ctx.settings)
            if ctx.engine.dialect.name == "postgresql":
                owners = await ShareRepository(session).owners(utcnow())
        checks["database"] = {"ok": True}
    except Exception as exc:  # readiness reports any failure; it never raises
        checks["database"] = {"ok": False, "error": type(exc).__name__}
        beats = []
    if ctx.settings.workers_enabled:
        stale_after = timedelta(seconds=ctx.settings.heartbeat_stale_seconds)
        now = utcnow()
        fresh = [b.name for b in beats if now - b.beat_at <= stale_after]
        checks["workers"] = {"ok": bool(fresh), "fresh": sorted(set(fresh))}
        # The loops that protect money have their own, tighter, thresholds: a service whose
        # monitor (stops, targets, liquidations) or order tracker stalled is not ready, however
        # fresh its other loops are.
        for name, limit in (
            ("position_monitor", ctx.settings.monitor_stale_seconds),
            ("order_tracker", ctx.settings.order_tracker_stale_seconds),
        ):
            newest = max((b.beat_at for b in beats if b.name == name), default=None)
            age = None if newest is None else (now - newest).total_seconds()
            checks[name] = {
                "ok": age is not None and age <= limit,
                "age_seconds": None if age is None else round(age, 1),
                "stale_after_seconds": limit,
            }
        # Start-up after a crash: every venue-held SL/TP is reconciled (and what is missing
        # re-placed, or left to the monitor where the venue refuses) before this is ready.
        checks["protection"] = {
            "ok": ctx.protection_checked,
            "unprotected": ctx.unprotected_positions,
        }
    if stale is not None:
        # `polling`: connections whose venue could stream them, polled (stream down or silent).
        checks["market_data"] = {"stale": stale, "polling": polling}
    if ctx.monitor_shares is not None or owners:
        # The monitor's work split among the worker processes (reported, never failing): this
        # process's shares, and the lease table's, by holder ("" is held by nobody right now).
        held, of, workers = ctx.monitor_shares or (0, 0, 0)
        checks["monitor_shares"] = {"held": held, "of": of, "workers": workers}
        if owners is not None:
            checks["monitor_shares"]["holders"] = owners
    if ctx.settings.workers_enabled:  # this process's monitor: venues whose prices stopped
        checks["venue_prices"] = {"stale": sorted({venue_name(v) for v in ctx.stale_price_venues})}
    with contextlib.suppress(Exception):  # reported, never failing: a venue's ban is not ours
        budgets = await ctx.adapters.budget_states()
        if budgets:
            checks["request_budget"] = {"paused": [b for b in budgets if b["paused_until"]]}
    return checks
