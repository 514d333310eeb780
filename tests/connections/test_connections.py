from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from execution_service import cli
from execution_service.context import AppContext
from execution_service.crypto import KeyRing, KeyRingError, load_key_ring, owner_aad
from execution_service.models import ExecutionConnection
from execution_service.settings import Settings
from tests.conftest import fresh_database, new_key_ring
from tests.factories import Actor

CREDS = {"api_key": "AKIAexamplePUBLIC1234", "api_secret": "s3cr3t-VALUE-never-shown-9f8e7d"}


async def test_paper_connection_lifecycle(user: Actor) -> None:
    preset = await user.preset()
    dc = await user.data_connection()
    conn = await user.paper_connection(
        activate=False,
        preset_id=preset["id"],
        data_connection_id=dc["id"],
        paper={"balance": {"USDT": "2500.5", "BTC": "0.1"}, "fee_rate": "0.001", "slippage_bps": 5},
    )
    assert conn["status"] == "inactive" and conn["is_active"] is False
    assert conn["credentials_set"] is False and conn["paper"] == {
        "fee_rate": "0.001",
        "slippage_bps": "5",
        "maintenance_margin_percent": "0.5",  # the default: it matters on swap accounts only
    }
    tested = await user.ok("POST", f"/api/v1/connections/{conn['id']}/test")
    assert tested["ok"] is True and tested["error"] is None and tested["latency_ms"] >= 0
    active = await user.ok("POST", f"/api/v1/connections/{conn['id']}/activate")
    assert active["status"] == "active" and active["is_active"] is True and active["last_tested_at"]
    balance = await user.ok("GET", f"/api/v1/connections/{conn['id']}/balance")
    assert balance == {
        "USDT": {"free": "2500.5", "used": "0", "total": "2500.5"},
        "BTC": {"free": "0.1", "used": "0", "total": "0.1"},
    }
    inactive = await user.ok("POST", f"/api/v1/connections/{conn['id']}/deactivate")
    assert inactive["status"] == "inactive" and inactive["is_active"] is False
    await user.ok("DELETE", f"/api/v1/connections/{conn['id']}", 204)


async def test_default_paper_balance(user: Actor) -> None:
    conn = await user.paper_connection()
    balance = await user.ok("GET", f"/api/v1/connections/{conn['id']}/balance")
    assert balance == {"USDT": {"free": "10000", "used": "0", "total": "10000"}}


async def test_credentials_are_write_only_and_decrypt_exactly(user: Actor, ctx: AppContext) -> None:
    conn = await user.ok(
        "POST",
        "/api/v1/connections",
        201,
        json={"name": "binance", "adapter": "ccxt", "exchange": "binance", "credentials": CREDS},
    )
    assert conn["credentials_set"] is True and conn["api_key_hint"] == "1234"
    assert "credentials" not in conn
    async with ctx.session_factory() as session:
        row = await session.get(ExecutionConnection, conn["id"])
    assert row is not None and row.credentials_encrypted
    assert CREDS["api_secret"] not in row.credentials_encrypted
    assert (
        ctx.keyring.decrypt(row.credentials_encrypted, owner_aad(row.user_id, row.admin_id))
        == CREDS
    )
    # Bound to its owner: the same ciphertext does not open for another owner.
    with pytest.raises(Exception, match="do not decrypt"):
        ctx.keyring.decrypt(row.credentials_encrypted, owner_aad(row.user_id + 1, None))  # type: ignore[operator]


async def test_a_ciphertext_that_fails_to_decrypt_puts_the_connection_in_error(
    user: Actor, ctx: AppContext
) -> None:
    conn = await user.ok(
        "POST",
        "/api/v1/connections",
        201,
        json={"name": "binance", "adapter": "ccxt", "exchange": "binance", "credentials": CREDS},
    )
    other = new_key_ring().encrypt(CREDS, owner_aad(user.user_id, None))
    async with ctx.session_factory() as session:  # simulate a row written under a lost key
        await session.execute(
            update(ExecutionConnection)
            .where(ExecutionConnection.id == conn["id"])
            .values(credentials_encrypted=other.token.replace("t1", "gone", 1))
        )
        await session.commit()
    result = await user.ok("POST", f"/api/v1/connections/{conn['id']}/test")
    assert result["ok"] is False and "credentials" in result["error"]
    refused = await user.post(f"/api/v1/connections/{conn['id']}/activate")
    assert refused.status_code == 409 and refused.json()["code"] == "check_failed"
    after = await user.ok("GET", f"/api/v1/connections/{conn['id']}")
    assert after["status"] == "error" and after["is_active"] is False
    assert after["consecutive_failures"] == 2 and "gone" in after["last_error"]


async def test_connection_validation(user: Actor) -> None:
    bad = [
        {"adapter": "kraken"},
        {"adapter": "ccxt", "exchange": "binance"},
        {"adapter": "ccxt", "exchange": "binance", "credentials": {"api_key": "x"}},
        {"adapter": "ccxt", "exchange": "no_such_exchange", "credentials": CREDS},
        {"adapter": "paper", "credentials": CREDS},
        {"adapter": "paper", "paper": {"fee_rate": "-0.1"}},
        {"adapter": "paper", "preset_id": 999999},
        {"adapter": "paper", "market_type": "futures"},
        {"adapter": "ccxt", "exchange": "binance", "credentials": CREDS, "api_base_url": "ftp://x"},
    ]
    for fields in bad:
        response = await user.post("/api/v1/connections", json={"name": "c", **fields})
        assert response.status_code == 422, (fields, response.text)
        assert CREDS["api_secret"] not in response.text
    assert (await user.ok("GET", "/api/v1/connections"))["total"] == 0


async def test_links_must_belong_to_the_same_owner(user: Actor, other_user: Actor) -> None:
    theirs = await other_user.preset()
    response = await user.post(
        "/api/v1/connections", json={"name": "c", "adapter": "paper", "preset_id": theirs["id"]}
    )
    assert response.status_code == 422 and response.json()["code"] == "unknown_preset"


async def test_new_credentials_require_a_new_check(user: Actor, ctx: AppContext) -> None:
    conn = await user.ok(
        "POST",
        "/api/v1/connections",
        201,
        json={"name": "b", "adapter": "ccxt", "exchange": "binance", "credentials": CREDS},
    )
    new = {"api_key": "ZZZZexamplePUBLIC9999", "api_secret": "another-secret-value-abc"}
    patched = await user.ok("PATCH", f"/api/v1/connections/{conn['id']}", json={"credentials": new})
    assert patched["api_key_hint"] == "9999" and patched["status"] == "inactive"
    async with ctx.session_factory() as session:
        row = await session.get(ExecutionConnection, conn["id"])
    assert (
        row
        and ctx.keyring.decrypt(row.credentials_encrypted or "", owner_aad(row.user_id, None))
        == new
    )
    bad = await user.patch(
        f"/api/v1/connections/{conn['id']}", json={"credentials": {"api_key": "x"}}
    )
    assert bad.status_code == 422


async def test_rotate_keys_reencrypts_every_connection(tmp_path: Path, settings: Settings) -> None:
    url = await fresh_database(tmp_path, "rotate_keys_test")
    key_file = tmp_path / "keys"
    rotate_settings = Settings(
        env="development", database_url=url, encryption_key_file=str(key_file)
    )
    old_ring = load_key_ring(rotate_settings)  # development: generates the file, 0600
    assert key_file.stat().st_mode & 0o777 == 0o600
    ctx = AppContext.create(rotate_settings, old_ring)
    async with ctx.session_factory() as session:
        for i in range(5):
            creds = {"api_key": f"key-{i}-abcdefghijkl", "api_secret": f"secret-{i}"}
            token = old_ring.encrypt(creds, owner_aad(i, None))
            session.add(
                ExecutionConnection(
                    name=f"c{i}",
                    type="crypto",
                    adapter="ccxt",
                    exchange="binance",
                    user_id=i,
                    credentials_encrypted=token.token,
                    credentials_key_id=token.key_id,
                )
            )
        await session.commit()
    await ctx.aclose()

    assert await cli._rotate_keys(rotate_settings, new_key=True, batch=2) == 0

    new_ring = KeyRing.parse(key_file.read_text().strip())
    assert new_ring.primary_id != old_ring.primary_id and old_ring.primary_id in new_ring.key_ids
    only_new = KeyRing.parse(new_ring.format().split(",")[0])
    ctx = AppContext.create(rotate_settings, only_new)
    async with ctx.session_factory() as session:
        rows = (
            await session.scalars(select(ExecutionConnection).order_by(ExecutionConnection.id))
        ).all()
    await ctx.aclose()
    assert len(rows) == 5
    # A process started before the rotation reads the key file again when it meets the new key id.
    running = AppContext.create(rotate_settings, old_ring)
    adapter = await running.adapters.for_connection(rows[0])
    assert adapter is not None
    await running.aclose()
    for i, row in enumerate(rows):
        assert row.credentials_key_id == new_ring.primary_id
        assert only_new.decrypt(row.credentials_encrypted or "", owner_aad(i, None)) == {
            "api_key": f"key-{i}-abcdefghijkl",
            "api_secret": f"secret-{i}",
        }


def test_production_refuses_to_start_without_keys(tmp_path: Path) -> None:
    settings = Settings(env="production", encryption_key_file=str(tmp_path / "absent"))
    with pytest.raises(KeyRingError, match="production"):
        load_key_ring(settings)


def test_key_ring_parsing_is_strict() -> None:
    for spec in ("", "nokey", "k1:!!notbase64", "k1:" + "QUJD"):
        with pytest.raises(KeyRingError):
            KeyRing.parse(spec)
    ring = new_key_ring()
    assert "t1" in repr(ring) and ring.format().split(":")[1] not in repr(ring)
    assert KeyRing.parse(ring.format()).primary_id == "t1"
