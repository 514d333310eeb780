"""Creating, listing and revoking API keys; the bootstrap admin key of an empty database."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.api_keys import revocations
from execution_service.api_keys.keys import forget, generate_key, key_from_string
from execution_service.api_keys.repository import ApiKeyRepository
from execution_service.db import utcnow
from execution_service.enums import Role
from execution_service.errors import NotFound
from execution_service.models import ApiKey


async def create_key(
    session: AsyncSession, *, name: str, role: Role, user_id: int | None, key: str | None = None
) -> tuple[ApiKey, str]:
    """Returns the row and the plaintext key, which is not kept anywhere."""
    new = key_from_string(key) if key else generate_key()
    row = ApiKey(
        name=name, role=role.value, user_id=user_id, prefix=new.prefix, key_hash=new.key_hash
    )
    session.add(row)
    await session.commit()
    return row, new.key


async def list_keys(session: AsyncSession, limit: int, offset: int) -> tuple[Sequence[ApiKey], int]:
    return await ApiKeyRepository(session).list(limit, offset)


async def revoke_key(session: AsyncSession, key_id: int) -> ApiKey:
    row = await ApiKeyRepository(session).get(key_id)
    if row is None:
        raise NotFound(f"API key {key_id} not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await revocations.announce(session, row.id)  # the other processes hear it at commit
        await session.commit()
    forget(row.id)
    return row


async def ensure_bootstrap_key(session: AsyncSession, configured: str | None) -> str | None:
    """On an empty key table, create the first admin key. Returns it if it was generated here
    (so the caller prints it once); a configured key is not echoed back."""
    if await ApiKeyRepository(session).count() > 0:
        return None
    _, key = await create_key(
        session, name="bootstrap admin", role=Role.admin, user_id=None, key=configured
    )
    return None if configured else key
