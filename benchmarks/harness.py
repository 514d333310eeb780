"""What every benchmark needs: fresh databases, the service and the fake exchange as processes,
bare driver connections for the baselines, an API client, bulk seeding, and percentiles.

Nothing here leaves 127.0.0.1. Every process started here is stopped by its `Proc` (terminate,
then kill), and every database made here is dropped by its `Database`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import execution_service
from execution_service import migrate
from execution_service.crypto import KeyRing, owner_aad
from execution_service.db import create_engine, create_session_factory
from execution_service.market_data.store import Point, store
from execution_service.models import (
    DataConnection,
    ExecutionConnection,
    ExecutionLog,
    ExecutionPosition,
    KeptBalance,
    PaperBalance,
    PaperHolding,
    TradingPreset,
)

ROOT = Path(__file__).resolve().parent.parent
# The service's source as this process imports it (children import the very same tree).
SRC = Path(execution_service.__file__).resolve().parent.parent
# Binance's documented example key pair (also the tests'): real-looking, nobody's account.
EXCHANGE_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
EXCHANGE_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"  # noqa: S105
ADMIN_KEY = "exs_benchadm_" + "b" * 32
# Where the PostgreSQL server is: benchmarks make (and drop) their own databases on it.
PG_SERVER = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
UNLIMITED = "1000000000"


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- contention --------------------------------------------------------------------------------


class CpuMeter:
    """How busy the machine was over an interval, and how much of that was this process and the
    children it has waited for (service, fake, load generator). The rest is PostgreSQL and any
    other process on the machine: the contention indicator printed with every result."""

    def __init__(self) -> None:
        self.t0, self.busy0, self.total0, self.ours0 = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float, float]:
        import resource

        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        total = sum(fields[:8])
        ours = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            ours += usage.ru_utime + usage.ru_stime
        return time.monotonic(), total - idle, total, ours

    def read(self) -> dict[str, float]:
        """Cores in use on average: machine, ours, and the rest (PostgreSQL + others)."""
        t1, busy1, total1, ours1 = self._sample()
        cores = os.cpu_count() or 1
        wall = max(t1 - self.t0, 1e-9)
        share = (busy1 - self.busy0) / max(total1 - self.total0, 1e-9)
        machine = share * cores
        ours = (ours1 - self.ours0) / wall
        return {"machine": machine, "ours": ours, "rest": max(machine - ours, 0.0)}


# --- statistics -------------------------------------------------------------------------------


def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100), linear between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return pct(values, 50)


# --- databases --------------------------------------------------------------------------------


def _server_base(url: str) -> str:
    return url.rpartition("/")[0]


@dataclass
class Database:
    kind: str  # "sqlite" | "postgres"
    name: str
    url: str
    path: Path | None = None  # SQLite file

    @property
    def label(self) -> str:
        return "SQLite" if self.kind == "sqlite" else "PostgreSQL"

    def engine(self, **kwargs: Any) -> AsyncEngine:
        """An engine built the way the service builds its own (pragmas, pool)."""
        return create_engine(self.url, **kwargs)

    async def drop(self) -> None:
        if self.kind == "sqlite":
            assert self.path is not None
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{self.path}{suffix}").unlink()  # noqa: ASYNC240
            return
        admin = create_async_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        finally:
            await admin.dispose()


async def postgres_available() -> bool:
    engine = create_async_engine(PG_SERVER)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        await engine.dispose()


async def postgres_version() -> str:
    engine = create_async_engine(PG_SERVER)
    try:
        async with engine.connect() as conn:
            return str(await conn.scalar(text("SHOW server_version")))
    finally:
        await engine.dispose()


async def create_database(kind: str, name: str, workdir: Path) -> Database:
    """A new, empty database migrated to head (`name` gets a `bench_` prefix on PostgreSQL)."""
    if kind == "sqlite":
        path = workdir / f"{name}.db"
        db = Database(kind, name, f"sqlite+aiosqlite:///{path}", path)
        await db.drop()
    else:
        name = f"bench_{name}"
        db = Database(kind, name, f"{_server_base(PG_SERVER)}/{name}")
        await db.drop()
        admin = create_async_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            await admin.dispose()
    await asyncio.to_thread(migrate.upgrade, db.url)
    return db


class BareDb:
    """One raw driver connection (asyncpg, or aiosqlite with the service's pragmas): the floor
    under SQLAlchemy and the service. SQL is written with `?` placeholders."""

    def __init__(self, db: Database, conn: Any) -> None:
        self.db, self.conn = db, conn
        self.pg = db.kind == "postgres"

    @classmethod
    async def open(cls, db: Database) -> BareDb:
        if db.kind == "postgres":
            import asyncpg

            dsn = db.url.replace("postgresql+asyncpg://", "postgresql://")
            return cls(db, await asyncpg.connect(dsn))
        import aiosqlite

        conn = await aiosqlite.connect(str(db.path), isolation_level=None)
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA busy_timeout=30000",
        ):
            await conn.execute(pragma)
        return cls(db, conn)

    def _sql(self, sql: str) -> str:
        if not self.pg:
            return sql
        n = 0

        def number(_: re.Match[str]) -> str:
            nonlocal n
            n += 1
            return f"${n}"

        return re.sub(r"\?", number, sql)

    async def commit_one(self, sql: str, *args: Any) -> None:
        """One statement in its own durable transaction."""
        if self.pg:
            await self.conn.execute(self._sql(sql), *args)
        else:
            await self.conn.execute("BEGIN IMMEDIATE")
            await self.conn.execute(sql, args)
            await self.conn.execute("COMMIT")

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        if self.pg:
            return list(await self.conn.fetch(self._sql(sql), *args))
        cursor = await self.conn.execute(sql, args)
        rows = await cursor.fetchall()
        await cursor.close()
        return list(rows)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement over many rows, in one transaction."""
        if self.pg:
            async with self.conn.transaction():
                await self.conn.executemany(self._sql(sql), list(rows))
        else:
            await self.conn.execute("BEGIN IMMEDIATE")
            await self.conn.executemany(sql, list(rows))
            await self.conn.execute("COMMIT")

    async def close(self) -> None:
        await self.conn.close()


# --- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXEC_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SRC), str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    url: str = ""
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)


def start_fake(workdir: Path, *, binance_limits: bool = False) -> Proc:
    """The fake Binance in its own process; its first stdout line is its base URL.
    `binance_limits`: it enforces Binance's published per-IP weight and per-key order counts."""
    log_path = workdir / "fake-binance.log"
    popen = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "tests.fakes.binance",
            "--api-key",
            EXCHANGE_KEY,
            "--api-secret",
            EXCHANGE_SECRET,
            *(["--binance-limits"] if binance_limits else []),
        ],
        cwd=ROOT,
        env=_child_env({}),
        stdout=subprocess.PIPE,
        stderr=log_path.open("wb"),
    )
    proc = Proc("fake-binance", popen, log_path=log_path)
    assert popen.stdout is not None
    deadline = time.monotonic() + 30
    line = b""
    while time.monotonic() < deadline and popen.poll() is None:
        import select as _select

        ready, _, _ = _select.select([popen.stdout], [], [], 0.2)
        if ready:
            line = popen.stdout.readline()
            break
    if not line.startswith(b"http://127.0.0.1:"):
        proc.stop()
        raise RuntimeError(f"the fake exchange did not start:\n{proc.log_tail()}")
    proc.url = line.decode().strip()
    return proc


def _service_env(db: Database, ring: KeyRing, workdir: Path) -> dict[str, str]:
    """The settings every process of the service gets here."""
    return {
        "EXEC_ENV": "test",
        "EXEC_OUTBOUND_ALLOW_PRIVATE": "true",  # the fakes listen on loopback
        "EXEC_DATABASE_URL": db.url,
        "EXEC_ENCRYPTION_KEYS": ring.format(),
        "EXEC_ENCRYPTION_KEY_FILE": str(workdir / "unused-keys"),
        "EXEC_MIGRATE_ON_START": "false",
        "EXEC_LOG_LEVEL": "WARNING",
    }


def start_service(
    db: Database,
    ring: KeyRing,
    workdir: Path,
    *,
    workers: bool,
    env: dict[str, str] | None = None,
    name: str = "service",
) -> Proc:
    """`execution-service serve` on a free loopback port, against `db` (already migrated)."""
    port = free_port()
    log_path = workdir / f"{name}-{db.kind}.log"
    settings_env = {
        **_service_env(db, ring, workdir),
        "EXEC_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
        "EXEC_WORKERS_ENABLED": "true" if workers else "false",
        "EXEC_SIGNAL_RATE_PER_MINUTE": UNLIMITED,
        "EXEC_SIGNAL_RATE_BURST": UNLIMITED,
        "EXEC_AUTH_MAX_FAILURES": UNLIMITED,
        **(env or {}),
    }
    popen = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "execution_service.cli",
            "serve",
            "--port",
            str(port),
            "--no-migrate",
        ],
        cwd=workdir,
        env=_child_env(settings_env),
        stdout=subprocess.DEVNULL,
        stderr=log_path.open("wb"),
    )
    proc = Proc(name, popen, f"http://127.0.0.1:{port}", log_path)
    return _answering(proc, f"{proc.url}/health", "the service")


def start_worker(
    db: Database,
    ring: KeyRing,
    workdir: Path,
    *,
    name: str = "worker",
    env: dict[str, str] | None = None,
) -> Proc:
    """`execution-service worker` (the background loops alone), its metrics served on a free
    loopback port (`Proc.url`); returns once they answer."""
    port = free_port()
    log_path = workdir / f"{name}-{db.kind}.log"
    settings_env = {
        **_service_env(db, ring, workdir),
        "EXEC_HOST": "127.0.0.1",
        "EXEC_WORKER_METRICS_PORT": str(port),
        **(env or {}),
    }
    popen = subprocess.Popen(
        [sys.executable, "-m", "execution_service.cli", "worker"],
        cwd=workdir,
        env=_child_env(settings_env),
        stdout=subprocess.DEVNULL,
        stderr=log_path.open("wb"),
    )
    proc = Proc(name, popen, f"http://127.0.0.1:{port}", log_path)
    return _answering(proc, proc.url, "the worker")


def _answering(proc: Proc, url: str, what: str) -> Proc:
    """`proc` once `url` answers 200 (within 60 s; else it is stopped and this raises)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{what} exited at start:\n{proc.log_tail()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"{what} did not answer {url} within 60 s:\n{proc.log_tail()}")


def new_ring() -> KeyRing:
    return KeyRing([("bench1", AESGCM.generate_key(bit_length=256))])


@dataclass
class Env:
    """What one run shares: a scratch directory, sizes, the key ring, and where profiles go."""

    workdir: Path
    quick: bool
    ring: KeyRing
    profile_dir: Path | None = None

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @functools.cached_property
    def pace(self) -> float:
        """How much slower than idle this machine runs now (≥ 1): the 1-minute load over the
        cores, measured once at the start. Time limits are multiplied by it, so a loaded machine
        gets more time instead of a failure; figures are still ratios to a baseline of the run."""
        return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))  # not money

    def limit(self, seconds: float) -> float:
        return seconds * self.pace


class Profiler:
    """`py-spy record` of a running process (on-CPU samples only, non-blocking), written as
    collapsed stacks and summarised by benchmarks.profiles. A no-op without a profile dir."""

    def __init__(self, env: Env, pid: int, name: str) -> None:
        self.out = env.profile_dir / f"{name}.raw" if env.profile_dir else None
        self.pid = pid
        self.popen: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        if self.out is None:
            return self
        exe = Path(sys.executable).with_name("py-spy")
        cmd = [str(exe) if exe.exists() else "py-spy", "record", "--pid", str(self.pid)]
        cmd += ["--format", "raw", "--rate", "250", "--gil", "--full-filenames"]
        cmd += ["--output", str(self.out)]
        self.popen = subprocess.Popen(  # noqa: S603
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.5)  # attached before the measured part starts
        return self

    def __exit__(self, *exc: object) -> None:
        if self.popen is None or self.out is None:
            return
        self.popen.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        from benchmarks.profiles import summarise

        if self.out.exists():
            summary = summarise(self.out.read_text())
            self.out.with_suffix(".txt").write_text(summary)
            self.out.unlink()
            log(f"profile: {self.out.with_suffix('.txt')}")


# --- the API as a client ----------------------------------------------------------------------


class ApiError(RuntimeError):
    pass


@dataclass
class Api:
    """An HTTP client holding one API key."""

    base_url: str
    key: str
    user_id: int | None = None
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=120,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        if response.status_code != status:
            raise ApiError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    async def new_user(self, user_id: int) -> Api:
        body = {"name": f"bench-{user_id}", "role": "user", "user_id": user_id}
        created = await self.ok("POST", "/api/v1/api-keys", 201, json=body)
        return Api(self.base_url, created["key"], user_id)

    async def preset(self, **fields: Any) -> dict[str, Any]:
        body = {
            "name": "bench",
            "position_size_mode": "fixed_notional",
            "position_size_value": "100",
            "default_sl_percent": "2",
            "default_tp_percent": "4",
            # The order path alone: stops resting at the venue cost requests of their own, and
            # are measured by bench 8.
            "stops_on_venue": False,
            **fields,
        }
        return await self.ok("POST", "/api/v1/presets", 201, json=body)  # type: ignore[no-any-return]

    async def data_connection(self) -> dict[str, Any]:
        body = {"name": "bench prices", "type": "manual"}
        return await self.ok("POST", "/api/v1/data-connections", 201, json=body)  # type: ignore[no-any-return]

    async def push_prices(self, data_connection_id: int, prices: dict[str, str]) -> None:
        points = [{"symbol": s, "price": p} for s, p in prices.items()]
        await self.ok(
            "POST",
            f"/api/v1/data-connections/{data_connection_id}/market-data",
            json={"prices": points},
        )

    async def connection(self, body: dict[str, Any], activate: bool = True) -> dict[str, Any]:
        conn = await self.ok("POST", "/api/v1/connections", 201, json=body)
        if activate:
            conn = await self.ok("POST", f"/api/v1/connections/{conn['id']}/activate")
        return conn  # type: ignore[no-any-return]

    async def signal(self, **body: Any) -> dict[str, Any]:
        return await self.ok("POST", "/api/v1/signals", 201, json=body)  # type: ignore[no-any-return]


def admin_api(service: Proc) -> Api:
    return Api(service.url, ADMIN_KEY)


# --- bulk seeding through the service's own models --------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


async def _next_id(engine: AsyncEngine, model: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.coalesce(func.max(model.id), 0))) or 0) + 1


async def _fix_sequence(engine: AsyncEngine, table: str) -> None:
    if engine.dialect.name != "postgresql":
        return
    async with engine.begin() as conn:  # `table` is one of our models' table names
        await conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"(SELECT max(id) FROM {table}))"
            )
        )


async def bulk_insert(engine: AsyncEngine, model: Any, rows: list[dict[str, Any]]) -> None:
    """Core executemany in chunks; ids given by the caller (sequences fixed afterwards)."""
    table = model.__table__
    for start in range(0, len(rows), 5000):
        async with engine.begin() as conn:
            await conn.execute(insert(table), rows[start : start + 5000])
    await _fix_sequence(engine, table.name)


async def insert_connections(
    engine: AsyncEngine,
    *,
    count: int,
    user_id: int,
    adapter: str,
    preset_id: int | None,
    data_connection_id: int | None = None,
    paper_balance: str = "1000000000",
    api_base_url: str | None = None,
    ring: KeyRing | None = None,
    keys: Sequence[tuple[str, str]] | None = None,
) -> list[int]:
    """`count` active connections of `user_id`, ready to trade (setup, not measured). ccxt ones
    use the fake's one API key, or each its own of `keys` (key, secret): one account each."""
    first = await _next_id(engine, ExecutionConnection)
    ids = list(range(first, first + count))
    stamp = now()
    tokens: list[Any] = [None] * count
    hints: list[str | None] = [None] * count
    if adapter == "ccxt":
        assert ring is not None
        pairs = list(keys) if keys is not None else [(EXCHANGE_KEY, EXCHANGE_SECRET)]
        assert len(pairs) in (1, count)
        sealed = [
            ring.encrypt({"api_key": k, "api_secret": s}, owner_aad(user_id, None))
            for k, s in pairs
        ]
        tokens = sealed * count if len(sealed) == 1 else sealed
        hints = [k[-4:] for k, _ in pairs] * (count if len(pairs) == 1 else 1)
    rows = [
        {
            "id": i,
            "user_id": user_id,
            "admin_id": None,
            "name": f"bench {adapter} {i}",
            "type": "crypto",
            "adapter": adapter,
            "exchange": "binance" if adapter == "ccxt" else None,
            "sandbox": False,
            "api_base_url": api_base_url,
            "market_type": "spot",
            "preset_id": preset_id,
            "data_connection_id": data_connection_id,
            "status": "active",
            "is_active": True,
            "credentials_encrypted": token.token if token else None,
            "credentials_key_id": token.key_id if token else None,
            "api_key_hint": hint,
            "paper_config": {"fee_rate": "0.001", "slippage_bps": "5"}
            if adapter == "paper"
            else None,
            "consecutive_failures": 0,
            "last_tested_at": stamp,
            "created_at": stamp,
            "updated_at": stamp,
        }
        for i, token, hint in zip(ids, tokens, hints, strict=True)
    ]
    await bulk_insert(engine, ExecutionConnection, rows)
    if adapter == "paper":
        first_balance = await _next_id(engine, PaperBalance)
        balances = [
            {
                "id": first_balance + n,
                "connection_id": i,
                "currency": "USDT",
                "free": Decimal(paper_balance),
                "used": Decimal(0),
            }
            for n, i in enumerate(ids)
        ]
        await bulk_insert(engine, PaperBalance, balances)
    return ids


async def insert_kept_balances(
    engine: AsyncEngine, ids: Sequence[int], balances: dict[str, str]
) -> None:
    """Each account's balances as if the service had read them just now (its health checks and
    earlier signals do, `exchanges.kept`): what sizing falls back on when the venue's request
    budget has no room for 1,000 fresh reads."""
    encoded = {c: [v, "0", v] for c, v in balances.items()}
    rows = [{"connection_id": i, "balances": encoded, "read_at": now()} for i in ids]
    async with engine.begin() as conn:
        await conn.execute(insert(KeptBalance.__table__), rows)


async def insert_prices(
    engine: AsyncEngine, data_connection_id: int, prices: dict[str, Decimal], at: datetime
) -> None:
    """Stored ticks, through the service's one write path (as `POST .../market-data` stores
    them, the latest price per symbol with them)."""
    async with create_session_factory(engine)() as session:
        points = [Point.tick(symbol, at, price) for symbol, price in prices.items()]
        await store(session, data_connection_id, points, at)
        await session.commit()


@dataclass
class PositionSpec:
    connection_id: int
    symbol: str
    entry: Decimal
    sl: Decimal | None
    tp: Decimal | None
    quantity: Decimal = Decimal("0.5")
    direction: str = "buy"


async def insert_open_positions(
    engine: AsyncEngine, user_id: int, specs: Sequence[PositionSpec], tag: str
) -> list[int]:
    """Open positions, each with the filled entry log it came from (setup, not measured)."""
    first_log = await _next_id(engine, ExecutionLog)
    first_pos = await _next_id(engine, ExecutionPosition)
    stamp = now()
    logs, positions = [], []
    for n, s in enumerate(specs):
        log_id, pos_id = first_log + n, first_pos + n
        logs.append(
            {
                "id": log_id,
                "user_id": user_id,
                "admin_id": None,
                "execution_connection_id": s.connection_id,
                "signal_id": None,
                "position_id": pos_id,
                "purpose": "entry",
                "client_order_id": f"bench-{tag}-{log_id}",
                "order_id": str(log_id),
                "symbol": s.symbol,
                "direction": s.direction,
                "order_type": "market",
                "quantity": s.quantity,
                "price": s.entry,
                "filled_quantity": s.quantity,
                "average_price": s.entry,
                "fee": Decimal(0),
                "fee_currency": "USDT",
                "status": "filled",
                "received_at": stamp,
                "submitted_at": stamp,
                "executed_at": stamp,
                "created_at": stamp,
                "updated_at": stamp,
            }
        )
        positions.append(
            {
                "id": pos_id,
                "user_id": user_id,
                "admin_id": None,
                "execution_connection_id": s.connection_id,
                "signal_id": None,
                "execution_log_id": log_id,
                "symbol": s.symbol,
                "direction": s.direction,
                "quantity": s.quantity,
                "initial_quantity": s.quantity,
                "entry_price": s.entry,
                "current_price": s.entry,
                "sl_price": s.sl,
                "tp_price": s.tp,
                "best_price": s.entry,
                "break_even_done": False,
                "status": "open",
                "pnl": Decimal(0),
                "pnl_percentage": Decimal(0),
                "realized_pnl": Decimal(0),
                "fees": Decimal(0),
                "opened_at": stamp,
                "last_price_update_at": stamp,
                "created_at": stamp,
                "updated_at": stamp,
            }
        )
    await bulk_insert(engine, ExecutionLog, logs)
    await bulk_insert(engine, ExecutionPosition, positions)
    await _hold_bought(engine, specs)
    return [p["id"] for p in positions]


async def _hold_bought(engine: AsyncEngine, specs: Sequence[PositionSpec]) -> None:
    """The paper holdings the positions' buys would have left (its spot exits sell what is held,
    and refuse what is not: insufficient_funds). No margin posted: the quote balance stays as
    inserted. Rows of other adapters' connections are never read."""
    held: dict[tuple[int, str], tuple[Decimal, Decimal]] = {}
    for s in specs:
        if s.direction == "buy":
            qty, cost = held.get((s.connection_id, s.symbol), (Decimal(0), Decimal(0)))
            held[(s.connection_id, s.symbol)] = (qty + s.quantity, cost + s.quantity * s.entry)
    if not held:
        return
    first = await _next_id(engine, PaperHolding)
    rows = [
        {
            "id": first + n,
            "connection_id": conn,
            "symbol": symbol,
            "quantity": qty,
            "average_price": cost / qty,
            "margin": Decimal(0),
        }
        for n, ((conn, symbol), (qty, cost)) in enumerate(sorted(held.items()))
    ]
    await bulk_insert(engine, PaperHolding, rows)


async def insert_user_rows(
    engine: AsyncEngine, user_id: int, *, preset: dict[str, Any] | None = None
) -> tuple[int, int]:
    """A preset and a manual data connection for `user_id`: (preset_id, data_connection_id)."""
    stamp = now()
    preset_id = await _next_id(engine, TradingPreset)
    dc_id = await _next_id(engine, DataConnection)
    values = {
        "position_size_mode": "fixed_notional",
        "position_size_value": Decimal(100),
        "default_sl_percent": Decimal(2),
        "default_tp_percent": Decimal(4),
        "leverage": Decimal(1),
        **(preset or {}),
    }
    await bulk_insert(
        engine,
        TradingPreset,
        [
            {
                "id": preset_id,
                "user_id": user_id,
                "name": "bench",
                "created_at": stamp,
                "updated_at": stamp,
                **values,
            }
        ],
    )
    await bulk_insert(
        engine,
        DataConnection,
        [
            {
                "id": dc_id,
                "user_id": user_id,
                "name": "bench prices",
                "type": "manual",
                "sandbox": False,
                "market_type": "spot",
                "is_active": True,
                "created_at": stamp,
                "updated_at": stamp,
            }
        ],
    )
    return preset_id, dc_id


def new_user_id() -> int:
    return secrets.randbelow(10**9) + 10**6
