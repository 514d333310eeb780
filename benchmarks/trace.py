"""Where one request's time goes, for the report on missed targets:

    python -m benchmarks.trace reads|order|fanout [--db sqlite|postgres] [--n N]

Runs the real app in this process (httpx's ASGI transport: no socket, no server in between), so
pyinstrument (async mode) charges each awaited database or exchange call to the line awaiting it,
and counts every SQL statement and commit per request through SQLAlchemy engine events. Writes
benchmarks/profiles/trace-<path>-<db>.txt. The figures of a traced run are slower than the
benchmark's: they explain, they do not measure."""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from pyinstrument import Profiler
from sqlalchemy import event

from benchmarks.bench_monitor import monitor_settings
from benchmarks.bench_order import BIG_BALANCES
from benchmarks.harness import (
    ROOT,
    Env,
    PositionSpec,
    create_database,
    insert_connections,
    insert_open_positions,
    insert_prices,
    insert_user_rows,
    new_ring,
    new_user_id,
    now,
    start_fake,
)
from execution_service.api_keys import service as api_keys
from execution_service.app import create_app
from execution_service.cli import tune_collector
from execution_service.context import AppContext
from execution_service.enums import Role


class Statements:
    def __init__(self, ctx: AppContext) -> None:
        self.counts: Counter[str] = Counter()
        self.texts: Counter[str] = Counter()  # the statements themselves, for the per-row ones
        for engine in {ctx.engine.sync_engine, ctx.reader.sync_engine}:  # API reads: own engine
            event.listen(engine, "before_cursor_execute", self._statement)
            event.listen(engine, "commit", self._commit)

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        word = statement.lstrip().split(None, 1)[0].upper()
        self.counts[word if word in ("SELECT", "INSERT", "UPDATE", "DELETE") else "other"] += 1
        self.texts[" ".join(statement.split())[:110]] += 1

    def _commit(self, conn: Any) -> None:
        self.counts["COMMIT"] += 1

    def per(self, n: int) -> str:
        return ", ".join(f"{k} {v / n:.1f}" for k, v in sorted(self.counts.items()))

    def top(self, n: int, k: int = 8) -> str:
        return "".join(f"  {v / n:8.1f}  {text}\n" for text, v in self.texts.most_common(k))


async def main_async(path: str, kind: str, n: int, sell: bool = False) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="exec-trace-"))
    env = Env(workdir, True, new_ring())
    db = await create_database(kind, f"trace_{path}", workdir)
    # As the benchmarks' service: the per-key signal limit would throttle a fast loop.
    settings = monitor_settings(db, env).model_copy(
        update={"signal_rate_per_minute": 1e9, "signal_rate_burst": 1_000_000_000}
    )
    ctx = AppContext.create(settings, env.ring)
    engine = db.engine()
    fake = None
    try:
        app = create_app(ctx.settings, ctx=ctx)
        app.state.ctx = ctx
        user_id = new_user_id()
        async with ctx.session_factory() as session:
            _, key = await api_keys.create_key(
                session, name="trace", role=Role.user, user_id=user_id
            )
        preset_id, dc_id = await insert_user_rows(engine, user_id)
        await insert_prices(engine, dc_id, {"BTC/USDT": Decimal(50000)}, now())
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        )
        if path == "reads":
            (conn_id,) = await insert_connections(
                engine,
                count=1,
                user_id=user_id,
                adapter="paper",
                preset_id=preset_id,
                data_connection_id=dc_id,
            )
            specs = [
                PositionSpec(conn_id, f"R{i:02d}/USDT", Decimal(100), Decimal(90), Decimal(200))
                for i in range(50)
            ]
            await insert_open_positions(engine, user_id, specs, "trace")

            async def one(i: int) -> None:
                r = await client.get("/api/v1/positions", params={"status": "open", "limit": 50})
                assert r.status_code == 200 and len(r.json()["items"]) == 50

        elif path == "order":
            fake = start_fake(workdir)
            await httpx.AsyncClient().post(f"{fake.url}/_fake/balances", json=BIG_BALANCES)
            (conn_id,) = await insert_connections(
                engine,
                count=1,
                user_id=user_id,
                adapter="ccxt",
                preset_id=preset_id,
                api_base_url=fake.url,
                ring=env.ring,
            )

            async def one(i: int) -> None:
                side = "buy" if i % 2 == 0 else "sell"
                body = {"symbol": "BTC/USDT", "direction": side, "connection_ids": [conn_id]}
                r = await client.post("/api/v1/signals", json=body)
                assert r.status_code == 201 and r.json()["executions"][0]["status"] == "filled", (
                    r.text
                )

        elif path == "fanout":
            sides = iter(["buy", "sell"] if sell else ["buy"])
            await insert_connections(
                engine,
                count=n,
                user_id=user_id,
                adapter="paper",
                preset_id=preset_id,
                data_connection_id=dc_id,
            )

            async def one(i: int) -> None:
                body = {"symbol": "BTC/USDT", "direction": next(sides)}
                r = await client.post("/api/v1/signals", json=body)
                assert r.status_code == 201, r.text

            n = 1
        else:
            raise SystemExit(f"unknown path {path}")
        for i in range(3):  # warm-up
            if path != "fanout" or (sell and i == 0):  # a sell nets the buy before it
                await one(-1 - i)
        # As the served process (`cli._serve`): startup frozen, the collector tuned.
        gc.freeze()
        tune_collector()
        statements = Statements(ctx)
        profiler = Profiler(async_mode="enabled", interval=0.0005)
        walls = []
        profiler.start()
        for i in range(n):
            t0 = time.perf_counter()
            await one(i)
            walls.append((time.perf_counter() - t0) * 1000)
        profiler.stop()
        out_dir = ROOT / "benchmarks" / "profiles"
        out_dir.mkdir(exist_ok=True)
        name = f"{path}-sell" if sell else path
        out = out_dir / f"trace-{name}-{kind}.txt"
        head = (
            f"trace {name} on {db.label}: {n} request(s), median {statistics.median(walls):.2f} ms "
            f"(in-process, under the profiler)\nSQL per request: {statements.per(n)}\n"
            f"most frequent statements, per request:\n{statements.top(n)}\n"
        )
        out.write_text(head + profiler.output_text(unicode=False, color=False, show_all=False))
        print(head, end="")
        print(f"profile: {out}")
        await client.aclose()
    finally:
        await ctx.aclose()
        await engine.dispose()
        await db.drop()
        if fake is not None:
            fake.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.trace")
    p.add_argument("path", choices=["reads", "order", "fanout"])
    p.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    p.add_argument("--n", type=int, default=200, help="requests (fanout: connections)")
    p.add_argument("--sell", action="store_true", help="fanout: trace a sell netting a buy")
    args = p.parse_args()
    asyncio.run(main_async(args.path, args.db, args.n, args.sell))
    sys.exit(0)


if __name__ == "__main__":
    main()
