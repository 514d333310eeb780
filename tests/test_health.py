from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import delete

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.health.repository import HeartbeatRepository
from execution_service.models import WorkerHeartbeat
from execution_service.settings import Settings


async def test_health_is_ok_without_io(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": "0.1.0"}


async def test_ready_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == {"ok": True}


async def test_ready_fails_while_the_position_monitor_is_stalled(
    client: httpx.AsyncClient, ctx: AppContext, settings: Settings
) -> None:
    """Every other loop fresh, the monitor's last tick 20 s ago (threshold 15 s): 503, and the
    check says which loop; the next monitor tick makes the service ready again."""
    now = utcnow()
    ctx.settings = settings.model_copy(update={"workers_enabled": True})
    ctx.protection_checked = True  # this process's start-up protection pass ran
    try:
        async with ctx.session_factory() as session:
            beats = HeartbeatRepository(session)
            for name in ("order_tracker", "analytics", "webhook_delivery", "connection_health"):
                await beats.beat(name, "test", now)
            await beats.beat("position_monitor", "test", now - timedelta(seconds=20))
            await session.commit()
        response = await client.get("/health/ready")
        assert response.status_code == 503, response.text
        checks = response.json()["checks"]
        assert checks["workers"]["ok"] is True  # other loops are fresh...
        assert checks["position_monitor"]["ok"] is False  # ...but the stops are not watched
        assert checks["position_monitor"]["age_seconds"] >= 20
        assert checks["order_tracker"]["ok"] is True
        assert response.json()["detail"] == "not ready: position_monitor stale"
        async with ctx.session_factory() as session:
            await HeartbeatRepository(session).beat("position_monitor", "test", utcnow())
            await session.commit()
        assert (await client.get("/health/ready")).status_code == 200
    finally:
        ctx.settings = settings
        ctx.protection_checked = False
        async with ctx.session_factory() as session:
            await session.execute(delete(WorkerHeartbeat))
            await session.commit()


async def test_ready_fails_on_a_stale_order_tracker_by_its_own_threshold(
    client: httpx.AsyncClient, ctx: AppContext, settings: Settings
) -> None:
    """The tracker's threshold is its own: older than the monitor's limit is still ready, older
    than the tracker's is 503 naming the tracker."""
    ctx.settings = settings.model_copy(update={"workers_enabled": True})
    ctx.protection_checked = True  # this process's start-up protection pass ran
    tracker_limit = ctx.settings.order_tracker_stale_seconds
    monitor_limit = ctx.settings.monitor_stale_seconds
    assert tracker_limit > monitor_limit + 5
    try:
        for age, ready in ((monitor_limit + 5, True), (tracker_limit + 5, False)):
            async with ctx.session_factory() as session:
                beats = HeartbeatRepository(session)
                await beats.beat("position_monitor", "test", utcnow())
                await beats.beat("order_tracker", "test", utcnow() - timedelta(seconds=age))
                await session.commit()
            response = await client.get("/health/ready")
            checks = response.json()["checks"]
            assert (response.status_code == 200) is ready, response.text
            assert checks["order_tracker"]["ok"] is ready
            assert checks["position_monitor"]["ok"] is True
            if not ready:
                assert response.json()["detail"] == "not ready: order_tracker stale"
    finally:
        ctx.settings = settings
        ctx.protection_checked = False
        async with ctx.session_factory() as session:
            await session.execute(delete(WorkerHeartbeat))
            await session.commit()


async def test_ready_waits_for_the_start_up_protection_pass(
    client: httpx.AsyncClient, ctx: AppContext, settings: Settings
) -> None:
    """Every loop fresh (a process killed a moment ago left its heartbeats): not ready until this
    process's first order-tracker pass has reconciled the venue-held stops."""
    ctx.settings = settings.model_copy(update={"workers_enabled": True})
    try:
        async with ctx.session_factory() as session:
            beats = HeartbeatRepository(session)
            for name in ("order_tracker", "position_monitor"):
                await beats.beat(name, "killed", utcnow())
            await session.commit()
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["detail"] == "not ready: protection failing"
        ctx.protection_checked, ctx.unprotected_positions = True, 2
        response = await client.get("/health/ready")
        assert response.status_code == 200  # a venue refusing legs is reported, not failing
        assert response.json()["checks"]["protection"] == {"ok": True, "unprotected": 2}
    finally:
        ctx.settings = settings
        ctx.protection_checked, ctx.unprotected_positions = False, 0
        async with ctx.session_factory() as session:
            await session.execute(delete(WorkerHeartbeat))
            await session.commit()
