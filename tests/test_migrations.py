from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from execution_service import migrate
from execution_service.models import Base
from tests.conftest import fresh_database


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names - {"alembic_version"}


async def test_upgrade_from_empty_and_downgrade_back_to_empty(tmp_path: Path) -> None:
    url = await fresh_database(tmp_path, "migrations_test")
    assert await _tables(url) == set(Base.metadata.tables)
    for required in (
        "trading_presets",
        "data_connections",
        "market_data",
        "execution_connections",
        "signals",
        "execution_logs",
        "execution_positions",
        "execution_analytics",
        "api_keys",
        "paper_balances",
        "worker_heartbeats",
    ):
        assert required in Base.metadata.tables
    await asyncio.to_thread(migrate.downgrade, url, "base")
    assert await _tables(url) == set()
    await asyncio.to_thread(migrate.upgrade, url)
    assert await _tables(url) == set(Base.metadata.tables)


async def test_the_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    """A model change without its migration (or the reverse) shows up here."""
    url = await fresh_database(tmp_path, "migrations_drift_test")
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    await engine.dispose()
    assert diff == []
