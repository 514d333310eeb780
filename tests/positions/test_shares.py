"""The monitor's work split among worker processes by leased shares (PostgreSQL; SQLite's one
process judges every share)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import delete

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.market_data.sources import SourceKind
from execution_service.models import MonitorShare, MonitorWorker
from execution_service.positions.shares import EVERY, SHARES, ShareKeeper, share_of
from execution_service.workers import monitor as monitor_worker
from execution_service.workers.monitor import Monitor
from tests.factories import Actor, paper_setup
from tests.workers.test_monitor import open_position


@pytest.mark.parametrize(
    ("source", "symbol", "share"),
    [
        ((SourceKind.data, 1), "BTC/USDT", share_of((SourceKind.data, 1), "BTC/USDT")),
        ((SourceKind.conn, 1), "BTC/USDT", share_of((SourceKind.conn, 1), "BTC/USDT")),
    ],
)
def test_a_pair_always_hashes_to_the_same_share(
    source: tuple[SourceKind, int], symbol: str, share: int
) -> None:
    assert 0 <= share < SHARES and share_of(source, symbol) == share


def test_the_hash_is_stable_across_processes_and_releases() -> None:
    # crc32 of "data:1:BTC/USDT" and "conn:7:ETH/USDT": not Python's salted hash()
    assert share_of((SourceKind.data, 1), "BTC/USDT") == 760705833 % SHARES
    assert share_of((SourceKind.conn, 7), "ETH/USDT") == 3961388963 % SHARES


def test_2000_symbols_spread_over_every_share() -> None:
    counts = Counter(share_of((SourceKind.data, 1), f"S{n}/USDT") for n in range(2000))
    assert set(counts) == set(range(SHARES))
    assert max(counts.values()) < 3 * 2000 / SHARES


async def test_sqlite_judges_every_share(is_postgres: bool, ctx: AppContext) -> None:
    if is_postgres:
        pytest.skip("SQLite's one process")
    assert await ShareKeeper("solo").refresh(ctx) is EVERY


FAST = {"lease": timedelta(seconds=0.6), "renew_seconds": 0.0}


@pytest.fixture(autouse=True)
async def no_workers_yet(is_postgres: bool, ctx: AppContext) -> None:
    """Workers and shares left by earlier tests in this database are forgotten."""
    if is_postgres:
        async with ctx.session_factory() as session:
            await session.execute(delete(MonitorShare))
            await session.execute(delete(MonitorWorker))
            await session.commit()


async def test_two_workers_split_the_shares_and_one_takes_over_a_dead_ones(
    is_postgres: bool, ctx: AppContext
) -> None:
    if not is_postgres:
        pytest.skip("several worker processes need PostgreSQL")
    first, second = ShareKeeper("first", **FAST), ShareKeeper("second", **FAST)  # type: ignore[arg-type]
    assert await first.refresh(ctx) == EVERY  # alone: every share
    assert await second.refresh(ctx) == frozenset()  # all held: it waits for its part
    assert len(await first.refresh(ctx)) == SHARES // 2  # two alive: half given back
    assert len(await second.refresh(ctx)) == SHARES // 2
    assert first.owned.isdisjoint(second.owned) and first.owned | second.owned == EVERY
    assert (first.workers, second.workers) == (2, 2)

    await asyncio.sleep(0.7)  # `second` stops renewing (killed): its leases and its life lapse
    assert await first.refresh(ctx) == EVERY
    assert second.shares(utcnow()) == frozenset()  # were it alive, it would not act on them


async def test_a_stopping_worker_gives_its_shares_back_at_once(
    is_postgres: bool, ctx: AppContext
) -> None:
    if not is_postgres:
        pytest.skip("several worker processes need PostgreSQL")
    first, second = ShareKeeper("a", **FAST), ShareKeeper("b", **FAST)  # type: ignore[arg-type]
    await first.refresh(ctx)
    await second.refresh(ctx)
    await first.refresh(ctx)
    await second.refresh(ctx)
    await first.leave(ctx)
    assert await second.refresh(ctx) == EVERY  # no lease to wait for


async def test_each_monitor_judges_only_its_shares(
    is_postgres: bool, user: Actor, ctx: AppContext
) -> None:
    if not is_postgres:
        pytest.skip("several worker processes need PostgreSQL")
    kw = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}
    acct = await paper_setup(user, price="100", **kw)
    symbols = [f"C{n}/USDT" for n in range(12)]
    pids = {}
    for symbol in symbols:
        await acct.price("100", symbol=symbol)
        pids[symbol] = await open_position(acct, symbol=symbol, sl_price="95")
    slow = {"lease": timedelta(seconds=30), "renew_seconds": 0.0}
    one = Monitor(ShareKeeper("one", **slow))  # type: ignore[arg-type]
    two = Monitor(ShareKeeper("two", **slow))  # type: ignore[arg-type]
    for keeper in (one.keeper, two.keeper, one.keeper, two.keeper):  # joined, then split
        await keeper.refresh(ctx)
    assert len(one.keeper.owned) == len(two.keeper.owned) == SHARES // 2
    for symbol in symbols:
        await acct.price("94", symbol=symbol)  # through every stop
    ctx.take_arrived_prices()
    await one.tick(ctx)  # its half
    dc = int(acct.data_connection["id"])
    mine = {s for s in symbols if share_of((SourceKind.data, dc), s) in one.keeper.owned}
    for symbol, pid in pids.items():
        status = (await user.ok("GET", f"/api/v1/positions/{pid}"))["status"]
        assert status == ("closed" if symbol in mine else "open"), symbol
    assert mine and mine != set(symbols)  # both halves hold some of them
    await two.tick(ctx)  # the other half
    for pid in pids.values():
        assert (await user.ok("GET", f"/api/v1/positions/{pid}"))["status"] == "closed"
    await one.close(ctx)
    await two.close(ctx)


async def test_a_tick_longer_than_the_lease_keeps_its_shares(
    is_postgres: bool, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose tick outlasts its lease (a million positions, a crash's closes) renews
    its leases meanwhile: another worker refreshing then sees two living workers and claims
    only the free half, never the shares the long tick is judging."""
    if not is_postgres:
        pytest.skip("several worker processes need PostgreSQL")
    long_one = Monitor(ShareKeeper("long", **FAST))  # type: ignore[arg-type]
    other = ShareKeeper("other", **FAST)  # type: ignore[arg-type]
    await long_one.keeper.refresh(ctx)
    await other.refresh(ctx)
    await long_one.keeper.refresh(ctx)
    await other.refresh(ctx)
    held = long_one.keeper.owned
    assert len(held) == SHARES // 2

    async def slow_tick(*_: object, **__: object) -> None:
        await asyncio.sleep(2.0)  # over three leases of 0.6 s

    monkeypatch.setattr(monitor_worker, "monitor_tick", slow_tick)
    ticking = asyncio.ensure_future(long_one.tick(ctx))
    for _ in range(6):  # the other worker goes on renewing meanwhile
        await asyncio.sleep(0.3)
        await other.refresh(ctx)
        assert other.workers == 2 and other.owned.isdisjoint(held)
    await ticking
    assert long_one.keeper.owned == held and long_one.keeper.shares(utcnow()) == held
    await long_one.close(ctx)
