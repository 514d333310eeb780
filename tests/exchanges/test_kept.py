"""The kept balances' rows: the newest read wins whichever process writes last; a connection
deleted meanwhile is skipped, not an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from execution_service.context import AppContext
from execution_service.exchanges.base import BalanceEntry
from execution_service.exchanges.kept import KeptBalances, decode, encode
from execution_service.exchanges.kept.repository import KeptBalanceRepository
from tests.factories import Actor

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
    writer.note(conn["id"], {"USDT": BalanceEntry(Decimal(7), Decimal(0), Decimal(7))})
    await writer.close()  # flushes what is due
    async with ctx.session_factory() as session:
        assert (await KeptBalanceRepository(session).unspent([conn["id"]]))[conn["id"]][0] == {
            "USDT": ["7", "0", "7"]
        }
