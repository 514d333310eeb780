"""3. Monitor tick: 100,000 open positions over 500 symbols (paper connections priced by one
manual data connection), `monitor_tick(ctx)` called in this process on an AppContext built from
Settings for the benchmark database, exactly as the worker calls it.

- Quiet ticks: every position priced, PnL written, nothing crosses (new prices before each tick).
- Close tick: a price move that takes 10 % of the positions through their SL: the tick claims
  and sends every exit (paper), and reports closes per second.

Baseline, same run: one bare SELECT of the open positions plus one bare executemany UPDATE of
their price, on a raw driver connection.
"""

from __future__ import annotations

import asyncio
import os
import time
from decimal import Decimal

from pydantic import SecretStr
from sqlalchemy import func, select

from benchmarks.harness import (
    BareDb,
    Database,
    Env,
    PositionSpec,
    insert_connections,
    insert_open_positions,
    insert_prices,
    insert_user_rows,
    log,
    median,
    new_user_id,
    now,
)
from benchmarks.report import Figure, Result
from execution_service.context import AppContext
from execution_service.models import ExecutionPosition
from execution_service.settings import Settings
from execution_service.workers.monitor import monitor_tick


def monitor_settings(db: Database, env: Env) -> Settings:
    return Settings(
        env="test",
        database_url=db.url,
        encryption_keys=SecretStr(env.ring.format()),
        outbound_allow_private=True,  # the venue fakes listen on loopback
        encryption_key_file=str(env.workdir / "unused-keys"),
        workers_enabled=False,
        migrate_on_start=False,
        log_level="WARNING",
    )


async def _baseline(db: Database, count: int) -> float:
    bare = await BareDb.open(db)
    try:
        t0 = time.perf_counter()
        rows = await bare.fetch("SELECT * FROM execution_positions WHERE status = 'open'")
        price = Decimal("100.5") if db.kind == "postgres" else "100.5"
        await bare.executemany(
            "UPDATE execution_positions SET current_price = ? WHERE id = ?",
            [(price, row[0]) for row in rows],
        )
        seconds = time.perf_counter() - t0
        assert len(rows) == count, (len(rows), count)
        return seconds
    finally:
        await bare.close()


CLOSE_TICK_LIMIT = float(
    os.environ.get("BENCH_CLOSE_TICK_LIMIT", "60")
)  # seconds: the close tick is stopped there, and what it closed counts


async def timed_tick(
    ctx: AppContext, env: Env, name: str, limit: float | None = None
) -> tuple[float, int, int]:
    """One tick, under pyinstrument when profiling: (seconds, positions priced, closes).
    With `limit`, a tick still running then is cancelled: (limit, -1, -1)."""
    profiler = None
    if env.profile_dir is not None:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="enabled", interval=0.001)
        profiler.start()
    t0 = time.perf_counter()
    try:
        report = await asyncio.wait_for(monitor_tick(ctx), timeout=limit)
        priced, closes = report.priced, len(report.closes)
    except TimeoutError:
        priced = closes = -1
    seconds = time.perf_counter() - t0
    if profiler is not None:
        profiler.stop()
        path = env.profile_dir / f"{name}.txt"  # type: ignore[operator]
        path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
        log(f"profile: {path}")
    return seconds, priced, closes


async def run(db: Database, env: Env) -> Result:
    result = Result("monitor", db.label)
    n, n_symbols, n_conns = env.size(100_000, 10_000), env.size(500, 50), env.size(100, 10)
    # At full size a tick is seconds long: its statement caches warm up within the first one,
    # but the first tick after the bulk insert also meets a table autovacuum has not analysed
    # yet: the median of three ticks is the steady state a worker runs in.
    quiet_ticks, warm = env.size(3, 2), env.size(0, 1)
    engine = db.engine()
    ctx = AppContext.create(monitor_settings(db, env), env.ring)
    try:
        user_id = new_user_id()
        preset_id, dc_id = await insert_user_rows(engine, user_id)
        conn_ids = await insert_connections(
            engine,
            count=n_conns,
            user_id=user_id,
            adapter="paper",
            preset_id=preset_id,
            data_connection_id=dc_id,
        )
        symbols = [f"B{i:03d}/USDT" for i in range(n_symbols)]
        # 10 % of the positions (every tenth) have their SL at 99, the rest at 90; TP at 200.
        specs = [
            PositionSpec(
                conn_ids[k % n_conns],
                symbols[(k // n_conns) % n_symbols],
                Decimal(100),
                Decimal(99) if k % 10 == 0 else Decimal(90),
                Decimal(200),
            )
            for k in range(n)
        ]
        t0 = time.perf_counter()
        await insert_open_positions(engine, user_id, specs, "mon")
        log(f"monitor: {n:,} positions inserted in {time.perf_counter() - t0:.1f} s")
        del specs
        quiet: list[float] = []
        for i in range(warm + quiet_ticks):
            await insert_prices(engine, dc_id, {s: Decimal(f"100.{i + 1}") for s in symbols}, now())
            seconds, priced, closes = await timed_tick(ctx, env, f"monitor-tick-{db.kind}")
            if priced != n or closes:
                raise RuntimeError(f"quiet tick priced {priced}/{n}, closed {closes}")
            if i >= warm:
                quiet.append(seconds)
        base = await _baseline(db, n)
        await insert_prices(engine, dc_id, {s: Decimal(98) for s in symbols}, now())
        close_s, priced, closes = await timed_tick(
            ctx, env, f"monitor-close-tick-{db.kind}", env.limit(CLOSE_TICK_LIMIT)
        )
        async with engine.connect() as conn:
            closed = int(
                await conn.scalar(select(func.count()).where(ExecutionPosition.status == "closed"))
                or 0
            )
        if closes == -1:
            result.notes.append(
                f"the close tick was stopped after {env.limit(CLOSE_TICK_LIMIT):.0f} s with "
                f"{closed:,} of {n // 10:,} positions closed: closes per second counts those"
            )
        elif closes != n // 10 or closed != n // 10:
            # A loaded machine: some closes were still in flight or refused as busy. Reported as
            # a partial figure, not a failure (the tests hold correctness; this measures speed).
            result.warn(f"close tick: {closes:,} claimed, {closed:,} closed of {n // 10:,}")
        tick = median(quiet)
        result.add(
            Figure(
                f"tick, {n:,} positions",
                tick,
                "s",
                base,
                "bare SELECT + executemany UPDATE",
                "≤ 1 s",
                tick <= 1.0,
            ),
            Figure(
                f"tick with {n // 10:,} SL closes",
                close_s,
                "s",
                base,
                "bare SELECT + executemany UPDATE",
            ),
            Figure("closes per second", closed / close_s, "closes/s", higher_is_better=True),
        )
        result.notes.append(
            f"{n_symbols} symbols, {n_conns} paper connections; quiet ticks "
            f"{', '.join(f'{s:.2f}' for s in quiet)} s (median shown)"
        )
        return result
    finally:
        await ctx.aclose()
        await engine.dispose()
