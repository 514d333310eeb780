"""`rotate-keys` for connections: every stored credential re-encrypted under the key ring's
primary key, a batch per transaction, so an interrupted run keeps what it did and resumes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.connections.repository import ConnectionRepository
from execution_service.crypto import CredentialsError, KeyRing, owner_aad


@dataclass(frozen=True)
class Progress:
    """After each committed batch: re-encrypted so far, of how many (counted at the start), and
    the connections of this batch that failed."""

    done: int
    total: int
    failures: list[str]


async def reencrypt_credentials(
    session: AsyncSession, ring: KeyRing, batch: int
) -> AsyncIterator[Progress]:
    repo = ConnectionRepository(session)
    total = await repo.count_with_credentials()
    done = last_id = 0
    while True:
        rows = await repo.with_credentials_after(last_id, batch)
        if not rows:
            return
        failures = []
        for conn in rows:
            last_id = conn.id
            aad = owner_aad(conn.user_id, conn.admin_id)
            try:
                plain = ring.decrypt(conn.credentials_encrypted or "", aad)
            except CredentialsError as exc:
                failures.append(f"connection {conn.id}: {exc}")
                continue
            token = ring.encrypt(plain, aad)
            conn.credentials_encrypted, conn.credentials_key_id = token.token, token.key_id
            done += 1
        await session.commit()
        yield Progress(done, total, failures)
