from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.db import dialect_insert
from execution_service.models import WorkerHeartbeat


class HeartbeatRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def ping(self) -> None:
        """Raises if the database cannot be reached."""
        await self.session.execute(text("SELECT 1"))

    async def beats(self) -> Sequence[WorkerHeartbeat]:
        return (await self.session.scalars(select(WorkerHeartbeat))).all()

    async def beat(self, name: str, instance: str, at: datetime) -> None:
        # An upsert: several worker processes beat under the same loop names.
        stmt = dialect_insert(self.session, WorkerHeartbeat).values(
            name=name, instance=instance, beat_at=at
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["name"],
                set_={"instance": stmt.excluded.instance, "beat_at": stmt.excluded.beat_at},
            )
        )
