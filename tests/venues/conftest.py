"""The three venue fakes, each a fresh server on its own port for every test, with credentials of
its own: an earlier test's connection can neither reach this test's account nor trade on it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from execution_service.context import AppContext
from execution_service.workers.order_streams import OrderStreams
from tests.fakes.binanceusdm import FakeBinanceUsdm
from tests.fakes.bybit import FakeBybit
from tests.fakes.okx import FakeOkx
from tests.fakes.venue import VenueServer


def _key() -> str:
    return secrets.token_hex(16)


async def _serve(fake: Any, ctx: AppContext) -> AsyncIterator[Any]:
    ctx.adapters.forget_prices()  # no price another test's fake left in the venue's ticker book
    async with fake:
        yield fake
    unexpected = [(r.method, r.path) for r in fake.unexpected_requests]
    assert not unexpected, f"requests to paths the venue does not serve: {unexpected}"


@pytest.fixture
async def okx(ctx: AppContext) -> AsyncIterator[FakeOkx]:
    fake = FakeOkx(api_key=_key(), api_secret=_key(), passphrase="Pass-" + _key()[:12])
    async for served in _serve(fake, ctx):
        yield served


@pytest.fixture
async def bybit(ctx: AppContext) -> AsyncIterator[FakeBybit]:
    async for served in _serve(FakeBybit(api_key=_key(), api_secret=_key()), ctx):
        yield served


@pytest.fixture
async def usdm(ctx: AppContext) -> AsyncIterator[FakeBinanceUsdm]:
    async for served in _serve(FakeBinanceUsdm(api_key=_key(), api_secret=_key()), ctx):
        yield served


@pytest.fixture
async def streams() -> AsyncIterator[OrderStreams]:
    """The order streams worker, stopped after the test."""
    running = OrderStreams()
    yield running
    await running.close()


__all__ = ["VenueServer"]
