"""Kept balances (issue #21): every balance a ccxt account's venue reports is written to the
database, a second or so later and many accounts in one statement; a signal's fan-out reads them
back in bulk and gives each account's adapter its copy. Sizing then uses that copy when the
venue's request budget has no room for a fresh read (`Expiring.get_or_kept`): a signal to 1,000
Binance accounts on one IP cannot read 1,000 balances at weight 20 each within a minute's 6,000,
and orders must not queue behind them.

A copy is used only if no order of ours on the account was created, sent or executed after its
read left, none is still `pending` (its outcome unknown), and it is at most
`EXEC_BALANCE_KEPT_SECONDS` old. Any balance read refreshes it: sizing's own, the
connection test, and the worker's health checks (the lowest priority of the budget)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execution_service.decimals import to_str
from execution_service.exchanges.base import BalanceEntry
from execution_service.exchanges.kept.repository import Encoded, KeptBalanceRepository

log = logging.getLogger(__name__)

FLUSH_AFTER_SECONDS = 1.0  # not money


def encode(balances: dict[str, BalanceEntry]) -> Encoded:
    return {c: [to_str(e.free), to_str(e.used), to_str(e.total)] for c, e in balances.items()}


def decode(encoded: Encoded) -> dict[str, BalanceEntry]:
    return {
        c: BalanceEntry(Decimal(free), Decimal(used), Decimal(total))
        for c, (free, used, total) in encoded.items()
    }


class KeptBalances:
    """This process's writer of kept balances: reads noted as they come, written together."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._due: dict[int, tuple[Encoded, datetime]] = {}
        self._flusher: asyncio.Task[None] | None = None

    def note(self, connection_id: int, balances: dict[str, BalanceEntry], age: float) -> None:
        """A balance the venue reported, to a read that left `age` seconds ago (an adapter's
        hook: no I/O here). Stamped with when the read left: an order of ours that executed
        while it was in flight is later than the copy, which it may not include."""
        read_at = datetime.now(UTC) - timedelta(seconds=age)
        self._due[connection_id] = (encode(balances), read_at)
        if self._flusher is None or self._flusher.done():
            with contextlib.suppress(RuntimeError):  # no running loop: written at close
                self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        # Reads noted while a write runs are written by the next round, not left waiting for
        # another read to come.
        while self._due:
            await asyncio.sleep(FLUSH_AFTER_SECONDS)
            await self.flush()

    async def flush(self) -> None:
        due, self._due = self._due, {}
        if not due:
            return
        try:
            async with self._sessions() as session:
                await KeptBalanceRepository(session).save(due)
                await session.commit()
        except Exception:  # a cache: a lost write costs one fresh read later, nothing more
            log.warning("kept_balances_not_written", exc_info=True)

    async def unspent(
        self, session: AsyncSession, connection_ids: list[int]
    ) -> dict[int, tuple[dict[str, BalanceEntry], float]]:
        """The usable kept copies of these connections: balances and age in seconds; none when
        they cannot be read (a cache: sizing then reads fresh, the signal does not fail)."""
        try:
            rows = await KeptBalanceRepository(session).unspent(connection_ids)
        except Exception:
            log.warning("kept_balances_not_read", exc_info=True)
            return {}
        now = datetime.now(UTC)
        return {c: (decode(b), (now - at).total_seconds()) for c, (b, at) in rows.items()}

    async def close(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
