"""Fixtures: adapters on the session's fake Binance (see tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from execution_service.exchanges.ccxt.adapter import CcxtAdapter
from execution_service.outbound.policy import OutboundPolicy
from tests.fakes.binance import FakeBinance

AdapterFactory = Callable[..., CcxtAdapter]


# The fakes listen on loopback, which the default (strict) policy refuses.
LOOPBACK = OutboundPolicy(allow_private=True)


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
            "outbound": LOOPBACK,
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
