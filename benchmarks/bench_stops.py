"""5. Stop reaction, through the service with its workers at their default settings (monitor every
EXEC_MONITOR_INTERVAL_SECONDS = 1 s):

- 20 rounds: open a position (paper, manual prices), wait a random part of the interval, push a
  price across its SL, poll GET /positions/{id} every 10 ms until it reads `closed`.
- 100 simultaneous: 100 paper connections with one position each on one symbol (one signal),
  one price push across their SL, poll until the 100th reads `closed`.

Baseline: the monitor interval. A monitor polling every interval reacts, on average, half an
interval after a price lands, and at worst a whole interval after it (plus its tick)."""

from __future__ import annotations

import asyncio
import random
import time

from benchmarks.harness import (
    Api,
    Database,
    Env,
    Profiler,
    admin_api,
    insert_connections,
    log,
    median,
    new_user_id,
    start_service,
)
from benchmarks.report import Figure, Result

INTERVAL = 1.0  # the service's default EXEC_MONITOR_INTERVAL_SECONDS
POLL = 0.01
TIMEOUT = 30.0


async def _until(predicate_call, limit: float = TIMEOUT, poll: float = POLL) -> float:  # type: ignore[no-untyped-def]
    """Poll until the predicate holds; the moment it was seen to (perf_counter)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        if await predicate_call():
            return time.perf_counter()
        await asyncio.sleep(poll)
    raise TimeoutError(f"not closed within {limit} s")


async def _single(user: Api, rounds: int, limit: float) -> list[float]:
    preset = await user.preset(default_sl_percent=None, default_tp_percent=None)
    dc = await user.data_connection()
    await user.push_prices(dc["id"], {"R0/USDT": "100"})
    conn = await user.connection(
        {
            "name": "paper",
            "adapter": "paper",
            "preset_id": preset["id"],
            "data_connection_id": dc["id"],
        }
    )
    reactions = []
    for i in range(rounds):
        symbol = f"R{i}/USDT"
        await user.push_prices(dc["id"], {symbol: "100"})
        body = await user.signal(
            symbol=symbol,
            direction="buy",
            sl_price="95",
            tp_price="200",
            connection_ids=[conn["id"]],
        )
        position_id = body["executions"][0]["position_id"]
        if position_id is None:
            raise RuntimeError(f"round {i}: no position opened: {body['executions']}")
        await asyncio.sleep(random.uniform(0, INTERVAL))

        async def closed(pid: int = position_id) -> bool:
            return (await user.ok("GET", f"/api/v1/positions/{pid}"))["status"] == "closed"

        t0 = time.perf_counter()
        await user.push_prices(dc["id"], {symbol: "94"})
        reactions.append(await _until(closed, limit) - t0)
    return reactions


async def _simultaneous(
    user: Api, engine: object, count: int, rounds: int, limit: float
) -> list[float]:
    preset = await user.preset(default_sl_percent=None, default_tp_percent=None)
    dc = await user.data_connection()
    await insert_connections(
        engine,  # type: ignore[arg-type]
        count=count,
        user_id=user.user_id or 0,
        adapter="paper",
        preset_id=preset["id"],
        data_connection_id=dc["id"],
    )
    times = []
    for r in range(rounds):
        symbol = f"H{r}/USDT"
        await user.push_prices(dc["id"], {symbol: "100"})
        body = await user.signal(symbol=symbol, direction="buy", sl_price="95", tp_price="200")
        # Each filled entry opened a position (the answer embeds only the first executions).
        opened = body["by_status"].get("filled", 0)
        if opened != count:
            raise RuntimeError(f"{opened}/{count} positions opened")
        await asyncio.sleep(random.uniform(0, INTERVAL))

        async def all_closed(sym: str = symbol) -> bool:
            page = await user.ok(
                "GET", "/api/v1/positions", params={"status": "closed", "symbol": sym, "limit": 1}
            )
            return bool(page["total"] == count)

        t0 = time.perf_counter()
        await user.push_prices(dc["id"], {symbol: "94"})
        times.append(await _until(all_closed, limit, poll=0.02) - t0)
    return times


async def run(db: Database, env: Env) -> Result:
    result = Result("stops", db.label)
    rounds, count, big_rounds = env.size(20, 5), env.size(100, 20), env.size(3, 1)
    engine = db.engine()
    service = None
    apis: list[Api] = []
    try:
        service = start_service(db, env.ring, env.workdir, workers=True, name="stops")
        admin = admin_api(service)
        apis.append(admin)
        one = await admin.new_user(new_user_id())
        many = await admin.new_user(new_user_id())
        apis += [one, many]
        with Profiler(env, service.pid, f"stops-{db.kind}"):
            log(f"stops: {rounds} single rounds")
            single = await _single(one, rounds, env.limit(TIMEOUT))
            log(f"stops: {big_rounds} rounds of {count} simultaneous stops")
            together = await _simultaneous(many, engine, count, big_rounds, env.limit(TIMEOUT))
        p50, worst = median(single), max(single)
        result.add(
            Figure(
                "one stop: p50", p50, "s", INTERVAL / 2, "½ monitor interval", "≤ 0.5 s", p50 <= 0.5
            ),
            Figure(
                "one stop: max", worst, "s", INTERVAL, "monitor interval", "≤ 1.2 s", worst <= 1.2
            ),
            Figure(
                f"{count} stops at once: last closed",
                max(together),
                "s",
                INTERVAL,
                "monitor interval",
                "≤ 1.5 s",
                max(together) <= 1.5,
            ),
        )
        result.notes.append(
            f"{rounds} single rounds (each reaction: "
            + ", ".join(f"{s:.2f}" for s in sorted(single))
            + f" s); {big_rounds} rounds of {count} at once: "
            + ", ".join(f"{s:.2f}" for s in together)
            + " s (max shown)"
        )
        return result
    finally:
        for api in apis:
            await api.aclose()
        await engine.dispose()
        if service is not None:
            service.stop()
