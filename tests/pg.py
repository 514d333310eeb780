"""The suite's own PostgreSQL databases (issue #14).

`EXEC_TEST_DATABASE=postgresql+asyncpg://…/test` names a server and a name prefix, not a database
to use: the run creates `test_run<pid>_<random>` (and scratch databases named after it) and drops
them at the end, on failure too (a session finaliser, and `atexit` behind it). A database the
run did not create is never touched. The suite holds at most CONNECTIONS connections at once
(its own pools, and the service processes some tests start, are sized for it); when the server
has fewer free it stops at once and says so.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import secrets

import asyncpg

# Test engine: pool 4 + overflow 4 + read pool 1 (+4); a service process a test starts: ≤ 7.
CONNECTIONS = 20
SERVICE_POOLS = {
    "EXEC_DB_POOL_SIZE": "1",
    "EXEC_DB_MAX_OVERFLOW": "1",
    "EXEC_DB_READ_POOL_SIZE": "1",
}
RUN = f"run{os.getpid()}_{secrets.token_hex(3)}"
created: list[str] = []


def target() -> str:
    return os.environ.get("EXEC_TEST_DATABASE", "sqlite")


def server_and_prefix() -> tuple[str, str]:
    base, _, prefix = target().rpartition("/")
    return base, prefix.split("?", 1)[0] or "test"


def name_for(label: str) -> str:
    """A database name of this run: `<prefix>_<label>_<run>`, within PostgreSQL's 63 bytes."""
    _, prefix = server_and_prefix()
    return f"{prefix}_{label}_{RUN}"[-63:].lstrip("_") if label else f"{prefix}_{RUN}"[:63]


def _dsn(database: str = "postgres") -> str:
    base, _ = server_and_prefix()
    return f"{base.replace('postgresql+asyncpg', 'postgresql')}/{database}"


async def free_connections() -> int:
    """Connections the server can still accept (0 when it cannot even accept this one)."""
    try:
        conn = await asyncpg.connect(_dsn())
    except asyncpg.TooManyConnectionsError:
        return 0
    try:
        return int(
            await conn.fetchval(
                "SELECT current_setting('max_connections')::int"
                " - current_setting('superuser_reserved_connections')::int"
                " - (SELECT count(*) FROM pg_stat_activity)"
            )
        )
    finally:
        await conn.close()


async def create(name: str) -> str:
    """A new empty database of this run (dropped first if a crashed run of this pid left it)."""
    conn = await asyncpg.connect(_dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    if name not in created:
        created.append(name)
    base, _ = server_and_prefix()
    return f"{base}/{name}"


async def drop(name: str) -> None:
    conn = await asyncpg.connect(_dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
    if name in created:
        created.remove(name)


async def drop_all() -> None:
    for name in list(created):
        await drop(name)


def _drop_left_overs() -> None:
    """After the session: whatever the finaliser could not drop (an interrupted run)."""
    if created:
        asyncio.run(drop_all())


atexit.register(_drop_left_overs)
