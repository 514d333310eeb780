"""6. Market data at scale: the ingest rate and the latest-price lookup with 10 million stored
ticks, against the same figures with 10,000 stored ticks, measured in the same run on the same
database (issue #22: within 1.2x).

One manual data connection, 100 symbols. The ticks are seeded by one INSERT ... SELECT per
million rows (in the database, so seeding 10 million takes minutes, not hours), spread over the
last 20 hours (inside the tick retention, as a live feed's would be). Then, at each size:

- ingest: `POST /api/v1/data-connections/{id}/market-data` with 1,000 new ticks (100 symbols x
  10 times, each newer than anything stored, as a live feed sends them), one after another;
  the figure is ticks per second at the median batch;
- latest: `GET .../market-data/latest?symbol=` for a random symbol, one after another: the p50;
  and the lookup itself (`LatestRepository.get`, one statement on a pooled connection) in this
  process, without HTTP: the p50.

Also reported: one retention pass over a million expired ticks (quick: 100,000), in rows per
second (the bounded deletes `docs/decisions.md` chose over partitions), and the latest price as
it was read before issue #22 (a max(timestamp) group-by over the stored ticks), for contrast.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.harness import (
    Api,
    BareDb,
    Database,
    Env,
    admin_api,
    log,
    median,
    new_user_id,
    start_service,
)
from benchmarks.report import Figure, Result
from execution_service.context import AppContext
from execution_service.market_data.repository import LatestRepository
from execution_service.market_data.retention import prune
from execution_service.settings import Settings

SYMBOLS = [f"M{i:02d}/USDT" for i in range(100)]
BASELINE_TICKS = 10_000
SEED_CHUNK = 1_000_000
BATCH = 1000  # ticks per ingest request
WITHIN = 1.2  # the bound on the ratios


async def _seed(
    engine: AsyncEngine, db: Database, dc_id: int, start: int, stop: int, first: datetime
) -> None:
    """Ticks start..stop-1: tick g is symbol g % 100 at `first` + (g // 100) x 5 ms."""
    epoch = first.timestamp()
    for lo in range(start, stop, SEED_CHUNK):
        hi = min(stop, lo + SEED_CHUNK) - 1
        if db.kind == "postgres":
            sql = f"""
                INSERT INTO market_data
                    (data_connection_id, symbol, timeframe, timestamp, close, created_at)
                SELECT {dc_id}, 'M' || lpad((g % 100)::text, 2, '0') || '/USDT', 'tick',
                       to_timestamp({epoch}) + (g / 100) * interval '5 milliseconds',
                       100 + (g % 997) / 1000.0, now()
                FROM generate_series({lo}, {hi}) AS g"""  # noqa: S608 (numbers only)
        else:
            sql = f"""
                WITH RECURSIVE s(g) AS (SELECT {lo} UNION ALL SELECT g + 1 FROM s WHERE g < {hi})
                INSERT INTO market_data
                    (data_connection_id, symbol, timeframe, timestamp, close, created_at)
                SELECT {dc_id}, printf('M%02d/USDT', g % 100), 'tick',
                       strftime('%Y-%m-%d %H:%M:%S', {int(epoch)} + (g / 100) / 200, 'unixepoch')
                         || printf('.%06d', ((g / 100) % 200) * 5000),
                       printf('%d.%03d', 100, g % 997),
                       strftime('%Y-%m-%d %H:%M:%S', 'now')
                FROM s"""  # noqa: S608 (numbers only)
        t0 = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(text(sql))
        log(f"market_data: seeded {hi + 1:,} ticks ({time.perf_counter() - t0:.1f} s/chunk)")
    # A bulk load leaves what a steady feed never has: a database-sized SQLite WAL not yet
    # checkpointed, PostgreSQL pages not yet written out and no statistics. Settle them first,
    # so the measurement is of the stored ticks, not of the seeding.
    bare = await BareDb.open(db)
    try:
        if db.kind == "postgres":
            await bare.conn.execute("ANALYZE market_data")
            await bare.conn.execute("CHECKPOINT")
        else:
            await bare.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await bare.close()


async def _ingest(api: Api, dc_id: int, at: datetime, batches: int) -> tuple[float, datetime]:
    """Ticks per second at the median of `batches` requests, and the time after the last."""
    seconds = []
    for _ in range(batches):
        prices = []
        for _k in range(BATCH // len(SYMBOLS)):
            at += timedelta(milliseconds=5)
            stamp = at.isoformat()
            prices += [
                {"symbol": s, "price": f"{100 + random.random():.5f}", "timestamp": stamp}
                for s in SYMBOLS
            ]
        t0 = time.perf_counter()
        await api.ok(
            "POST", f"/api/v1/data-connections/{dc_id}/market-data", json={"prices": prices}
        )
        seconds.append(time.perf_counter() - t0)
    return BATCH / median(seconds), at


async def _latest_api(api: Api, dc_id: int, n: int) -> float:
    seconds = []
    for _ in range(n):
        symbol = random.choice(SYMBOLS)
        t0 = time.perf_counter()
        body = await api.ok(
            "GET", f"/api/v1/data-connections/{dc_id}/market-data/latest", params={"symbol": symbol}
        )
        seconds.append(time.perf_counter() - t0)
        assert body["symbol"] == symbol
    return median(seconds) * 1000


async def _latest_db(ctx: AppContext, dc_id: int, n: int) -> float:
    seconds = []
    async with ctx.session_factory() as session:
        repo = LatestRepository(session)
        for _ in range(n):
            symbol = random.choice(SYMBOLS)
            t0 = time.perf_counter()
            row = await repo.get(dc_id, symbol)
            seconds.append(time.perf_counter() - t0)
            assert row is not None
            session.expunge_all()  # each lookup goes to the database
    return median(seconds) * 1000


async def _group_by_latest(engine: AsyncEngine, dc_id: int) -> float:
    """How the latest price of every symbol was read before: a group-by over every tick."""
    sql = f"""
        SELECT m.symbol, m.close FROM market_data m JOIN (
            SELECT symbol, max(timestamp) AS at FROM market_data
            WHERE data_connection_id = {dc_id} GROUP BY symbol
        ) l ON m.symbol = l.symbol AND m.timestamp = l.at
        WHERE m.data_connection_id = {dc_id}"""  # noqa: S608 (numbers only)
    async with engine.connect() as conn:
        t0 = time.perf_counter()
        rows = (await conn.execute(text(sql))).all()
        seconds = time.perf_counter() - t0
    assert len(rows) >= len(SYMBOLS)
    return seconds


def _settings(db: Database, env: Env, **extra: Any) -> Settings:
    return Settings(
        env="test",
        database_url=db.url,
        encryption_keys=SecretStr(env.ring.format()),
        outbound_allow_private=True,  # the venue fakes listen on loopback
        encryption_key_file=str(env.workdir / "unused-keys"),
        workers_enabled=False,
        migrate_on_start=False,
        log_level="WARNING",
        **extra,
    )


async def _measure(
    api: Api, ctx: AppContext, dc_id: int, at: datetime, env: Env
) -> tuple[dict[str, float], datetime]:
    batches, lookups = env.size(30, 10), env.size(1000, 300)
    await _ingest(api, dc_id, at, 3)  # warm-up: statement caches, connections
    rate, at = await _ingest(api, dc_id, at + timedelta(seconds=1), batches)
    await _latest_api(api, dc_id, 50)  # warm-up
    await _latest_db(ctx, dc_id, 50)
    return {
        "ingest": rate,
        "latest_api": await _latest_api(api, dc_id, lookups),
        "latest_db": await _latest_db(ctx, dc_id, lookups),
    }, at


async def run(db: Database, env: Env) -> Result:
    result = Result("market_data", db.label)
    big = env.size(10_000_000, 1_000_000)
    expired = env.size(1_000_000, 100_000)
    engine = db.engine()
    service = start_service(db, env.ring, env.workdir, workers=False, name="market-data")
    ctx = AppContext.create(_settings(db, env), env.ring)
    admin = admin_api(service)
    user: Api | None = None
    try:
        user = await admin.new_user(new_user_id())
        dc = await user.ok("POST", "/api/v1/data-connections", 201, json={"name": "feed"})
        dc_id = int(dc["id"])
        now = datetime.now(UTC)
        first = now - timedelta(hours=20)
        await _seed(engine, db, dc_id, 0, BASELINE_TICKS, first)
        live = now - timedelta(minutes=30)  # ingested ticks: newer than every seeded one
        small, live = await _measure(user, ctx, dc_id, live, env)
        stored_small = await _count(engine, dc_id)
        t0 = time.perf_counter()
        await _seed(engine, db, dc_id, BASELINE_TICKS, big, first)
        seeded = time.perf_counter() - t0
        large, live = await _measure(user, ctx, dc_id, live + timedelta(seconds=1), env)
        stored_large = await _count(engine, dc_id)
        group_by = await _group_by_latest(engine, dc_id)
        prune_rate, pruned = await _prune(engine, db, env, dc_id, expired, now)
        _figures(result, small, large, stored_small, stored_large)
        result.add(
            Figure(
                f"latest before #22 (group-by over {stored_large:,} ticks)",
                group_by * 1000,
                "ms",
            ),
            Figure(
                f"retention: {pruned:,} expired ticks deleted",
                prune_rate,
                "rows/s",
                higher_is_better=True,
            ),
        )
        result.notes.append(
            f"{len(SYMBOLS)} symbols; {BATCH:,} ticks per ingest request; {big:,} ticks seeded in "
            f"{seeded:.0f} s; ingest and latest measured one request at a time"
        )
        return result
    finally:
        await ctx.aclose()
        if user is not None:
            await user.aclose()
        await admin.aclose()
        service.stop()
        await engine.dispose()


async def _count(engine: AsyncEngine, dc_id: int) -> int:
    async with engine.connect() as conn:
        sql = f"SELECT count(*) FROM market_data WHERE data_connection_id = {dc_id}"  # noqa: S608
        return int((await conn.execute(text(sql))).scalar_one())


async def _prune(
    engine: AsyncEngine, db: Database, env: Env, dc_id: int, n: int, now: datetime
) -> tuple[float, int]:
    """`n` ticks two days old, then one retention pass as the worker runs it (every expired
    row in one pass: the pass bound is lifted)."""
    old = now - timedelta(days=2)
    start = 20_000_000  # tick numbers past the seeded ones: other timestamps, no conflicts
    await _seed(engine, db, dc_id, start, start + n, old)
    ctx = AppContext.create(_settings(db, env, market_data_prune_max_batches=10**6), env.ring)
    try:
        t0 = time.perf_counter()
        report = await prune(ctx, now)
        seconds = time.perf_counter() - t0
    finally:
        await ctx.aclose()
    if report.ticks != n:
        raise RuntimeError(f"the retention pass deleted {report.ticks:,} of {n:,} expired ticks")
    return n / seconds, n


def _figures(
    result: Result,
    small: dict[str, float],
    large: dict[str, float],
    stored_small: int,
    stored_large: int,
) -> None:
    floor = 1 / WITHIN
    result.add(
        Figure(
            f"ingest with {stored_large:,} ticks stored",
            large["ingest"],
            "ticks/s",
            small["ingest"],
            f"with {stored_small:,}",
            f"≥ {floor:.2f}x",
            large["ingest"] >= small["ingest"] * floor,
            higher_is_better=True,
        ),
        Figure(
            f"latest (API) p50 with {stored_large:,} ticks",
            large["latest_api"],
            "ms",
            small["latest_api"],
            f"with {stored_small:,}",
            f"≤ {WITHIN}x",
            large["latest_api"] <= small["latest_api"] * WITHIN,
        ),
        Figure(
            f"latest (lookup) p50 with {stored_large:,} ticks",
            large["latest_db"],
            "ms",
            small["latest_db"],
            f"with {stored_small:,}",
            f"≤ {WITHIN}x",
            large["latest_db"] <= small["latest_db"] * WITHIN,
        ),
    )
