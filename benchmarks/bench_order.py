"""1. Per-order overhead: one signal through the whole service to one ccxt connection on the fake
exchange, against the floor measured in the same loop: bare ccxt create_order to the same fake +
two bare durable commits on the same database + one round trip to /health of the same server.

Samples alternate (signal, floor, signal, floor, ...) so both see the same machine."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import ccxt.async_support as ccxt
import httpx

from benchmarks.harness import (
    EXCHANGE_KEY,
    EXCHANGE_SECRET,
    BareDb,
    Database,
    Env,
    Profiler,
    admin_api,
    log,
    new_user_id,
    pct,
    start_fake,
    start_service,
)
from benchmarks.report import Figure, Result
from execution_service.exchanges.ccxt.client import rewrite_urls

BIG_BALANCES = {"USDT": "1000000000", "BTC": "1000000", "ETH": "1000000"}


async def bare_ccxt(base_url: str) -> Any:
    """A plain ccxt binance client pointed at the fake, markets loaded: the floor's exchange leg.
    Options as the service sets them, so both load markets with one request."""
    ex = ccxt.binance(
        {
            "apiKey": EXCHANGE_KEY,
            "secret": EXCHANGE_SECRET,
            "enableRateLimit": False,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
        }
    )
    ex.urls["api"] = rewrite_urls(ex.urls["api"], base_url)
    ex.timeout_on_exit = 0
    await ex.load_markets()
    return ex


async def fake_requests(fake_url: str) -> Counter[str]:
    async with httpx.AsyncClient() as http:
        rows = (await http.get(f"{fake_url}/_fake/requests", timeout=30)).json()
    return Counter(f"{r['method']} {r['path']}" for r in rows)


async def run(db: Database, env: Env) -> Result:
    result = Result("order", db.label)
    n, warmup = env.size(400, 40), env.size(40, 10)
    fake = start_fake(env.workdir)
    service = None
    ex = bare = None
    apis = []
    try:
        service = start_service(db, env.ring, env.workdir, workers=False, name="order")
        admin = admin_api(service)
        apis.append(admin)
        user = await admin.new_user(new_user_id())
        apis.append(user)
        async with httpx.AsyncClient() as http:
            await http.post(f"{fake.url}/_fake/balances", json=BIG_BALANCES)
        preset = await user.preset()  # 100 USDT a trade, SL 2 %, TP 4 %
        conn = await user.connection(
            {
                "name": "fake binance",
                "adapter": "ccxt",
                "exchange": "binance",
                "api_base_url": fake.url,
                "preset_id": preset["id"],
                "credentials": {"api_key": EXCHANGE_KEY, "api_secret": EXCHANGE_SECRET},
            }
        )
        ex = await bare_ccxt(fake.url)
        bare = await BareDb.open(db)
        await bare.commit_one("CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, v TEXT)")
        http = user.http
        full: list[float] = []
        floor: list[float] = []
        parts: dict[str, list[float]] = {"ccxt": [], "commits": [], "health": []}
        before: Counter[str] = Counter()
        profiler = None
        perf = time.perf_counter
        for i in range(warmup + n):
            if i == warmup:
                before = await fake_requests(fake.url)
                profiler = Profiler(env, service.pid, f"order-{db.kind}").__enter__()
            side = "buy" if i % 2 == 0 else "sell"
            t0 = perf()
            r = await http.post(
                "/api/v1/signals",
                json={"symbol": "BTC/USDT", "direction": side, "connection_ids": [conn["id"]]},
            )
            t1 = perf()
            body = r.json()
            if r.status_code != 201 or body["executions"][0]["status"] != "filled":
                raise RuntimeError(f"signal {i}: {r.status_code} {r.text[:300]}")
            t2 = perf()
            await ex.create_order(
                "BTC/USDT", "market", side, 0.002, None, {"clientOrderId": f"floor-{i}"}
            )
            t3 = perf()
            await bare.commit_one("INSERT INTO bench_floor (id, v) VALUES (?, ?)", i, "pending")
            await bare.commit_one("UPDATE bench_floor SET v = ? WHERE id = ?", "filled", i)
            t4 = perf()
            h = await http.get("/health")
            t5 = perf()
            assert h.status_code == 200
            if i >= warmup:
                full.append((t1 - t0) * 1000)
                floor.append((t5 - t2) * 1000)
                parts["ccxt"].append((t3 - t2) * 1000)
                parts["commits"].append((t4 - t3) * 1000)
                parts["health"].append((t5 - t4) * 1000)
        if profiler is not None:
            profiler.__exit__()
        after = await fake_requests(fake.url)
        per_signal = {k: (after[k] - before[k]) for k in after if after[k] - before[k]}
        per_signal["POST /api/v3/order"] = per_signal.get("POST /api/v3/order", 0) - n  # floor's
        calls = ", ".join(f"{k} x{v / n:.2f}" for k, v in sorted(per_signal.items()) if v)
        p50, floor50 = pct(full, 50), pct(floor, 50)
        result.add(
            Figure(
                "p50 per signal",
                p50,
                "ms",
                floor50,
                "floor p50",
                "≤ 1.5x floor",
                p50 <= 1.5 * floor50,
            ),
            Figure("p99 per signal", pct(full, 99), "ms", pct(floor, 99), "floor p99"),
            Figure("floor p50", floor50, "ms"),
            Figure("floor p99", pct(floor, 99), "ms"),
        )
        result.notes.append(
            f"{n} signals after {warmup} warm-up; floor p50 = ccxt create_order "
            f"{pct(parts['ccxt'], 50):.2f} ms + two bare commits "
            f"{pct(parts['commits'], 50):.2f} ms + GET /health {pct(parts['health'], 50):.2f} ms"
        )
        result.notes.append(f"exchange requests per signal from the service: {calls}")
        log(f"order {db.label}: p50 {p50:.2f} ms vs floor {floor50:.2f} ms")
        return result
    finally:
        for api in apis:
            await api.aclose()
        if ex is not None:
            await ex.close()
        if bare is not None:
            await bare.close()
        if service is not None:
            service.stop()
        fake.stop()
