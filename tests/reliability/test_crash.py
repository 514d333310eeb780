"""Crash safety: the real service as a subprocess on PostgreSQL, signals in flight to a slow fake
Binance (its own process), SIGKILL at random moments (between the `pending` commit and the send,
after the send, during a close), restart. Afterwards every execution log is terminal, the
exchange's filled orders and our filled logs match one to one by client order id (nothing was
resent), and no position is doubled or lost.

Replay a run with the seed it printed: `CRASH_SEED=<seed> pytest -s tests/reliability/test_crash.py`
(`CRASH_KEEP_DB=1` keeps the run's database even when it passes; a failing run always keeps it).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from execution_service.models import ExecutionLog, ExecutionPosition
from tests import pg
from tests.conftest import (
    BOOTSTRAP_KEY,
    EXAMPLE_API_KEY,
    EXAMPLE_API_SECRET,
    fresh_database,
    new_key_ring,
)
from tests.reliability.procs import Proc, free_port, start_fake_binance, start_service

ROUNDS = 5  # at most: no new round starts once ROUND_BUDGET seconds have gone
ROUND_BUDGET = 32
CONNECTIONS = 5
SIGNALS_PER_ROUND = 3  # each to every connection
BASE_PRICE = Decimal("50000")
# Stops sit TIGHT_STOP or LOOSE_STOP away from the base price; a round moves the price
# PRICE_MOVE one way, across that side's tight stops but not its loose ones, so the monitor
# closes positions while loose-stop signals still go out.
TIGHT_STOP, LOOSE_STOP, PRICE_MOVE = Decimal("1000"), Decimal("3000"), Decimal("1500")
QUANTITY = "0.001"
AMOUNT_STEP = Decimal("0.00001")  # the fake's BTC/USDT LOT_SIZE step: dust is below it
KILL_WINDOW = 2.5  # seconds after a round starts: signals, closes and the price move in flight
DWELL = 0.8  # after a restart the moved price stays this long, so the monitor closes on it
PER_CONNECTION = 2  # calls in flight per account: orders wait their turn after their commit
SETTLE_SECONDS = 30
TERMINAL = ("filled", "cancelled", "rejected")
UNSETTLED = ("pending", "open", "partially_filled")

Row = Mapping[str, Any]


def service_env(database_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXEC_")}
    env.update(
        {
            "EXEC_ENV": "test",
            "EXEC_OUTBOUND_ALLOW_PRIVATE": "true",  # the fakes listen on loopback
            "EXEC_DATABASE_URL": database_url,
            **pg.SERVICE_POOLS,
            "EXEC_ENCRYPTION_KEYS": new_key_ring().format(),  # one ring for every restart
            "EXEC_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY,
            "EXEC_MIGRATE_ON_START": "false",
            "EXEC_PORT": str(port),
            "EXEC_LOG_LEVEL": "INFO",
            "EXEC_MONITOR_INTERVAL_SECONDS": "0.2",
            "EXEC_ORDER_TRACKER_INTERVAL_SECONDS": "0.3",
            "EXEC_PENDING_GRACE_SECONDS": "3",
            "EXEC_EXCHANGE_TIMEOUT_MS": "1500",
            "EXEC_EXCHANGE_RETRY_BASE_DELAY": "0.01",
            "EXEC_HEALTH_INTERVAL_SECONDS": "3600",
            "EXEC_ANALYTICS_INTERVAL_SECONDS": "3600",
            "EXEC_EXIT_RETRY_SECONDS": "0.5",
            # Few calls in flight per account: an order queues behind reads after its `pending`
            # commit, which widens the commit-to-send window the kills aim at.
            "EXEC_EXCHANGE_CONCURRENCY_PER_CONNECTION": str(PER_CONNECTION),
        }
    )
    return env


class Service:
    """The service process, restarted on the same port, database and key ring."""

    def __init__(self, env: dict[str, str], port: int, tmp: Path) -> None:
        self.env, self.port, self.tmp = env, port, tmp
        self.proc: Proc | None = None
        self.starts = 0

    async def start(self) -> None:
        log = self.tmp / f"service-{self.starts}.log"
        self.starts += 1
        self.proc = await start_service(self.env, self.port, log, self.tmp)

    async def kill(self) -> None:
        if self.proc is not None:
            await self.proc.kill()

    async def stop(self) -> int | None:
        assert self.proc is not None
        return await self.proc.stop()

    def outputs(self) -> str:
        logs = (self.tmp / f"service-{i}.log" for i in range(self.starts))
        return "\n".join(p.read_text(errors="replace") for p in logs if p.exists())


class Api:
    """httpx toward the service: requests cut by a kill are counted, not raised; any 5xx other
    than a 502 (an exchange that failed) is remembered as a failure."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.statuses: Counter[int] = Counter()
        self.broken = 0
        self.server_errors: list[str] = []

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError:
            self.broken += 1
            return None
        self.statuses[response.status_code] += 1
        if response.status_code >= 500 and response.status_code != 502:
            self.server_errors.append(f"{method} {path}: {response.status_code} {response.text}")
        return response

    async def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        return response.json()


class FakeControl:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(self, action: str, body: dict[str, Any]) -> None:
        response = await self.http.post(f"/_fake/{action}", json=body)
        assert response.status_code == 200, (action, response.text)

    async def price(self, price: Decimal) -> None:
        await self("price", {"symbol": "BTC/USDT", "price": str(price)})

    async def snapshot(self, what: str) -> Any:
        return (await self.http.get(f"/_fake/{what}")).json()


async def setup_account(api: Api, fake_url: str) -> tuple[dict[str, str], list[int]]:
    """A user key, a fixed-quantity preset, and CONNECTIONS active ccxt connections on the fake."""
    admin = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
    body = {"name": "crash", "role": "user", "user_id": 4242}
    key = await api.ok("POST", "/api/v1/api-keys", 201, headers=admin, json=body)
    user = {"Authorization": f"Bearer {key['key']}"}
    body = {
        "name": "fixed",
        "position_size_mode": "fixed_quantity",
        "position_size_value": QUANTITY,
    }
    preset = await api.ok("POST", "/api/v1/presets", 201, headers=user, json=body)
    ids = []
    for n in range(CONNECTIONS):
        body = {
            "name": f"binance-{n}",
            "adapter": "ccxt",
            "exchange": "binance",
            "api_base_url": fake_url,
            "credentials": {"api_key": EXAMPLE_API_KEY, "api_secret": EXAMPLE_API_SECRET},
            "preset_id": preset["id"],
        }
        conn = await api.ok("POST", "/api/v1/connections", 201, headers=user, json=body)
        conn = await api.ok("POST", f"/api/v1/connections/{conn['id']}/activate", headers=user)
        assert conn["status"] == "active"
        ids.append(conn["id"])
    return user, ids


@dataclass
class Round:
    """One round: signals (buys and sells, each to every connection), manual closes of open
    positions, and a price move across the tight stops of one side (the monitor closes those),
    all in flight when the kill comes. The schedule comes from (seed, round) alone, so a seed
    replays the same schedule whatever the previous rounds left open."""

    number: int
    seed: int
    api: Api
    fake: FakeControl
    user: dict[str, str]
    conn_ids: list[int]

    async def signal(self, n: int, delay: float, direction: str, sl: Decimal) -> None:
        await asyncio.sleep(delay)
        body = {
            "external_id": f"r{self.number}-s{n}",
            "symbol": "BTC/USDT",
            "direction": direction,
            "sl_price": str(sl),
            "connection_ids": self.conn_ids,
        }
        await self.api.call("POST", "/api/v1/signals", headers=self.user, json=body)

    async def close(self, position_id: int, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.api.call("POST", f"/api/v1/positions/{position_id}/close", headers=self.user)

    async def move_price(self, delay: float, price: Decimal) -> None:
        await asyncio.sleep(delay)
        await self.fake.price(price)

    async def run(self, service: Service) -> str:
        rng = random.Random(f"{self.seed}:{self.number}")
        latency = rng.randint(100, 300)
        hang = rng.random() < 0.4
        down = rng.random() < 0.5
        signals = []
        for n in range(SIGNALS_PER_ROUND):
            direction = rng.choice(("buy", "buy", "sell"))
            tight = rng.random() < 0.5
            away = TIGHT_STOP if tight else LOOSE_STOP
            sl = BASE_PRICE - away if direction == "buy" else BASE_PRICE + away
            signals.append((n, rng.uniform(0, 0.4), direction, sl))
        close_count, close_delays = rng.randint(1, 4), [rng.uniform(0, 0.5) for _ in range(4)]
        move_at, kill_at = rng.uniform(0.2, 1.5), rng.uniform(0.1, KILL_WINDOW)
        moved = BASE_PRICE - PRICE_MOVE if down else BASE_PRICE + PRICE_MOVE

        await self.fake("latency", {"ms": latency})
        await self.fake.price(BASE_PRICE)
        if hang:  # one order is booked but its answer held past our timeout: outcome unknown
            await self.fake("hang", {"count": 1, "seconds": 2.5})
        path = "/api/v1/positions?status=open&limit=500"
        listed = await self.api.call("GET", path, headers=self.user)
        open_ids = sorted(p["id"] for p in listed.json()["items"]) if listed is not None else []
        to_close = random.Random(f"{self.seed}:{self.number}:close").sample(
            open_ids, k=min(len(open_ids), close_count)
        )
        tasks = [asyncio.create_task(self.signal(*args)) for args in signals]
        tasks += [
            asyncio.create_task(self.close(p, delay))
            for p, delay in zip(to_close, close_delays, strict=False)
        ]
        tasks.append(asyncio.create_task(self.move_price(move_at, moved)))
        await asyncio.sleep(kill_at)
        await service.kill()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)  # cut requests fail fast
        await service.start()
        await asyncio.sleep(DWELL)
        return (
            f"r{self.number}: SIGKILL at {kill_at:.2f}s, latency {latency} ms, "
            f"{len(to_close)} manual closes, price {'down' if down else 'up'} to {moved} at "
            f"{move_at:.2f}s{', one reply hung' if hang else ''}"
        )


async def unsettled(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        logs = await conn.scalar(
            select(func.count()).select_from(ExecutionLog).where(ExecutionLog.status.in_(UNSETTLED))
        )
        closing = await conn.scalar(
            select(func.count())
            .select_from(ExecutionPosition)
            .where(ExecutionPosition.status == "closing")
        )
    return int(logs or 0), int(closing or 0)


def check_invariants(
    logs: Sequence[Row], positions: Sequence[Row], exchange_orders: Sequence[Row]
) -> list[str]:
    problems: list[str] = []
    by_cid = {row["client_order_id"]: row for row in logs}
    by_id = {row["id"]: row for row in logs}

    # Every log is terminal; no position is left half-closed.
    for row in logs:
        if row["status"] not in TERMINAL:
            problems.append(
                f"log {row['id']} {row['client_order_id']} is still {row['status']} "
                f"({row['error_message']})"
            )
    problems += [
        f"position {p['id']} is still closing" for p in positions if p["status"] == "closing"
    ]

    # Nothing was resent: each client order id reached the exchange at most once, and every order
    # on the exchange is one of ours.
    sent = Counter(o["clientOrderId"] for o in exchange_orders)
    problems += [f"{cid} reached the exchange {n} times" for cid, n in sent.items() if n > 1]
    problems += [
        f"the exchange has {cid}, we have no log of it" for cid in sent if cid not in by_cid
    ]

    # The exchange's fills and ours, one to one by client order id, with equal quantities.
    theirs = {
        o["clientOrderId"]: Decimal(o["executedQty"])
        for o in exchange_orders
        if Decimal(o["executedQty"]) > 0
    }
    ours = {
        row["client_order_id"]: row["filled_quantity"] for row in logs if row["filled_quantity"] > 0
    }
    for cid in sorted(set(theirs) | set(ours)):
        if theirs.get(cid) != ours.get(cid):
            row = by_cid.get(cid) or {}
            problems.append(
                f"{cid}: the exchange filled {theirs.get(cid)}, we recorded {ours.get(cid)} "
                f"(log {row.get('id')}: {row.get('status')} {row.get('error_code')} "
                f"{row.get('error_message')})"
            )

    # Every filled entry opened exactly one position, of what it filled (less a fee taken in the
    # bought asset); every position has its filled entry log.
    positions_of: dict[int, list[Row]] = defaultdict(list)
    for p in positions:
        positions_of[p["execution_log_id"]].append(p)
    for row in logs:
        if row["purpose"] != "entry" or row["filled_quantity"] <= 0:
            continue
        mine = positions_of.get(row["id"], [])
        if len(mine) != 1:
            problems.append(
                f"entry {row['client_order_id']} (log {row['id']}, filled "
                f"{row['filled_quantity']}) has {len(mine)} positions"
            )
            continue
        held = row["filled_quantity"] - (row["fee"] if row["fee_currency"] == "BTC" else 0)
        if mine[0]["initial_quantity"] != held:
            problems.append(
                f"position {mine[0]['id']} opened with {mine[0]['initial_quantity']}; its entry "
                f"{row['client_order_id']} filled {row['filled_quantity']} "
                f"(fee {row['fee']} {row['fee_currency']})"
            )
        if row["position_id"] != mine[0]["id"]:
            problems.append(
                f"entry {row['client_order_id']} points at position {row['position_id']}, "
                f"not {mine[0]['id']}"
            )
    for p in positions:
        entry = by_id.get(p["execution_log_id"])
        if entry is None or entry["purpose"] != "entry" or entry["filled_quantity"] <= 0:
            problems.append(f"position {p['id']} has no filled entry log")

    # What a position opened with left through its exits' fills, plus dust under the step
    # (docs/decisions.md), plus what it still holds.
    exits_of: dict[int, list[Row]] = defaultdict(list)
    for row in logs:
        if row["purpose"] == "exit":
            exits_of[row["position_id"]].append(row)
    position_ids = {p["id"] for p in positions}
    problems += [
        f"exit logs of a missing position {pid}" for pid in exits_of if pid not in position_ids
    ]
    for p in positions:
        exits = exits_of.get(p["id"], [])
        sold = sum((e["filled_quantity"] for e in exits), Decimal(0))
        dust = sum((Decimal((e["plan"] or {}).get("dust", "0")) for e in exits), Decimal(0))
        if p["status"] == "closed" and p["quantity"] != 0:
            problems.append(f"closed position {p['id']} still holds {p['quantity']}")
        if p["status"] == "open" and p["quantity"] <= 0:
            problems.append(f"open position {p['id']} holds {p['quantity']}")
        if not 0 <= dust < AMOUNT_STEP:
            problems.append(f"position {p['id']}: dust {dust} is not under the amount step")
        if sold + dust + p["quantity"] != p["initial_quantity"]:
            detail = [(e["client_order_id"], e["status"], str(e["filled_quantity"])) for e in exits]
            problems.append(
                f"position {p['id']} ({p['status']}) opened with {p['initial_quantity']}: exits "
                f"filled {sold} + dust {dust} + still held {p['quantity']} {detail}"
            )
    return problems


def summary(
    seed: int,
    notes: list[str],
    logs: Sequence[Row],
    positions: Sequence[Row],
    orders: Sequence[Row],
) -> list[str]:
    def purposes(rows: list[Row]) -> dict[str, int]:
        return dict(Counter(row["purpose"] for row in rows))

    filled = [row for row in logs if row["filled_quantity"] > 0]
    # A fill recorded without a latency is one whose answer a kill lost: reconciliation found it.
    reconciled = [row for row in filled if row["latency_ms"] is None]
    never_sent = [row for row in logs if row["error_code"] == "not_found_after_submit"]
    no_fee = [row for row in filled if not row["fee"]]
    reasons = Counter(p["closed_reason"] for p in positions if p["status"] == "closed")
    return [
        *notes,
        f"exchange orders: {len(orders)} "
        f"({sum(1 for o in orders if Decimal(o['executedQty']) > 0)} filled); execution logs: "
        f"{dict(Counter(row['status'] for row in logs))}, error codes "
        f"{dict(Counter(row['error_code'] for row in logs if row['error_code']))}",
        f"killed between the pending commit and the send: {purposes(never_sent)}; fills whose "
        f"reply a kill lost, found by reconciliation: {purposes(reconciled)} ({purposes(no_fee)} "
        f"of all fills carry no fee)",
        f"positions: {len(positions)} ({sum(1 for p in positions if p['status'] == 'open')} open, "
        f"closed by {dict(reasons)}); replay with CRASH_SEED={seed}",
    ]


async def test_sigkill_at_random_points_loses_and_doubles_nothing(
    is_postgres: bool, tmp_path: Path
) -> None:
    if not is_postgres:
        pytest.skip("the crash test runs the service as its own process on PostgreSQL")
    seed = int(os.environ.get("CRASH_SEED") or random.randrange(2**31))
    print(f"\ncrash test seed={seed} (replay with CRASH_SEED={seed})")
    started = time.monotonic()

    db_name = f"exec_crash_{seed}"
    database_url = await fresh_database(tmp_path, db_name)
    engine = create_async_engine(database_url)
    fake_proc, fake_url = await start_fake_binance(
        tmp_path / "fake.log", api_key=EXAMPLE_API_KEY, api_secret=EXAMPLE_API_SECRET
    )
    port = free_port()
    service = Service(service_env(database_url, port), port, tmp_path)
    passed = False
    try:
        fake_http = httpx.AsyncClient(base_url=fake_url, timeout=10)
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15)
        async with fake_http, http:
            api, fake = Api(http), FakeControl(fake_http)
            await service.start()
            user, conn_ids = await setup_account(api, fake_url)
            notes: list[str] = []
            while len(notes) < ROUNDS and (
                time.monotonic() - started < ROUND_BUDGET or len(notes) < 3
            ):
                round_ = Round(len(notes), seed, api, fake, user, conn_ids)
                notes.append(await round_.run(service))

            # The last round ended with a restart: a calm exchange now, and the trackers finish.
            await fake("latency", {"ms": 0})
            await fake.price(BASE_PRICE)
            settle_started = time.monotonic()
            while (
                await unsettled(engine) != (0, 0)
                and time.monotonic() - settle_started < SETTLE_SECONDS
            ):
                await asyncio.sleep(0.3)
            settled_in = time.monotonic() - settle_started
            code = await service.stop()
            orders = await fake.snapshot("orders")
            unexpected = await fake.snapshot("unexpected")

        async with engine.connect() as conn:
            logs = [dict(r) for r in (await conn.execute(select(ExecutionLog))).mappings()]
            rows = (await conn.execute(select(ExecutionPosition))).mappings()
            positions = [dict(r) for r in rows]

        print(
            f"crash test seed={seed}: {len(notes)} rounds, {len(notes)} SIGKILLs, {service.starts} "
            f"service starts, {time.monotonic() - started:.1f}s, settled "
            f"{settled_in:.1f}s after the last restart; API answers {dict(api.statuses)}, "
            f"{api.broken} requests cut by kills"
        )
        for line in summary(seed, notes, logs, positions, orders):
            print("  " + line)

        problems = check_invariants(logs, positions, orders)
        problems += [f"server error: {e}" for e in api.server_errors]
        if unexpected:
            problems.append(f"stray requests to the exchange: {unexpected}")
        if code not in (0, -15):  # uvicorn re-raises SIGTERM after a clean shutdown
            problems.append(f"the last service did not stop cleanly ({code})")
        output = service.outputs()
        if EXAMPLE_API_SECRET in output or EXAMPLE_API_KEY in output:
            problems.append("a credential appears in the service's output")
        assert not problems, "\n".join(problems)
        passed = True
    finally:
        await service.kill()
        await fake_proc.stop()
        await engine.dispose()
        if not passed:
            print(f"crash test seed={seed}: database kept at {database_url}")
            print(service.outputs()[-6000:])
        elif os.environ.get("CRASH_KEEP_DB"):
            print(f"crash test seed={seed}: database kept at {database_url}")
        else:
            await _drop_database(database_url.rpartition("/")[2])


async def _drop_database(name: str) -> None:
    await pg.drop(name)
