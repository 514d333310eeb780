"""Two `execution-service worker` processes split the monitor's shares; one is SIGKILLed and
the other takes its shares over within 5 s, closing every position exactly once (issue #20)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.models import ExecutionLog, ExecutionPosition, MonitorShare, MonitorWorker
from execution_service.positions.repository.shares import ShareRepository
from execution_service.positions.shares import SHARES
from execution_service.settings import Settings
from tests.factories import Actor, paper_setup
from tests.workers.test_monitor import open_position

SYMBOLS = [f"T{n}/USDT" for n in range(40)]


async def _holders(ctx: AppContext) -> dict[str, int]:
    async with ctx.session_factory() as session:
        return await ShareRepository(session).owners(utcnow())


async def _until(check: object, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if await check():  # type: ignore[operator]
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


async def _closed(ctx: AppContext, ids: set[int]) -> int:
    async with ctx.session_factory() as session:
        n = await session.scalar(
            select(func.count()).where(
                ExecutionPosition.id.in_(ids), ExecutionPosition.status == "closed"
            )
        )
    return int(n or 0)


async def test_a_killed_workers_shares_are_taken_over_and_nothing_closes_twice(
    is_postgres: bool, user: Actor, ctx: AppContext, settings: Settings, tmp_path: Path
) -> None:
    if not is_postgres:
        pytest.skip("several worker processes need PostgreSQL (SQLite is for one process)")
    async with ctx.session_factory() as session:  # earlier tests' workers are forgotten
        await session.execute(delete(MonitorShare))
        await session.execute(delete(MonitorWorker))
        await session.commit()
    acct = await paper_setup(
        user, position_size_mode="fixed_quantity", position_size_value="1", max_positions=100
    )
    pids: dict[str, int] = {}
    for symbol in SYMBOLS:
        await acct.price("100", symbol=symbol)
        pids[symbol] = await open_position(acct, symbol=symbol, sl_price="95")

    env = {
        **os.environ,
        "EXEC_ENV": "test",
        "EXEC_DATABASE_URL": settings.database_url,
        "EXEC_ENCRYPTION_KEYS": settings.encryption_keys.get_secret_value(),  # type: ignore[union-attr]
        "EXEC_MONITOR_INTERVAL_SECONDS": "0.2",
        "EXEC_HEALTH_INTERVAL_SECONDS": "3600",
        "EXEC_LOG_LEVEL": "WARNING",
        "EXEC_DB_POOL_SIZE": "2",  # two workers beside the suite's pools stay within its 20
        "EXEC_DB_MAX_OVERFLOW": "1",
    }
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

        async def split() -> bool:
            held = await _holders(ctx)
            return sorted(n for who, n in held.items() if who) == [SHARES // 2] * 2

        await _until(split, 20)
        first_half, second_half = SYMBOLS[:20], SYMBOLS[20:]
        for symbol in first_half:  # judged by both workers, each on its own shares
            await acct.price("94", symbol=symbol)

        async def first_closed() -> bool:
            return await _closed(ctx, {pids[s] for s in first_half}) == len(first_half)

        await _until(first_closed, 20)

        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        survivor = f"{os.uname().nodename}:{workers[1].pid}"

        async def taken_over() -> bool:
            return (await _holders(ctx)).get(survivor) == SHARES

        took = await _until(taken_over, 10)
        assert took <= 5.0, f"the dead worker's shares were taken over after {took:.1f} s"
        for symbol in second_half:
            await acct.price("94", symbol=symbol)

        async def all_closed() -> bool:
            return await _closed(ctx, set(pids.values())) == len(SYMBOLS)

        await _until(all_closed, 20)
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 30
        while any(proc.poll() is None for proc in workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = logs[1].read_text(errors="replace")
    assert workers[1].returncode == 0 and "Traceback" not in err, err
    assert (await _holders(ctx)).get(survivor) is None  # it gave its shares back on stopping

    async with ctx.session_factory() as session:
        exits = (
            await session.scalars(
                select(ExecutionLog).where(
                    ExecutionLog.position_id.in_(pids.values()), ExecutionLog.purpose == "exit"
                )
            )
        ).all()
    assert sorted(e.position_id for e in exits) == sorted(pids.values())  # one exit each
    assert {e.status for e in exits} == {"filled"} and {e.close_reason for e in exits} == {"sl"}
