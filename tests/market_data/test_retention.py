"""Retention: one pruning pass deletes the expired ticks and the expired bars of configured
timeframes, in bounded batches, and leaves every recent point (and the latest price) alone.
On a database of its own: a pass prunes every data connection there is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.enums import Role
from execution_service.market_data import service
from execution_service.market_data.retention import prune
from execution_service.market_data.schemas import DataConnectionCreate, MarketDataIngest
from execution_service.principal import Principal
from execution_service.settings import Settings
from tests.conftest import fresh_database, new_key_ring

ADMIN = Principal(key_id=0, name="admin", role=Role.admin, user_id=None)
NOW = utcnow()


def iso(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat()


@pytest.fixture
async def scratch(tmp_path: Path, settings: Settings) -> AsyncIterator[AppContext]:
    url = await fresh_database(tmp_path, "market_data_retention_test")
    own = settings.model_copy(
        update={
            "database_url": url,
            "market_data_tick_retention_hours": 24,
            "market_data_bar_retention_days": 365,
            "market_data_prune_batch": 3,
        }
    )
    ctx = AppContext.create(own, new_key_ring())
    yield ctx
    await ctx.aclose()


async def feed(ctx: AppContext) -> int:
    body = DataConnectionCreate.model_validate(
        {"name": "feed", "timeframes": [{"timeframe": "1h", "retention_days": 2}]}
    )
    async with ctx.session_factory() as session:
        dc = await service.create_data_connection(session, ctx, ADMIN, body)
        # 7 expired ticks and 5 recent ones; 1h bars three days and one day old (kept 2 days);
        # a 1d bar over a year old, of a timeframe nobody configured: kept.
        ticks = [{"symbol": "BTC/USDT", "price": "1", "timestamp": iso(30 + i)} for i in range(7)]
        ticks += [{"symbol": "BTC/USDT", "price": "2", "timestamp": iso(23 - i)} for i in range(5)]
        bar = {"symbol": "BTC/USDT", "open": "1", "high": "1", "low": "1", "close": "1"}
        bars = [
            {**bar, "timeframe": "1h", "timestamp": iso(72)},
            {**bar, "timeframe": "1h", "timestamp": iso(24)},
            {**bar, "timeframe": "1d", "timestamp": iso(24 * 400)},
        ]
        body_in = MarketDataIngest.model_validate({"prices": ticks, "bars": bars})
        assert await service.ingest(session, ADMIN, dc.id, body_in) == 15
        return dc.id


async def stored(ctx: AppContext, dc_id: int, timeframe: str) -> list[dict[str, Any]]:
    async with ctx.session_factory() as session:
        page = await service.history(
            session, ADMIN, dc_id, {"symbol": "BTC/USDT", "timeframe": timeframe}, 500, 0
        )
    assert not page.built
    return [item.model_dump(mode="json") for item in page.items]


async def test_one_pass_deletes_what_expired_and_nothing_recent(scratch: AppContext) -> None:
    dc_id = await feed(scratch)

    report = await prune(scratch, NOW)

    assert (report.ticks, report.bars) == (7, 1)
    assert report.batches == 4  # ticks 3 + 3 + 1 (a short batch ends it), bars 1
    ticks = await stored(scratch, dc_id, "tick")
    assert len(ticks) == 5 and {t["close"] for t in ticks} == {"2"}
    assert [b["timestamp"][:13] for b in await stored(scratch, dc_id, "1h")] == [iso(24)[:13]]
    assert len(await stored(scratch, dc_id, "1d")) == 1
    async with scratch.session_factory() as session:
        latest = await service.latest_price(session, ADMIN, dc_id, "BTC/USDT")
    assert str(latest.close) == "2"
    assert (await prune(scratch, NOW)).rows == 0  # nothing left to do


async def test_a_pass_is_bounded_and_the_next_one_goes_on(
    scratch: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    dc_id = await feed(scratch)
    monkeypatch.setattr(scratch.settings, "market_data_prune_max_batches", 2)

    first = await prune(scratch, NOW)
    assert (first.ticks, first.bars, first.batches) == (6, 0, 2)
    assert len(await stored(scratch, dc_id, "tick")) == 6
    second = await prune(scratch, NOW)
    assert (second.ticks, second.bars) == (1, 1)
    assert len(await stored(scratch, dc_id, "tick")) == 5


async def test_zero_keeps_ticks_forever(
    scratch: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    dc_id = await feed(scratch)
    monkeypatch.setattr(scratch.settings, "market_data_tick_retention_hours", 0)
    report = await prune(scratch, NOW)
    assert (report.ticks, report.bars) == (0, 1)
    assert len(await stored(scratch, dc_id, "tick")) == 12
