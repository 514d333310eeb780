from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.models import ExecutionConnection, ExecutionLog, PaperBalance
from execution_service.principal import Principal


class ConnectionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, principal: Principal, connection_id: int) -> ExecutionConnection | None:
        stmt = principal.scope(select(ExecutionConnection), ExecutionConnection).where(
            ExecutionConnection.id == connection_id
        )
        return (await self.session.scalars(stmt)).first()

    async def list(
        self, principal: Principal, limit: int, offset: int
    ) -> tuple[Sequence[ExecutionConnection], int]:
        stmt = principal.scope(select(ExecutionConnection), ExecutionConnection)
        rows = await self.session.scalars(
            stmt.order_by(ExecutionConnection.id).limit(limit).offset(offset)
        )
        total = await self.session.scalar(select(func.count()).select_from(stmt.subquery()))
        return rows.all(), total or 0

    async def has_history(self, connection_id: int) -> bool:
        stmt = (
            select(ExecutionLog.id)
            .where(ExecutionLog.execution_connection_id == connection_id)
            .limit(1)
        )
        return (await self.session.scalar(stmt)) is not None

    def add_paper_balances(self, connection_id: int, balances: dict[str, object]) -> None:
        for currency, amount in balances.items():
            self.session.add(
                PaperBalance(connection_id=connection_id, currency=currency, free=amount, used=0)
            )

    # --- for workers and the CLI, which act for no principal ------------------------------

    async def by_id(self, connection_id: int) -> ExecutionConnection | None:
        return await self.session.get(ExecutionConnection, connection_id)

    async def active(self) -> Sequence[ExecutionConnection]:
        stmt = select(ExecutionConnection).where(ExecutionConnection.is_active.is_(True))
        return (await self.session.scalars(stmt)).all()

    async def count_by_status(self) -> dict[str, int]:
        stmt = select(ExecutionConnection.status, func.count()).group_by(ExecutionConnection.status)
        return {status: count for status, count in (await self.session.execute(stmt)).all()}

    async def count_with_credentials(self) -> int:
        stmt = select(func.count()).where(ExecutionConnection.credentials_encrypted.is_not(None))
        return await self.session.scalar(stmt) or 0

    async def with_credentials_after(
        self, last_id: int, limit: int
    ) -> Sequence[ExecutionConnection]:
        """The next `limit` connections holding credentials, by id after `last_id`: a keyset
        batch, so a long run never re-reads or skips rows."""
        stmt = (
            select(ExecutionConnection)
            .where(
                ExecutionConnection.id > last_id,
                ExecutionConnection.credentials_encrypted.is_not(None),
            )
            .order_by(ExecutionConnection.id)
            .limit(limit)
        )
        return (await self.session.scalars(stmt)).all()
