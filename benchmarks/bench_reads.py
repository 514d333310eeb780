"""4. API reads: GET /api/v1/positions?status=open&limit=50 with 50 open positions, under
concurrent load from a separate process (wrk when installed, else benchmarks.loadgen), against
one uvicorn worker (the API process, workers off as on an API replica).

Baseline, same run: GET /health (no I/O) of the same server under the same load."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from typing import Any

from benchmarks.harness import (
    ROOT,
    Api,
    Database,
    Env,
    PositionSpec,
    Profiler,
    admin_api,
    insert_connections,
    insert_open_positions,
    log,
    new_user_id,
    start_service,
)
from benchmarks.report import Figure, Result

CONNECTIONS = 16  # concurrent keep-alive connections of the load generator
PATH = "/api/v1/positions?status=open&limit=50"


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    value, unit = float(m[1]), m[2]
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def _wrk(url: str, key: str | None, seconds: int) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if key:
        cmd += ["-H", f"Authorization: Bearer {key}"]
    out = subprocess.run(  # noqa: S603
        [*cmd, url], capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p = {q: _ms(v) for q, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "p50": p.get("50", float("nan")),
        "p99": p.get("99", float("nan")),
        "non2xx": int(bad[1]) if bad else 0,
        "socket_errors": errors[0] if errors else "",
        "tool": "wrk",
    }


def _loadgen(url: str, key: str | None, seconds: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.loadgen", url, "--connections", str(CONNECTIONS)]
    cmd += ["--seconds", str(seconds)]
    if key:
        cmd += ["--header", f"Authorization: Bearer {key}"]
    out = subprocess.run(  # noqa: S603
        cmd, capture_output=True, text=True, timeout=seconds + 60, check=True, cwd=ROOT
    ).stdout
    data: dict[str, Any] = json.loads(out)
    data["tool"] = "benchmarks.loadgen"
    return data


def load(url: str, key: str | None, seconds: int) -> dict[str, Any]:
    if shutil.which("wrk"):
        return _wrk(url, key, seconds)
    return _loadgen(url, key, seconds)


async def run(db: Database, env: Env) -> Result:
    result = Result("reads", db.label)
    seconds = env.size(10, 3)
    engine = db.engine()
    service = None
    apis: list[Api] = []
    try:
        service = start_service(db, env.ring, env.workdir, workers=False, name="reads")
        admin = admin_api(service)
        apis.append(admin)
        user = await admin.new_user(new_user_id())
        apis.append(user)
        preset = await user.preset()
        dc = await user.data_connection()
        (conn_id,) = await insert_connections(
            engine,
            count=1,
            user_id=user.user_id or 0,
            adapter="paper",
            preset_id=preset["id"],
            data_connection_id=dc["id"],
        )
        specs = [
            PositionSpec(conn_id, f"R{i:02d}/USDT", Decimal(100), Decimal(90), Decimal(200))
            for i in range(50)
        ]
        await insert_open_positions(engine, user.user_id or 0, specs, "reads")
        page = await user.ok("GET", PATH)
        if len(page["items"]) != 50 or page["total"] != 50:
            raise RuntimeError(f"expected 50 open positions, got {page['total']}")
        url = f"{service.url}{PATH}"
        health = f"{service.url}/health"
        await asyncio.to_thread(load, url, user.key, 2)  # warm-up
        log(f"reads: {CONNECTIONS} connections, {seconds} s each")
        with Profiler(env, service.pid, f"reads-{db.kind}"):
            reads = await asyncio.to_thread(load, url, user.key, seconds)
        empty = await asyncio.to_thread(load, health, None, seconds)
        for name, run_ in (("positions", reads), ("health", empty)):
            if run_.get("non2xx") or run_.get("errors"):
                raise RuntimeError(f"{name}: failed requests: {run_}")
        result.add(
            Figure(
                "positions: req/s",
                reads["rps"],
                "req/s",
                empty["rps"],
                "GET /health req/s",
                "≥ 1,500 req/s",
                reads["rps"] >= 1500,
                higher_is_better=True,
            ),
            Figure(
                "positions: p99",
                reads["p99"],
                "ms",
                empty["p99"],
                "GET /health p99",
                "≤ 50 ms",
                reads["p99"] <= 50,
            ),
            Figure("positions: p50", reads["p50"], "ms", empty["p50"], "GET /health p50"),
        )
        result.notes.append(
            f"{reads['tool']}, {CONNECTIONS} keep-alive connections, {seconds} s per endpoint"
            + (f"; {reads['socket_errors']}" if reads.get("socket_errors") else "")
        )
        return result
    finally:
        for api in apis:
            await api.aclose()
        await engine.dispose()
        if service is not None:
            service.stop()
