"""docker-compose.yml and the Dockerfile (Docker itself cannot run here): they parse, name only
settings that exist, and wire the roles as the README describes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from execution_service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_postgres_a_one_shot_migration_an_api_and_a_worker() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "migrate", "api", "worker"}
    migrate, api, worker = services["migrate"], services["api"], services["worker"]
    assert migrate["command"] == ["execution-service", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert worker["command"] == ["execution-service", "worker"]
    assert worker["healthcheck"] == {"disable": True}
    assert api["command"][:2] == ["execution-service", "serve"]
    for role in (api, worker):
        assert role["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    # One image for every role.
    assert {s["image"] for s in (migrate, api, worker)} == {"execution-service:local"}
    assert "test" in services["postgres"]["healthcheck"]

    for role in (migrate, api, worker):
        env = role["environment"]
        assert env["EXEC_ENV"] == "production"
        assert env["EXEC_MIGRATE_ON_START"] == "false"
        assert env["EXEC_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in env["EXEC_DATABASE_URL"]
        assert env["EXEC_ENCRYPTION_KEYS"].startswith("${EXEC_ENCRYPTION_KEYS:?")
    assert api["environment"]["EXEC_WORKERS_ENABLED"] == "false"
    assert "EXEC_WORKERS_ENABLED" not in worker["environment"]


def test_compose_names_only_real_settings() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    fields = {f"EXEC_{name.upper()}" for name in Settings.model_fields}
    named = set(re.findall(r"\bEXEC_[A-Z_]+\b", text))
    assert named and named <= fields, named - fields


def test_the_image_checks_health_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER app" in dockerfile
    assert re.search(r"HEALTHCHECK .*\n.*/health", dockerfile)
    assert "COPY alembic.ini" in dockerfile and "COPY migrations/" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".execution-keys*" in ignored and "*.db" in ignored and ".env" in ignored
    readme = (ROOT / "README.md").read_text()
    assert "docker compose up" in readme
