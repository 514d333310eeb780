"""The real console script, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import fresh_database


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "execution_service.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_without_keys_refuses_to_start(tmp_path: Path) -> None:
    env = {
        "EXEC_ENV": "production",
        "EXEC_ENCRYPTION_KEY_FILE": str(tmp_path / "none"),
        "EXEC_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db",
    }
    result = run_cli("serve", "--port", "1", env=env)
    assert result.returncode == 2
    assert "production needs an encryption key ring" in result.stderr
    assert not (tmp_path / "x.db").exists()


async def test_api_keys_commands(tmp_path: Path) -> None:
    url = await fresh_database(tmp_path, "cli_test")
    env = {"EXEC_DATABASE_URL": url, "EXEC_ENCRYPTION_KEY_FILE": str(tmp_path / "keys")}
    created = run_cli("api-keys", "create", "--name", "ops", "--role", "service", env=env)
    assert created.returncode == 0, created.stderr
    assert "key (shown once): exs_" in created.stdout
    listed = run_cli("api-keys", "list", env=env)
    assert "\tservice\t-\t" in listed.stdout and "active\tops" in listed.stdout
    key_id = created.stdout.split("id=")[1].split()[0]
    revoked = run_cli("api-keys", "revoke", key_id, env=env)
    assert revoked.returncode == 0 and "revoked key" in revoked.stdout
    assert "revoked\tops" in run_cli("api-keys", "list", env=env).stdout
    bad = run_cli("api-keys", "create", "--name", "u", "--role", "user", env=env)
    assert bad.returncode == 2
