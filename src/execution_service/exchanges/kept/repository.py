"""The kept balances' rows: written as venues answer balance reads, read in bulk for a fan-out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.db import dialect_insert
from execution_service.enums import OrderStatus
from execution_service.models import ExecutionConnection, ExecutionLog, KeptBalance

Encoded = dict[str, list[str]]  # {currency: [free, used, total]}


class KeptBalanceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save(self, reads: Mapping[int, tuple[Encoded, datetime]]) -> None:
        """Each connection's newest read replaces an older one (never a newer one: another
        process may have written a later read meanwhile). Connections deleted since are left
        out."""
        if not reads:
            return
        alive = set(
            await self.session.scalars(
                select(ExecutionConnection.id).where(ExecutionConnection.id.in_(list(reads)))
            )
        )
        rows = [
            {"connection_id": c, "balances": b, "read_at": at}
            for c, (b, at) in sorted(reads.items())
            if c in alive
        ]
        if not rows:
            return
        stmt = dialect_insert(self.session, KeptBalance)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["connection_id"],
                set_={"balances": stmt.excluded.balances, "read_at": stmt.excluded.read_at},
                where=KeptBalance.read_at < stmt.excluded.read_at,
            ),
            rows,
        )

    async def unspent(self, connection_ids: Sequence[int]) -> dict[int, tuple[Encoded, datetime]]:
        """The kept balances of these connections that no order of ours may have changed: none
        created, sent or executed since the read left (`read_at`), and none whose outcome is
        still unknown (`pending`)."""
        if not connection_ids:
            return {}
        read_at = KeptBalance.read_at
        spent = exists().where(
            and_(
                ExecutionLog.execution_connection_id == KeptBalance.connection_id,
                or_(
                    ExecutionLog.created_at >= read_at,
                    ExecutionLog.submitted_at >= read_at,
                    ExecutionLog.executed_at >= read_at,
                    ExecutionLog.status == OrderStatus.pending,
                ),
            )
        )
        rows = await self.session.execute(
            select(KeptBalance.connection_id, KeptBalance.balances, read_at).where(
                KeptBalance.connection_id.in_(list(connection_ids)), ~spent
            )
        )
        return {c: (b, at) for c, b, at in rows}
