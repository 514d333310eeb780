from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from execution_service import migrate
from execution_service.models import Base, ExecutionConnection, ExecutionLog, ExecutionPosition
from tests.conftest import fresh_database

DAY = timedelta(days=1)


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


async def test_logs_booked_before_realized_pnl_get_their_positions_figure(tmp_path: Path) -> None:
    """The analytics revision gives each position booked before logs carried `realized_pnl` its
    figure on one log, as the old analytics counted it: a closed position's on its last exit,
    an open one's on its entry. Positions booked since are left alone."""
    url = await fresh_database(tmp_path, "migrations_backfill_test")
    engine = create_async_engine(url)
    t = datetime(2026, 12, 1, 9, tzinfo=UTC)
    ids = itertools.count(1)

    def log(conn: int, purpose: str, at: datetime, pnl: str | None = None) -> ExecutionLog:
        n = next(ids)
        return ExecutionLog(
            id=n,
            execution_connection_id=conn,
            purpose=purpose,
            client_order_id=f"legacy-{n}",
            symbol="BTC/USDT",
            direction="buy" if purpose == "entry" else "sell",
            order_type="market",
            quantity=Decimal(1),
            status="filled",
            executed_at=at,
            realized_pnl=None if pnl is None else Decimal(pnl),
        )

    def position(entry: ExecutionLog, status: str, realized: str) -> ExecutionPosition:
        return ExecutionPosition(
            execution_connection_id=entry.execution_connection_id,
            execution_log_id=entry.id,
            symbol="BTC/USDT",
            direction="buy",
            quantity=Decimal(0 if status == "closed" else 1),
            initial_quantity=Decimal(2),
            entry_price=Decimal(100),
            status=status,
            realized_pnl=Decimal(realized),
        )

    async with AsyncSession(engine, expire_on_commit=False) as session:
        conn = ExecutionConnection(name="legacy", type="crypto", adapter="paper")
        session.add(conn)
        await session.flush()
        closed = [log(conn.id, "entry", t), log(conn.id, "exit", t + DAY)]
        closed.append(log(conn.id, "exit", t + 2 * DAY))
        held = [log(conn.id, "entry", t), log(conn.id, "exit", t + DAY)]
        booked = [log(conn.id, "entry", t, "-0.1"), log(conn.id, "exit", t + DAY)]
        session.add_all([*closed, *held, *booked])
        await session.flush()
        figures = [(closed, "closed", "29.57"), (held, "open", "9.69")]
        figures.append((booked, "closed", "-10.19"))
        for logs, status, realized in figures:
            p = position(logs[0], status, realized)
            session.add(p)
            await session.flush()
            for entry in logs:
                entry.position_id = p.id
        await session.commit()
    await asyncio.to_thread(migrate.downgrade, url, "a1c4e7f2b9d0")
    await asyncio.to_thread(migrate.upgrade, url)
    async with AsyncSession(engine) as session:
        got = dict(
            (await session.execute(select(ExecutionLog.id, ExecutionLog.realized_pnl))).all()
        )
    await engine.dispose()
    assert [got[e.id] for e in closed] == [None, None, Decimal("29.57")]  # on the last exit
    assert [got[e.id] for e in held] == [Decimal("9.69"), None]  # on the entry while open
    assert [got[e.id] for e in booked] == [Decimal("-0.1"), None]  # booked since: as it was
