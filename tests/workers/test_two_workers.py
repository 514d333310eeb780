"""Two `execution-service worker` processes on one PostgreSQL, 200 positions crossing their stop
at once: every position closed exactly once, exactly one exit order each on the fake exchange."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from execution_service.context import AppContext
from execution_service.models import ExecutionLog, ExecutionPosition
from execution_service.settings import Settings
from tests.factories import Actor
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection


async def test_two_workers_close_each_position_once(
    is_postgres: bool,
    admin: Actor,
    ctx: AppContext,
    settings: Settings,
    fake_binance: FakeBinance,
    tmp_path: Path,
) -> None:
    if not is_postgres:
        pytest.skip("several worker processes need PostgreSQL (SQLite is for one process)")
    user = await admin.new_user()
    conns = [
        await ccxt_connection(
            user, fake_binance, position_size_mode="fixed_quantity", position_size_value="0.001"
        )
        for _ in range(20)
    ]
    ids = [c["id"] for c in conns]
    for _ in range(10):
        result = await user.ok(
            "POST",
            "/api/v1/signals",
            201,
            json={
                "symbol": "BTC/USDT",
                "direction": "buy",
                "sl_price": "45000",
                "connection_ids": ids,
            },
        )
        assert {e["status"] for e in result["executions"]} == {"filled"}
    async with ctx.session_factory() as session:
        open_ids = set(
            (
                await session.scalars(
                    select(ExecutionPosition.id).where(
                        ExecutionPosition.execution_connection_id.in_(ids),
                        ExecutionPosition.status == "open",
                    )
                )
            ).all()
        )
    assert len(open_ids) == 200
    buys = len(fake_binance.orders)

    env = {
        **os.environ,
        "EXEC_ENV": "test",
        "EXEC_OUTBOUND_ALLOW_PRIVATE": "true",  # the fakes listen on loopback
        "EXEC_DATABASE_URL": settings.database_url,
        "EXEC_ENCRYPTION_KEYS": settings.encryption_keys.get_secret_value(),  # type: ignore[union-attr]
        "EXEC_MONITOR_INTERVAL_SECONDS": "0.1",
        "EXEC_HEALTH_INTERVAL_SECONDS": "3600",
        "EXEC_ORDER_TRACKER_INTERVAL_SECONDS": "3600",
        "EXEC_LOG_LEVEL": "WARNING",
        # Every connection here is the fake's one API key: 200 exits are 200 orders of one
        # Binance account, past its 100 per 10 s. Scaled as the suite's own app is (conftest).
        "EXEC_BUDGET_LIMIT_SCALE": str(settings.budget_limit_scale),
        # Two workers beside this process's pools stay within the suite's 20 (tests/pg.py).
        "EXEC_DB_POOL_SIZE": "2",
        "EXEC_DB_MAX_OVERFLOW": "1",
    }
    # stderr to files, not pipes: a pipe nobody reads fills up (64 KiB of tracebacks under
    # load) and blocks the worker mid-tick, holding its database connections.
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "execution_service.cli", "worker"],
            env=env,
            stderr=log.open("wb"),
        )
        for log in logs
    ]
    try:
        await asyncio.sleep(1.0)  # both running and ticking before the price moves
        fake_binance.set_price("BTC/USDT", "44000")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            async with ctx.session_factory() as session:
                closed = await session.scalar(
                    select(func.count()).where(
                        ExecutionPosition.id.in_(open_ids), ExecutionPosition.status == "closed"
                    )
                )
            if closed == 200:
                break
            await asyncio.sleep(0.2)
        assert closed == 200
    finally:
        for proc in workers:
            proc.terminate()
        # Wait without blocking the loop: the fake exchange lives in it and must keep answering
        # the workers' last requests while they finish the tick in hand.
        deadline = time.monotonic() + 60
        while any(proc.poll() is None for proc in workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for proc in workers:
            if proc.poll() is None:  # stuck: fail below with its log, not hang the suite
                proc.kill()
                proc.wait()
    for proc, log in zip(workers, logs, strict=True):
        err = log.read_text(errors="replace")
        assert proc.returncode == 0, err
        assert "Traceback" not in err, err

    async with ctx.session_factory() as session:
        exits = (
            await session.scalars(
                select(ExecutionLog).where(
                    ExecutionLog.position_id.in_(open_ids), ExecutionLog.purpose == "exit"
                )
            )
        ).all()
    assert len(exits) == 200 and {e.position_id for e in exits} == open_ids
    assert {e.status for e in exits} == {"filled"} and {e.close_reason for e in exits} == {"sl"}
    # Open positions left by earlier tests on this fake may close too (their stops are crossed
    # as well); ours must each have exactly one SELL, and no client order id may repeat.
    ours = {e.client_order_id for e in exits}
    sells = [o.client_order_id for o in fake_binance.orders[buys:] if o.side == "SELL"]
    assert len(sells) == len(set(sells))
    assert sorted(c for c in sells if c in ours) == sorted(ours)
