"""2. Fan-out: one signal to 10,000 paper connections, and one to 1,000 ccxt connections on the
fake exchange (issue #21; before it, 1,000 and 200). Wall time of the POST, orders per second,
and the p99 of the per-connection latency the service records on each execution log (signal
received -> exchange answer).

The ccxt connections are each their own Binance account (API key) on one venue and one IP, and
the fake enforces Binance's published limits (6,000 weight per minute per IP, 100 orders per
10 s per key): the figures include the 429/418 answers it gave (must be 0). Each account's
balance is kept as the service's health checks would have read it (`exchanges.kept`); sizing
reads fresh balances only within the budget's background share. The signals (a buy, then a
netting sell) start at the beginning of a fresh minute of the venue's weight.

Baselines, measured in the same run:
- paper: what every order's durability alone costs at the service's concurrency: two bare
  durable commits per connection (the `pending` row, then the outcome), EXEC_SIGNAL_CONCURRENCY
  (32) at a time on PostgreSQL; one after another on SQLite, which has one writer.
- ccxt: one bare create_order per connection, each on its own warmed-up ccxt client, 32 at a time.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import distinct, func, select

from benchmarks.bench_order import BIG_BALANCES, bare_ccxt
from benchmarks.harness import (
    Api,
    BareDb,
    Database,
    Env,
    Profiler,
    admin_api,
    insert_connections,
    insert_kept_balances,
    log,
    median,
    new_user_id,
    pct,
    start_fake,
    start_service,
)
from benchmarks.report import Figure, Result
from execution_service.models import ExecutionLog

CONCURRENCY = 32  # the service's default EXEC_SIGNAL_CONCURRENCY
BUDGET = 60.0  # seconds of fan-out signals per kind: no further repetition starts after that


async def _latencies(engine: Any, signal_id: int) -> list[float]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(ExecutionLog.latency_ms).where(ExecutionLog.signal_id == signal_id)
        )
        return [float(v) for (v,) in rows if v is not None]


async def _filled(engine: Any, signal_id: int) -> int:
    """How many connections have a filled order of this signal."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(func.count(distinct(ExecutionLog.execution_connection_id))).where(
                ExecutionLog.signal_id == signal_id, ExecutionLog.status == "filled"
            )
        )
        return int(rows.scalar_one())


async def _codes(engine: Any, signal_id: int) -> dict[str, int]:
    """The signal's executions by (status, error code), for a failure's message."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(ExecutionLog.status, ExecutionLog.error_code, func.count())
            .where(ExecutionLog.signal_id == signal_id)
            .group_by(ExecutionLog.status, ExecutionLog.error_code)
        )
        codes = {f"{status}/{code}": n for status, code, n in rows}
        sample = await conn.scalar(
            select(ExecutionLog.error_message)
            .where(ExecutionLog.signal_id == signal_id, ExecutionLog.error_code.is_not(None))
            .limit(1)
        )
        if sample:
            codes[f"e.g. {sample[:160]}"] = 0
        return codes


async def _fan_out(
    api: Api, engine: Any, count: int, reps: int, env: Env, pid: int, name: str
) -> tuple[list[float], list[float], tuple[int, str] | None]:
    """Walls and latencies of `reps` signals, buy and sell in turn, and what fell short: a signal
    on which not every connection filled ends the repetitions (the next one would net what
    this one did not open)."""
    walls: list[float] = []
    latencies: list[float] = []
    with Profiler(env, pid, name):
        for rep in range(reps):
            if sum(walls) > BUDGET:
                break
            t0 = time.perf_counter()
            body = await api.signal(symbol="BTC/USDT", direction="buy" if rep % 2 == 0 else "sell")
            walls.append(time.perf_counter() - t0)
            # A buy opens on every connection; the next sell nets it (closes what each holds):
            # every connection has a filled order either way. The answer embeds only the first
            # executions (the rest are paged): the database says which connections filled.
            latencies += await _latencies(engine, body["id"])
            filled = await _filled(engine, body["id"])
            if filled != count:
                codes = await _codes(engine, body["id"])
                return (
                    walls,
                    latencies,
                    (filled, f"signal {rep + 1}: {filled}/{count} filled; {codes}"),
                )
    return walls, latencies, None


async def _open_up_to(db: Database, width: int) -> list[BareDb]:
    """`width` bare connections, or as many as a shared server has free (at least one): other
    engineers' runs may hold most of max_connections. The note says how many were used."""
    conns: list[BareDb] = []
    for _ in range(width):
        try:
            conns.append(await BareDb.open(db))
        except Exception as exc:
            if "too many clients" not in str(exc) or not conns:
                raise
            break
    if len(conns) < width:
        log(f"baseline: {len(conns)} of {width} connections (the server's others are taken)")
    WIDTHS.append(len(conns))
    return conns


WIDTHS: list[int] = []  # the baseline's connections, as opened


async def _commit_pairs(db: Database, count: int) -> float:
    """Two bare durable commits per connection, CONCURRENCY at a time (one writer on SQLite)."""
    width = CONCURRENCY if db.kind == "postgres" else 1
    conns = await _open_up_to(db, width)
    try:
        await conns[0].commit_one(
            "CREATE TABLE IF NOT EXISTS bench_fanout (id INTEGER PRIMARY KEY, v TEXT)"
        )
        await conns[0].commit_one("DELETE FROM bench_fanout")
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(count):
            queue.put_nowait(i)

        async def worker(bare: BareDb) -> None:
            while not queue.empty():
                i = queue.get_nowait()
                await bare.commit_one(
                    "INSERT INTO bench_fanout (id, v) VALUES (?, ?)", i, "pending"
                )
                await bare.commit_one("UPDATE bench_fanout SET v = ? WHERE id = ?", "filled", i)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in conns))
        return time.perf_counter() - t0
    finally:
        for c in conns:
            await c.close()


async def _bare_orders(fake_url: str, count: int) -> tuple[float, list[float]]:
    """One create_order per client, `count` warmed clients, CONCURRENCY at a time."""
    clients: list[Any] = []
    bound = asyncio.Semaphore(CONCURRENCY)

    async def client() -> None:
        async with bound:
            clients.append(await bare_ccxt(fake_url))

    try:
        # Built CONCURRENTLY at a time, not one after another: on a busy machine, 200 in a row
        # take longer than the fake's 5 s keep-alive, and the first clients' pooled connections
        # are closed under them (ServerDisconnected on their order).
        await asyncio.gather(*(client() for _ in range(count)))
        latencies: list[float] = []

        async def one(i: int, ex: Any) -> None:
            async with bound:
                await ex.create_order(
                    "BTC/USDT", "market", "buy", 0.002, None, {"clientOrderId": f"fan-{i}"}
                )
            # Like the service's latency_ms: from the start of the fan-out to this answer.
            latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i, ex) for i, ex in enumerate(clients)))
        return time.perf_counter() - t0, latencies
    finally:
        for ex in clients:
            await ex.close()


async def run(db: Database, env: Env) -> Result:
    result = Result("fanout", db.label)
    n_paper, n_ccxt, reps = env.size(10_000, 100), env.size(1000, 20), env.size(3, 2)
    # Other sizes by hand, e.g. issue #7's:
    # BENCH_FANOUT_PAPER=1000 BENCH_FANOUT_CCXT=200 make bench BENCH_ARGS="--only fanout"
    n_paper = int(os.environ.get("BENCH_FANOUT_PAPER", n_paper))
    n_ccxt = int(os.environ.get("BENCH_FANOUT_CCXT", n_ccxt))
    fake = start_fake(env.workdir)  # for the bare baseline: no limits
    limited = start_fake(env.workdir, binance_limits=True)
    service = None
    engine = db.engine()
    apis: list[Api] = []
    try:
        service = start_service(db, env.ring, env.workdir, workers=False, name="fanout")
        admin = admin_api(service)
        apis.append(admin)
        async with httpx.AsyncClient() as http:
            await http.post(f"{fake.url}/_fake/balances", json=BIG_BALANCES)

        # --- paper -------------------------------------------------------------------------
        paper = await admin.new_user(new_user_id())
        apis.append(paper)
        preset = await paper.preset()
        dc = await paper.data_connection()
        await paper.push_prices(dc["id"], {"BTC/USDT": "50000"})
        ids = await insert_connections(
            engine,
            count=n_paper,
            user_id=paper.user_id or 0,
            adapter="paper",
            preset_id=preset["id"],
            data_connection_id=dc["id"],
        )
        # Warm-up: the same path on a few connections (statement caches, pools).
        await paper.signal(symbol="BTC/USDT", direction="buy", connection_ids=ids[:20])
        log(f"fan-out: {n_paper} paper connections")
        walls, lat, short = await _fan_out(
            paper, engine, n_paper, reps, env, service.pid, f"fanout-paper-{db.kind}"
        )
        if short is not None:  # paper has no reason to refuse: a fault, not a figure
            raise RuntimeError(f"paper: {short[1]}")
        log(f"paper walls {', '.join(f'{w:.2f}' for w in walls)} s")  # kept if the rest fails
        base = await _commit_pairs(db, n_paper)
        wall = median(walls)
        result.add(
            Figure(
                f"{n_paper:,} paper: wall",
                wall,
                "s",
                base,
                "2 bare commits/conn",
                "≤ 2 s",
                wall <= 2.0,
            ),
            Figure(
                f"{n_paper:,} paper: orders/s",
                n_paper / wall,
                "orders/s",
                n_paper / base,
                "bare commit pairs/s",
                higher_is_better=True,
            ),
            Figure(f"{n_paper:,} paper: p99 per-connection latency", pct(lat, 99), "ms"),
        )
        result.notes.append(
            f"paper: median of {len(walls)} signals (buy, netting sell, buy), walls "
            f"{', '.join(f'{w:.2f}' for w in walls)} s; baseline on {WIDTHS[-1]} connections"
        )

        # --- ccxt --------------------------------------------------------------------------
        trader = await admin.new_user(new_user_id())
        apis.append(trader)
        preset = await trader.preset()
        # Each connection its own Binance account (API key) on one venue and one IP, as a
        # copy-trading fan-out is: the fake enforces Binance's per-IP weight and per-key orders.
        keys = [(f"bench-key-{i:05d}", f"bench-secret-{i:05d}") for i in range(n_ccxt)]
        async with httpx.AsyncClient() as http:
            await http.post(f"{limited.url}/_fake/keys", json=dict(keys))
            await http.post(f"{limited.url}/_fake/balances", json=BIG_BALANCES)
        ids = await insert_connections(
            engine,
            count=n_ccxt,
            user_id=trader.user_id or 0,
            adapter="ccxt",
            preset_id=preset["id"],
            api_base_url=limited.url,
            ring=env.ring,
            keys=keys,
        )
        await insert_kept_balances(engine, ids, BIG_BALANCES)
        # Warm-up signal: builds every connection's client and loads its markets once.
        await trader.signal(symbol="BTC/USDT", direction="sell")
        # Measured from the start of a fresh minute of the venue's weight (Binance counts per
        # minute, on the minute), as a signal a minute after the last would be.
        await asyncio.sleep(60 - time.time() % 60 + 0.5)
        async with httpx.AsyncClient() as http:
            before = len((await http.get(f"{limited.url}/_fake/requests")).json())
        log(f"fan-out: {n_ccxt} ccxt connections")
        walls, lat, short = await _fan_out(
            trader, engine, n_ccxt, 2, env, service.pid, f"fanout-ccxt-{db.kind}"
        )
        async with httpx.AsyncClient() as http:
            state = (await http.get(f"{limited.url}/_fake/state")).json()
            sent = (await http.get(f"{limited.url}/_fake/requests")).json()[before:]
        refused = sum(state["refused"].values())
        by_path = Counter(f"{r['method']} {r['path']}" for r in sent)
        result.notes.append(
            "ccxt: venue requests during the measured signals: "
            + ", ".join(f"{k} x{v}" for k, v in sorted(by_path.items()))
        )
        # ccxt orders may be refused unsent (`exchange_busy`: past their send deadline on a
        # loaded machine): counted and shown, not a crash that loses the paper figures.
        filled = n_ccxt if short is None else short[0]
        result.notes.append(
            f"ccxt: {n_ccxt} Binance accounts (one API key each) on one IP; the fake enforces "
            "Binance's 6,000 weight per minute per IP and 100 orders per 10 s per key; sizing "
            "falls back on kept balances (seeded as the health checks would have read them) when "
            "the budget has no room for fresh reads; a buy, then a netting sell, from the start "
            "of a fresh minute"
        )
        if short is not None:
            result.notes.append(f"ccxt: {short[1]}")
        log(f"ccxt walls {', '.join(f'{w:.2f}' for w in walls)} s; short: {short}")
        base, base_lat = await _bare_orders(fake.url, n_ccxt)
        wall = median(walls)
        result.add(
            Figure(f"{n_ccxt:,} ccxt: wall", wall, "s", base, "bare create_order xN, 32 at once"),
            Figure(
                f"{n_ccxt:,} ccxt: orders/s",
                n_ccxt / wall,
                "orders/s",
                n_ccxt / base,
                "bare orders/s",
                higher_is_better=True,
            ),
            Figure(
                f"{n_ccxt:,} ccxt: filled (of the worst signal)",
                filled,
                "count",
                target=f"= {n_ccxt:,}",
                ok=filled == n_ccxt,
            ),
            Figure(
                f"{n_ccxt:,} ccxt: 429/418 answers from the venue",
                refused,
                "count",
                target="0",
                ok=refused == 0,
            ),
            Figure(
                f"{n_ccxt:,} ccxt: p99 per-connection latency",
                pct(lat, 99),
                "ms",
                pct(base_lat, 99),
                "bare p99",
            ),
        )
        result.notes.append(
            f"ccxt: median of {len(walls)} signals, walls {', '.join(f'{w:.2f}' for w in walls)} s"
        )
        return result
    finally:
        for api in apis:
            await api.aclose()
        await engine.dispose()
        if service is not None:
            service.stop()
        fake.stop()
        limited.stop()
