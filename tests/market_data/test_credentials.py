"""An mtapi data connection's login is stored as an execution connection's credentials are:
encrypted under the key ring, bound to the owner, re-encrypted by `rotate-keys`."""

from __future__ import annotations

from pathlib import Path

import pytest

from execution_service.context import AppContext
from execution_service.crypto import CredentialsError, owner_aad
from execution_service.enums import Role
from execution_service.market_data import service
from execution_service.market_data.schemas import DataConnectionCreate
from execution_service.models import DataConnection
from execution_service.principal import Principal
from execution_service.settings import Settings
from tests.conftest import fresh_database, new_key_ring

ADMIN = Principal(key_id=0, name="admin", role=Role.admin, user_id=None)
LOGIN = {"user": "700123456789", "password": "quotes-Passw0rd!", "host": "mt5.quotes.test"}


async def test_the_login_is_encrypted_bound_to_its_owner_and_rotated(
    tmp_path: Path, settings: Settings
) -> None:
    url = await fresh_database(tmp_path, "data_credentials_test")
    ring = new_key_ring()
    ctx = AppContext.create(settings.model_copy(update={"database_url": url}), ring)
    try:
        body = DataConnectionCreate.model_validate(
            {
                "name": "fx quotes",
                "type": "mtapi",
                "api_base_url": "http://127.0.0.1:9/",
                "credentials": LOGIN,
                "user_id": 5,
            }
        )
        async with ctx.session_factory() as session:
            row = await service.create_data_connection(session, ctx, ADMIN, body)
            read = service.read(row, ctx.settings)
        token = row.credentials_encrypted or ""
        assert read.credentials_set and read.api_key_hint == "6789"
        assert "quotes-Passw0rd!" not in token and token.startswith(f"v1:{ring.primary_id}:")
        assert ring.decrypt(token, owner_aad(5, None)) == LOGIN
        with pytest.raises(CredentialsError):  # copied onto another owner's row: refused
            ring.decrypt(token, owner_aad(6, None))

        rotated = ring.with_new_primary()
        async with ctx.session_factory() as session:
            done, failures = await service.reencrypt_credentials(session, rotated, batch=10)
        assert (done, failures) == (1, [])
        async with ctx.session_factory() as session:
            again = await session.get(DataConnection, row.id)
        assert again is not None and again.credentials_key_id == rotated.primary_id
        assert rotated.decrypt(again.credentials_encrypted or "", owner_aad(5, None)) == LOGIN
    finally:
        await ctx.aclose()
