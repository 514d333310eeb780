from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.models import ApiKey


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key_id: int) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def active_by_prefix(self, prefix: str) -> ApiKey | None:
        stmt = select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        return await self.session.scalar(stmt)

    async def list(self, limit: int, offset: int) -> tuple[Sequence[ApiKey], int]:
        rows = await self.session.scalars(
            select(ApiKey).order_by(ApiKey.id).limit(limit).offset(offset)
        )
        total = await self.session.scalar(select(func.count()).select_from(ApiKey))
        return rows.all(), total or 0

    async def count(self) -> int:
        return await self.session.scalar(select(func.count()).select_from(ApiKey)) or 0
