"""10. Scale-out (issue #20), PostgreSQL only: the monitor over a million open positions, and
split across worker processes.

- Quiet tick: 1,000,000 open positions over 2,000 symbols (1,000 paper connections priced by one
  manual data connection), new prices for every symbol, then `monitor_tick(ctx)` in this process
  as bench 3 calls it, as the worker runs it: 1 warm tick, 2 measured. Baseline, same run: one
  bare set-based `UPDATE` writing every open position's price from the 2,000 prices (raw
  asyncpg), the floor of a tick that writes every row.
- Scaling: real `execution-service worker` processes at their defaults, splitting the monitor's
  64 shares through their PostgreSQL leases (`positions.shares`): one worker over the
  1,000,000, then, another 1,000,000 seeded, two workers over the 2,000,000; prices for every
  symbol renewed every second meanwhile. Each worker's tick time is read from its own metrics
  (`execution_monitor_tick_seconds` sum and count, `EXEC_WORKER_METRICS_PORT`) over the ticks
  begun once every worker held its even part (64 / workers shares); the figure is the slower
  worker's mean. Target: the same tick time (≤ 1.1x).

The positions are seeded by `INSERT … SELECT` (the rows `insert_open_positions` writes, made by
the database rather than sent from here), then settled (`ANALYZE`, `CHECKPOINT`).
SQLite serves one process: not applicable there.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.bench_monitor import monitor_settings, timed_tick
from benchmarks.harness import (
    BareDb,
    Database,
    Env,
    Proc,
    insert_connections,
    insert_prices,
    insert_user_rows,
    log,
    median,
    new_user_id,
    now,
    start_worker,
)
from benchmarks.report import Figure, Result
from execution_service.context import AppContext
from execution_service.positions.shares import SHARES

# Seconds, times the machine's pace: an in-process tick is cancelled after TICK_LIMIT; a worker
# phase waits SETTLE_LIMIT for its workers to hold even parts (then measures whatever they hold,
# flagged) and ends after PHASE_LIMIT with the ticks counted by then.
TICK_LIMIT = float(os.environ.get("BENCH_SCALE_TICK_LIMIT", "60"))
SETTLE_LIMIT = float(os.environ.get("BENCH_SCALE_SETTLE_LIMIT", "30"))
PHASE_LIMIT = float(os.environ.get("BENCH_SCALE_PHASE_LIMIT", "120"))
WITHIN = 1.1  # the scaling target: two workers' tick over one's
METRIC = re.compile(
    r"^execution_(monitor_tick_seconds_sum|monitor_tick_seconds_count|monitor_shares|"
    r"monitor_workers|open_positions) (\S+)$",
    re.M,
)
HANDOVER = re.compile(r"monitor: \d+ of \d+ shares here")


def price(i: int) -> Decimal:
    """The i-th price of every symbol: between the positions' SL (90) and TP (200)."""
    return Decimal(100) + Decimal(i % 9000 + 1) / 100


async def _seed(
    engine: AsyncEngine, db: Database, user_id: int, layout: tuple[int, int, int], k0: int, k1: int
) -> float:
    """Positions k0..k1-1 (layout: first connection, connections, symbols), position k on
    connection `first + k % count` and symbol `S{(k // count) % n_symbols}`, each with its
    filled entry log, and the paper holdings their buys left; then settled. Returns the seconds
    it took."""
    first, count, n_symbols = layout
    t0 = time.perf_counter()
    async with engine.begin() as conn:
        log0 = int(await conn.scalar(text("SELECT coalesce(max(id), 0) + 1 FROM execution_logs")))
        pos0 = int(
            await conn.scalar(text("SELECT coalesce(max(id), 0) + 1 FROM execution_positions"))
        )
        off = f"(k - {k0})"
        sym = f"'S' || lpad(((k / {count}) % {n_symbols})::text, 4, '0') || '/USDT'"
        on = f"{first} + k % {count}"
        series = f"FROM generate_series({k0}, {k1 - 1}) AS k"
        await conn.execute(
            text(
                "INSERT INTO execution_logs (id, user_id, execution_connection_id, position_id, "
                "purpose, client_order_id, order_id, symbol, direction, order_type, quantity, "
                "price, filled_quantity, average_price, fee, fee_currency, status, received_at, "
                "submitted_at, executed_at, created_at, updated_at) "
                f"SELECT {log0} + {off}, {user_id}, {on}, {pos0} + {off}, 'entry', "
                f"'bench-scale-' || ({log0} + {off}), ({log0} + {off})::text, {sym}, 'buy', "
                "'market', 0.5, 100, 0.5, 100, 0, 'USDT', 'filled', now(), now(), now(), now(), "
                f"now() {series}"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO execution_positions (id, user_id, execution_connection_id, "
                "execution_log_id, symbol, direction, quantity, initial_quantity, entry_price, "
                "current_price, sl_price, tp_price, best_price, break_even_done, status, pnl, "
                "pnl_percentage, realized_pnl, fees, opened_at, last_price_update_at, "
                "created_at, updated_at) "
                f"SELECT {pos0} + {off}, {user_id}, {on}, {log0} + {off}, {sym}, 'buy', 0.5, "
                "0.5, 100, 100, 90, 200, 100, false, 'open', 0, 0, 0, 0, now(), now(), now(), "
                f"now() {series}"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO paper_holdings (connection_id, symbol, quantity, average_price, "  # noqa: S608 (numbers only)
                "margin) SELECT execution_connection_id, symbol, sum(quantity), 100, 0 "
                f"FROM execution_positions WHERE id >= {pos0} GROUP BY 1, 2 "
                "ON CONFLICT (connection_id, symbol) "
                "DO UPDATE SET quantity = paper_holdings.quantity + excluded.quantity"
            )
        )
        for table in ("execution_logs", "execution_positions"):  # ids were given: on from them
            await conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                    f"(SELECT max(id) FROM {table}))"
                )
            )
    # Settled, as a deployment grown to this is (autovacuum analyzes what changed, checkpoints
    # write what a bulk load left dirty): the ticks measure the book, not the seeding.
    bare = await BareDb.open(db)
    try:
        await bare.conn.execute("ANALYZE execution_logs, execution_positions, paper_holdings")
        await bare.conn.execute("CHECKPOINT")
    finally:
        await bare.close()
    return time.perf_counter() - t0


async def _quiet_ticks(
    ctx: AppContext, engine: AsyncEngine, env: Env, dc_id: int, symbols: list[str], n: int
) -> tuple[list[float], bool]:
    """1 warm tick and 2 measured, each after new prices for every symbol: (measured seconds,
    whether one was cut at TICK_LIMIT)."""
    out: list[float] = []
    for i in range(3):
        await insert_prices(engine, dc_id, {s: price(i) for s in symbols}, now())
        seconds, priced, closes = await timed_tick(
            ctx, env, f"scale-tick-{i}", env.limit(TICK_LIMIT)
        )
        log(f"scale: in-process tick {i}: {seconds:.2f} s")
        if priced == -1:
            return [*out, seconds], True
        if priced != n or closes:
            raise RuntimeError(f"quiet tick priced {priced}/{n}, closed {closes}")
        if i:
            out.append(seconds)
    return out, False


async def _baseline(db: Database, symbols: list[str], n: int) -> float:
    """One bare UPDATE of every open position's price, from one row per symbol."""
    bare = await BareDb.open(db)
    try:
        t0 = time.perf_counter()
        status = await bare.conn.execute(
            "UPDATE execution_positions AS p SET current_price = v.price "
            "FROM unnest($1::text[], $2::numeric[]) AS v(symbol, price) "
            "WHERE p.status = 'open' AND p.symbol = v.symbol",
            symbols,
            [Decimal("100.5")] * len(symbols),
        )
        seconds = time.perf_counter() - t0
        assert status == f"UPDATE {n}", status
        return seconds
    finally:
        await bare.close()


@dataclass
class Phase:
    """One worker phase: each worker's mean tick over the window, and what it held meanwhile."""

    ticks: dict[str, float] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)
    shares: dict[str, set[int]] = field(default_factory=dict)
    judged: dict[str, int] = field(default_factory=dict)  # positions in its last tick
    handovers: dict[str, int] = field(default_factory=dict)  # share changes it logged
    settled: bool = False  # every worker held its even part when the window began
    cut: bool = False  # PHASE_LIMIT ran out before every worker counted its ticks

    @property
    def tick(self) -> float:
        """The slower worker's mean tick."""
        return max(self.ticks.values(), default=math.nan)

    @property
    def even(self) -> bool:
        part = SHARES // max(len(self.shares), 1)
        return self.settled and all(s == {part} for s in self.shares.values())

    def describe(self) -> str:
        return "; ".join(
            f"{w}: {self.ticks.get(w, math.nan):.2f} s mean over {self.counted.get(w, 0)} ticks, "
            f"shares held {sorted(self.shares[w])}, {self.judged.get(w, 0):,} positions in its "
            f"last tick, {self.handovers.get(w, 0)} share changes logged"
            for w in self.shares
        )


async def _scrape(http: httpx.AsyncClient, proc: Proc) -> dict[str, float]:
    body = (await http.get(proc.url)).text
    return {m[1]: float(m[2]) for m in METRIC.finditer(body)}


async def _watch(procs: list[Proc], n_ticks: int, env: Env) -> Phase:
    """Wait for even parts (at most SETTLE_LIMIT), then for one tick of each worker to end
    (those after it began on the parts seen), then count n_ticks of each."""
    phase = Phase(shares={p.name: set() for p in procs})
    part, count = SHARES // len(procs), "monitor_tick_seconds_count"
    t0 = time.perf_counter()
    boundary: dict[str, dict[str, float]] | None = None
    start: dict[str, dict[str, float]] | None = None
    async with httpx.AsyncClient(timeout=10) as http:
        while time.perf_counter() - t0 < env.limit(PHASE_LIMIT):
            seen = {p.name: await _scrape(http, p) for p in procs}
            even = all(
                m.get("monitor_shares") == part and m.get("monitor_workers") == len(procs)
                for m in seen.values()
            )
            if boundary is None:
                if even or time.perf_counter() - t0 > env.limit(SETTLE_LIMIT):
                    boundary, phase.settled = seen, even
            elif start is None:
                if all(seen[w][count] > boundary[w][count] for w in seen):
                    start = seen
            else:
                for w, m in seen.items():
                    phase.shares[w].add(int(m.get("monitor_shares", -1)))
                    phase.judged[w] = int(m.get("open_positions", 0))
                    done = m[count] - start[w][count]
                    if done:
                        phase.counted[w] = int(done)
                        sums = m["monitor_tick_seconds_sum"] - start[w]["monitor_tick_seconds_sum"]
                        phase.ticks[w] = sums / done
                if all(phase.counted.get(w, 0) >= n_ticks for w in seen):
                    return phase
            await asyncio.sleep(0.25)
    phase.cut = True
    return phase


async def _feed(engine: AsyncEngine, dc_id: int, symbols: list[str], stop: asyncio.Event) -> None:
    """New prices for every symbol every second (the workers' ticks mark to moving prices)."""
    i = 100
    while not stop.is_set():
        i += 1
        await insert_prices(engine, dc_id, {s: price(i) for s in symbols}, now())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _phase(db: Database, env: Env, workers: int, n_ticks: int) -> Phase:
    procs: list[Proc] = []
    try:
        for i in range(workers):
            procs.append(
                await asyncio.to_thread(
                    start_worker,
                    db,
                    env.ring,
                    env.workdir,
                    name=f"scale-{workers}w-{i + 1}",
                    env={"EXEC_LOG_LEVEL": "INFO"},  # its share changes are logged at INFO
                )
            )
        log(f"scale: {workers} worker process(es) started")
        phase = await _watch(procs, n_ticks, env)
    finally:
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in procs))
    for p in procs:
        text_ = p.log_path.read_text(errors="replace") if p.log_path else ""
        phase.handovers[p.name] = len(HANDOVER.findall(text_))
    log(f"scale: {workers} worker(s): {phase.describe()}")
    return phase


async def run(db: Database, env: Env) -> Result:
    result = Result("scale", db.label)
    if db.kind != "postgres":
        result.notes.append(
            "not applicable: SQLite serves one process, which judges every share (PostgreSQL only)"
        )
        return result
    n, n_symbols = env.size(1_000_000, 20_000), env.size(2_000, 200)
    n_conns, n_ticks = env.size(1_000, 100), env.size(2, 3)
    symbols = [f"S{i:04d}/USDT" for i in range(n_symbols)]
    engine = db.engine()
    stop = asyncio.Event()
    feeder: asyncio.Task[None] | None = None
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
        layout = (conn_ids[0], n_conns, n_symbols)
        seeded = [await _seed(engine, db, user_id, layout, 0, n)]
        log(f"scale: {n:,} positions seeded in {seeded[0]:.1f} s")
        ctx = AppContext.create(monitor_settings(db, env), env.ring)
        try:
            quiet, cut = await _quiet_ticks(ctx, engine, env, dc_id, symbols, n)
        finally:
            await ctx.aclose()
        base = await _baseline(db, symbols, n)
        feeder = asyncio.create_task(_feed(engine, dc_id, symbols, stop))
        one = await _phase(db, env, 1, n_ticks)
        seeded.append(await _seed(engine, db, user_id, layout, n, 2 * n))
        log(f"scale: {n:,} more positions seeded in {seeded[1]:.1f} s")
        two = await _phase(db, env, 2, n_ticks)
        _report(result, env, (n, n_symbols, n_conns), quiet, cut, base, one, two, seeded)
        return result
    finally:
        stop.set()
        if feeder is not None:
            await feeder
        await engine.dispose()


def _report(
    result: Result,
    env: Env,
    sizes: tuple[int, int, int],
    quiet: list[float],
    cut: bool,
    base: float,
    one: Phase,
    two: Phase,
    seeded: list[float],
) -> None:
    n, n_symbols, n_conns = sizes
    tick = median(quiet)
    ratio_ok = two.tick <= WITHIN * one.tick if not math.isnan(two.tick) else False
    result.add(
        Figure(
            f"quiet tick, {n:,} positions over {n_symbols:,} symbols, one worker",
            tick, "s", base, "bare UPDATE of every open position's price", "≤ 1 s", tick <= 1.0,
        ),
        Figure(
            f"1 worker process, {n:,} positions: its tick", one.tick, "s", tick,
            "the same tick in this process",
        ),
        Figure(
            f"2 worker processes, {2 * n:,} positions: per-worker tick", two.tick, "s",
            one.tick, f"1 worker, {n:,} positions", f"≤ {WITHIN}x (same tick time)", ratio_ok,
        ),
    )  # fmt: skip
    if cut:
        result.warn(f"an in-process tick was stopped after {env.limit(TICK_LIMIT):.0f} s")
    for label, phase in (("1 worker", one), ("2 workers", two)):
        if phase.cut:
            result.warn(f"{label}: not every worker counted its ticks within the phase's limit")
        if not phase.even:
            result.warn(f"{label}: the shares were not held evenly through the window")
    result.notes += [
        f"{n_symbols:,} symbols, {n_conns:,} paper connections on one manual data connection; "
        f"seeded by INSERT … SELECT (positions, entry logs, paper holdings), ANALYZE and "
        f"CHECKPOINT: {n:,} positions in {seeded[0]:.1f} s, {n:,} more in {seeded[1]:.1f} s",
        f"in-process quiet ticks {', '.join(f'{s:.2f}' for s in quiet)} s (median shown)",
        "worker processes at their defaults (every loop runs: order tracker, health checks, "
        "analytics ...), prices for every symbol renewed every second; the tick is the mean of "
        "execution_monitor_tick_seconds over the ticks begun once each worker held "
        f"{SHARES} / workers shares (the slower worker's shown)",
        f"1 worker: {one.describe()}",
        f"2 workers: {two.describe()}",
    ]
