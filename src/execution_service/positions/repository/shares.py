"""The monitor's shares and the workers splitting them (`positions.shares`). PostgreSQL only:
SQLite serves one process, which judges every share. The caller commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.db import dialect_insert
from execution_service.models import MonitorShare, MonitorWorker


class ShareRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def ensure(self, shares: int) -> None:
        """Rows for shares 0..shares-1 (unowned where new)."""
        stmt = dialect_insert(self.session, MonitorShare).values(
            [{"share": n} for n in range(shares)]
        )
        await self.session.execute(stmt.on_conflict_do_nothing(index_elements=["share"]))

    async def announce(self, instance: str, alive_until: datetime) -> None:
        stmt = dialect_insert(self.session, MonitorWorker).values(
            instance=instance, alive_until=alive_until
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["instance"], set_={"alive_until": stmt.excluded.alive_until}
            )
        )

    async def living(self, now: datetime) -> int:
        """How many workers are alive; the long dead are forgotten on the way."""
        await self.session.execute(
            delete(MonitorWorker).where(MonitorWorker.alive_until < now - timedelta(hours=1))
        )
        stmt = select(func.count()).where(MonitorWorker.alive_until > now)
        return int((await self.session.execute(stmt)).scalar_one())

    async def renew(self, instance: str, now: datetime, until: datetime) -> list[int]:
        """Extend the leases this worker still holds; returns their shares."""
        stmt = (
            update(MonitorShare)
            .where(MonitorShare.owner == instance, MonitorShare.lease_until > now)
            .values(lease_until=until)
            .returning(MonitorShare.share)
        )
        return sorted((await self.session.scalars(stmt)).all())

    async def claim(self, instance: str, now: datetime, until: datetime, most: int) -> list[int]:
        """Up to `most` shares nobody holds (never held, given back, or whose lease lapsed)."""
        if most <= 0:
            return []
        free = (
            select(MonitorShare.share)
            .where(or_(MonitorShare.owner.is_(None), MonitorShare.lease_until <= now))
            .order_by(MonitorShare.share)
            .limit(most)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        stmt = (
            update(MonitorShare)
            .where(MonitorShare.share.in_(free))
            .values(owner=instance, lease_until=until)
            .returning(MonitorShare.share)
        )
        return sorted((await self.session.scalars(stmt)).all())

    async def release(self, instance: str, shares: Sequence[int] | None = None) -> None:
        """Give shares back (`None`: all of this worker's), and leave if all."""
        stmt = update(MonitorShare).where(MonitorShare.owner == instance)
        if shares is not None:
            stmt = stmt.where(MonitorShare.share.in_(shares))
        await self.session.execute(stmt.values(owner=None, lease_until=None))
        if shares is None:
            await self.session.execute(
                delete(MonitorWorker).where(MonitorWorker.instance == instance)
            )

    async def owners(self, now: datetime) -> dict[str, int]:
        """{worker: how many shares it holds by a running lease}; "" counts those nobody holds."""
        out: dict[str, int] = {}
        for owner, until in await self.session.execute(
            select(MonitorShare.owner, MonitorShare.lease_until)
        ):
            key = owner if owner is not None and until is not None and until > now else ""
            out[key] = out.get(key, 0) + 1
        return out
