"""Fixtures: one fake Binance per test session (reset before each test) and adapters on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from execution_service.exchanges.ccxt_adapter import CcxtAdapter
from tests.fakes.binance import FakeBinance


@pytest.fixture(scope="session")
async def fake_binance_server() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as fake:
        yield fake


@pytest.fixture
async def fake_binance(fake_binance_server: FakeBinance) -> AsyncIterator[FakeBinance]:
    """A fresh-state fake; fails the test if anything called a path the fake does not serve."""
    fake = fake_binance_server
    await fake.come_up()
    fake.reset()
    yield fake
    unexpected = [(r.method, r.path) for r in fake.unexpected_requests]
    await fake.come_up()
    fake.reset()
    assert not unexpected, f"stray requests to the exchange: {unexpected}"


AdapterFactory = Callable[..., CcxtAdapter]


@pytest.fixture
async def make_adapter(fake_binance: FakeBinance) -> AsyncIterator[AdapterFactory]:
    """Build CcxtAdapters on the fake (test-speed defaults, overridable); all closed after."""
    made: list[CcxtAdapter] = []

    def make(**overrides: Any) -> CcxtAdapter:
        credentials = overrides.pop(
            "credentials", {"api_key": fake_binance.api_key, "api_secret": fake_binance.api_secret}
        )
        options: dict[str, Any] = {
            "api_base_url": fake_binance.base_url,
            "timeout_ms": 3000,
            "enable_rate_limit": False,
            "retry_base_delay": 0.01,
            **overrides,
        }
        adapter = CcxtAdapter("binance", credentials, **options)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.close()


@pytest.fixture
def adapter(make_adapter: AdapterFactory) -> CcxtAdapter:
    return make_adapter()
