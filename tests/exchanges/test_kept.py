"""The kept balances' rows: the newest read wins whichever process writes last; a connection
deleted meanwhile is skipped, not an error."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from execution_service.context import AppContext
from execution_service.enums import Direction, OrderStatus, OrderType, Purpose
from execution_service.exchanges import kept
from execution_service.exchanges.base import BalanceEntry
from execution_service.exchanges.kept import KeptBalances, decode, encode
from execution_service.exchanges.kept.repository import KeptBalanceRepository
from execution_service.models import ExecutionLog
from tests.factories import Actor, paper_setup

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _usdt(amount: str) -> dict[str, list[str]]:
    return encode({"USDT": BalanceEntry(Decimal(amount), Decimal(0), Decimal(amount))})


async def test_the_newest_read_wins_and_a_deleted_connection_is_skipped(
    user: Actor, ctx: AppContext
) -> None:
    kept_conn = await user.paper_connection()
    gone = await user.paper_connection()
    await user.ok("DELETE", f"/api/v1/connections/{gone['id']}", 204)
    a, b = kept_conn["id"], gone["id"]
    async with ctx.session_factory() as session:
        repo = KeptBalanceRepository(session)
        await repo.save({a: (_usdt("100"), NOW), b: (_usdt("5"), NOW)})
        await repo.save({a: (_usdt("50"), NOW - timedelta(seconds=1))})  # older: ignored
        await session.commit()
        assert (await repo.unspent([a, b]))[a] == (_usdt("100"), NOW)
        assert b not in await repo.unspent([a, b])
        await repo.save({a: (_usdt("200"), NOW + timedelta(seconds=1))})
        await session.commit()
        assert (await repo.unspent([a]))[a][0] == _usdt("200")


def test_balances_round_trip_exactly() -> None:
    balances = {
        "BTC": BalanceEntry(Decimal("0.000000012345678901"), Decimal("0"), Decimal("1E-8")),
        "USDT": BalanceEntry(Decimal("10000.00000000"), Decimal("0.5"), Decimal("10000.5")),
    }
    assert decode(encode(balances)) == balances
    assert encode(balances)["BTC"][0] == "0.000000012345678901"


async def test_reads_noted_are_written_together_at_close(user: Actor, ctx: AppContext) -> None:
    conn = await user.paper_connection()
    writer = KeptBalances(ctx.session_factory)
    writer.note(conn["id"], {"USDT": BalanceEntry(Decimal(7), Decimal(0), Decimal(7))}, 0)
    await writer.close()  # flushes what is due
    async with ctx.session_factory() as session:
        assert (await KeptBalanceRepository(session).unspent([conn["id"]]))[conn["id"]][0] == {
            "USDT": ["7", "0", "7"]
        }


async def test_reads_noted_while_a_write_runs_are_written_next(
    user: Actor, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = await user.paper_connection(), await user.paper_connection()
    monkeypatch.setattr(kept, "FLUSH_AFTER_SECONDS", 0.01)
    writing, go_on = asyncio.Event(), asyncio.Event()
    save = KeptBalanceRepository.save

    async def slow_save(self: KeptBalanceRepository, reads: Any) -> None:
        if not writing.is_set():  # the first write waits until the second read is noted
            writing.set()
            await go_on.wait()
        await save(self, reads)

    monkeypatch.setattr(KeptBalanceRepository, "save", slow_save)
    writer = KeptBalances(ctx.session_factory)
    one = {"USDT": BalanceEntry(Decimal(1), Decimal(0), Decimal(1))}
    writer.note(first["id"], one, 0)
    await writing.wait()
    writer.note(second["id"], one, 0)  # while the first write runs
    go_on.set()
    rows: dict[int, Any] = {}
    for _ in range(100):
        async with ctx.session_factory() as session:
            rows = await KeptBalanceRepository(session).unspent([first["id"], second["id"]])
        if len(rows) == 2:
            break
        await asyncio.sleep(0.02)
    assert set(rows) == {first["id"], second["id"]}
    await writer.close()


async def test_a_copy_read_before_any_order_of_ours_since_is_spent(
    user: Actor, ctx: AppContext
) -> None:
    """Orders created, sent or executed after the read left (or still pending) may not be in
    the copy: it is not used. A copy read after all of them is."""
    setup = await paper_setup(user, price="100")
    await setup.signal()
    conn_id = setup.conn_id
    now = datetime.now(UTC)
    async with ctx.session_factory() as session:
        repo = KeptBalanceRepository(session)
        await repo.save({conn_id: (_usdt("1"), now - timedelta(hours=1))})
        await session.commit()
        assert conn_id not in await repo.unspent([conn_id])
        await repo.save({conn_id: (_usdt("2"), now + timedelta(minutes=1))})
        await session.commit()
        assert (await repo.unspent([conn_id]))[conn_id][0] == _usdt("2")
        pending = ExecutionLog(
            user_id=setup.connection["user_id"],
            execution_connection_id=conn_id,
            purpose=Purpose.entry,
            client_order_id="kept-pending-1",
            symbol="BTC/USDT",
            direction=Direction.buy,
            order_type=OrderType.market,
            quantity=Decimal(1),
            status=OrderStatus.pending,
            created_at=now - timedelta(hours=2),
        )
        session.add(pending)
        await session.commit()
        assert conn_id not in await repo.unspent([conn_id])  # its outcome is unknown
