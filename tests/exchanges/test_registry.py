"""One client per connection: cached, rebuilt when what it was built from changes, and a paper
connection never gets a real client."""

from __future__ import annotations

from sqlalchemy import select

from execution_service.context import AppContext
from execution_service.exchanges.bounded import BoundedAdapter
from execution_service.exchanges.ccxt.adapter import CcxtAdapter
from execution_service.exchanges.paper.adapter import PaperAdapter
from execution_service.models import ExecutionConnection
from tests.conftest import EXAMPLE_API_KEY, EXAMPLE_API_SECRET
from tests.factories import Actor
from tests.fakes.binance import FakeBinance


async def _row(ctx: AppContext, conn_id: int) -> ExecutionConnection:
    async with ctx.session_factory() as session:
        row = await session.scalar(
            select(ExecutionConnection).where(ExecutionConnection.id == conn_id)
        )
    assert row is not None
    return row


async def test_clients_are_cached_and_rebuilt_on_new_credentials(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await user.ok(
        "POST",
        "/api/v1/connections",
        201,
        json={
            "name": "b",
            "adapter": "ccxt",
            "exchange": "binance",
            "api_base_url": fake_binance.base_url,
            "credentials": {"api_key": EXAMPLE_API_KEY, "api_secret": EXAMPLE_API_SECRET},
        },
    )
    first = await ctx.adapters.for_connection(await _row(ctx, conn["id"]))
    assert isinstance(first, BoundedAdapter) and isinstance(first.inner, CcxtAdapter)
    assert await ctx.adapters.for_connection(await _row(ctx, conn["id"])) is first
    await user.ok(
        "PATCH",
        f"/api/v1/connections/{conn['id']}",
        json={
            "credentials": {"api_key": EXAMPLE_API_KEY, "api_secret": "another-secret-0123456789"}
        },
    )
    second = await ctx.adapters.for_connection(await _row(ctx, conn["id"]))
    assert second is not first
    await ctx.adapters.evict(conn["id"])


async def test_paper_is_decided_from_the_row(user: Actor, ctx: AppContext) -> None:
    conn = await user.paper_connection(activate=False)
    adapter = await ctx.adapters.for_connection(await _row(ctx, conn["id"]))
    assert isinstance(adapter, BoundedAdapter) and isinstance(adapter.inner, PaperAdapter)


async def test_connections_on_one_venue_share_its_markets_and_prices(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    adapters = []
    for name in ("one", "two"):
        conn = await user.ok(
            "POST",
            "/api/v1/connections",
            201,
            json={
                "name": name,
                "adapter": "ccxt",
                "exchange": "binance",
                "api_base_url": fake_binance.base_url,
                "credentials": {"api_key": EXAMPLE_API_KEY, "api_secret": EXAMPLE_API_SECRET},
            },
        )
        adapters.append(await ctx.adapters.for_connection(await _row(ctx, conn["id"])))
    one, two = adapters
    assert (await one.market("BTC/USDT")) == (await two.market("BTC/USDT"))
    assert (await one.fetch_ticker("BTC/USDT")) == (await two.fetch_ticker("BTC/USDT"))
    # At most one load (the session's earlier tests may have loaded them already), one price.
    assert len(fake_binance.requests_to("GET", "/api/v3/exchangeInfo")) <= 1
    assert len(fake_binance.requests_to("GET", "/api/v3/ticker/24hr")) == 1
    for conn_adapter in adapters:
        assert isinstance(conn_adapter, BoundedAdapter)
