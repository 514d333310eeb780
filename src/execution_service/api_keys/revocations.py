"""Revocations heard across processes: PostgreSQL `NOTIFY exec_key_revoked, '<key id>'`.

The revoking transaction notifies (delivered at its commit); every API process listens on one
dedicated connection and forgets the key at once, which also ends its open event streams at
their next poll. Redis pub/sub would do the same job, but every deployment that has more than
one process already shares PostgreSQL (SQLite is one process), so no second system is needed
(docs/decisions.md). While the listener is down the key cache keeps keys at most a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from execution_service.api_keys import keys

CHANNEL = "exec_key_revoked"
log = logging.getLogger(__name__)


async def announce(session: AsyncSession, key_id: int) -> None:
    """Tell every process, at this transaction's commit (PostgreSQL; SQLite has one process)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": str(key_id)})


class RevocationListener:
    """One LISTEN connection per process, reconnected when it drops."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._task: asyncio.Task[None] | None = None
        self.heard = asyncio.Event()  # set on every notification (tests wait on it)

    def start(self) -> None:
        if self._engine.dialect.name == "postgresql":
            self._task = asyncio.create_task(self._run(), name="key-revocations")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        keys.listening(False)

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            keys.forget(int(payload))
        self.heard.set()

    async def _run(self) -> None:
        while True:
            try:
                async with self._engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver: Any = raw.driver_connection
                    lost = asyncio.Event()
                    driver.add_termination_listener(lambda _c, lost=lost: lost.set())
                    await driver.add_listener(CHANNEL, self._heard)
                    keys.listening(True)
                    try:
                        await lost.wait()
                    finally:
                        keys.listening(False)
                        with contextlib.suppress(Exception):
                            await driver.remove_listener(CHANNEL, self._heard)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: keys live a second meanwhile
                log.warning("key revocation listener lost its connection: %s", type(exc).__name__)
            await asyncio.sleep(1)
