from __future__ import annotations

from pathlib import Path

from execution_service.connections import service as connections
from execution_service.connections.rotation import Progress, reencrypt_credentials
from execution_service.connections.schemas import ConnectionCreate
from execution_service.context import AppContext
from execution_service.crypto import owner_aad
from execution_service.enums import Role
from execution_service.principal import Principal
from execution_service.settings import Settings
from tests.conftest import fresh_database, new_key_ring

ADMIN = Principal(key_id=0, name="admin", role=Role.admin, user_id=None)


async def _connection(ctx: AppContext, user_id: int) -> int:
    body = ConnectionCreate.model_validate(
        {
            "name": f"u{user_id}",
            "adapter": "ccxt",
            "exchange": "binance",
            "user_id": user_id,
            "credentials": {"api_key": f"key-{user_id}-abcdefghijkl", "api_secret": "s3cr3t-xyz"},
        }
    )
    async with ctx.session_factory() as session:
        return (await connections.create_connection(session, ctx, ADMIN, body)).id


async def test_a_credential_that_does_not_decrypt_is_reported_and_the_rest_rotated(
    tmp_path: Path, settings: Settings
) -> None:
    # Its own database: a rotation touches every connection there is.
    url = await fresh_database(tmp_path, "rotate_keys_test")  # the name test_connections uses
    ours, foreign = new_key_ring(), new_key_ring()
    scratch = settings.model_copy(update={"database_url": url})
    ctx, other = AppContext.create(scratch, ours), AppContext.create(scratch, foreign)
    try:
        ids = [await _connection(ctx, 1), await _connection(other, 2), await _connection(ctx, 3)]
        ring = ours.with_new_primary()
        async with ctx.session_factory() as session:
            progress = [p async for p in reencrypt_credentials(session, ring, batch=2)]
        async with ctx.session_factory() as session:
            rows = [await connections.get_connection(session, ADMIN, i) for i in ids]
    finally:
        await ctx.aclose()
        await other.aclose()

    assert [(p.done, p.total) for p in progress] == [(1, 3), (2, 3)]
    assert progress[0].failures[0].startswith(f"connection {ids[1]}: ")
    assert progress[1] == Progress(2, 3, [])
    for row, user_id in ((rows[0], 1), (rows[2], 3)):
        assert row.credentials_key_id == ring.primary_id
        plain = ring.decrypt(row.credentials_encrypted or "", owner_aad(user_id, None))
        assert plain["api_key"] == f"key-{user_id}-abcdefghijkl"
    assert rows[1].credentials_key_id != ring.primary_id  # left as it was
