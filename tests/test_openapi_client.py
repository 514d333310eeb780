"""A client generated from the live `/openapi.json` (openapi-python-client) drives the API.

This keeps the schema fit for client generation: stable operation ids become the module names
used below, request bodies become models, and error answers parse as the documented problem
details. Generation is local (no network); the generated package is imported from a temp dir."""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.conftest import BOOTSTRAP_KEY

PACKAGE = "generated_execution_client"


def _generator() -> str:
    beside = Path(sys.executable).parent / "openapi-python-client"
    found = str(beside) if beside.exists() else shutil.which("openapi-python-client")
    assert found, "openapi-python-client is not installed: pip install -e '.[dev]'"
    return found


@pytest.fixture
async def generated(client: httpx.AsyncClient, tmp_path: Path) -> AsyncIterator[ModuleType]:
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps((await client.get("/openapi.json")).json()))
    config = tmp_path / "config.yml"
    config.write_text("post_hooks: []\n")  # no formatter run: faster, and nothing to install
    command = [_generator(), "generate", "--path", str(spec), "--meta", "none"]
    command += ["--output-path", str(tmp_path / PACKAGE), "--config", str(config)]
    # In a thread: the server under test answers in this event loop.
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout, done.stdout  # every operation and schema understood
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


async def test_a_generated_client_drives_the_api(generated: ModuleType, base_url: str) -> None:
    me_api = _module("api.api_keys.api_keys_me")
    create_api = _module("api.presets.presets_create_preset")
    get_api = _module("api.presets.presets_get_preset")
    list_api = _module("api.presets.presets_list_presets")
    models = _module("models")

    async with generated.AuthenticatedClient(base_url=base_url, token=BOOTSTRAP_KEY) as api:
        me = await me_api.asyncio(client=api)
        assert isinstance(me, models.MeRead) and me.role == models.Role.ADMIN

        body = models.PresetCreate(
            name="generated client",
            position_size_mode=models.SizeMode.FIXED_QUANTITY,
            position_size_value="0.5",
            user_id=424242,
        )
        created = await create_api.asyncio_detailed(client=api, body=body)
        assert created.status_code == 201
        preset = created.parsed
        assert isinstance(preset, models.PresetRead) and preset.position_size_value == "0.5"

        page = await list_api.asyncio(client=api, limit=5)
        assert isinstance(page, models.PagePresetRead) and page.total >= 1
        assert all(isinstance(p, models.PresetRead) for p in page.items)
        fetched = await get_api.asyncio(client=api, preset_id=preset.id)
        assert isinstance(fetched, models.PresetRead) and fetched.name == "generated client"

        # Errors come back as the documented problem details, parsed into their models.
        missing = await get_api.asyncio(client=api, preset_id=2**31 - 1)
        assert isinstance(missing, models.Problem) and missing.code == "not_found"
        bad = models.PresetCreate(
            name="x", position_size_mode=models.SizeMode.FIXED_QUANTITY, position_size_value="-1"
        )
        refused = await create_api.asyncio(client=api, body=bad)
        assert isinstance(refused, models.ValidationProblem) and refused.status == 422
        assert refused.errors and refused.errors[0].loc[-1] == "position_size_value"

    async with generated.Client(base_url=base_url) as anonymous:
        denied = await me_api.asyncio(client=anonymous)
        assert isinstance(denied, models.Problem) and denied.status == 401
