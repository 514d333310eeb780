"""The per-account bound: an order that cannot get a slot in time is refused unsent."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from execution_service.exchanges.base import ExchangeBusy
from execution_service.exchanges.bounded import BoundedAdapter
from tests.exchanges.conftest import AdapterFactory
from tests.fakes.binance import FakeBinance


async def test_an_order_waiting_too_long_for_a_slot_is_not_sent(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    adapter = BoundedAdapter(make_adapter(), asyncio.Semaphore(1), order_slot_timeout=0.2)
    await adapter.load_markets()
    fake_binance.set_latency(600)
    first = asyncio.create_task(
        adapter.create_order("BTC/USDT", "buy", "market", Decimal("0.001"), None, "es-busy-1")
    )
    await asyncio.sleep(0.05)
    with pytest.raises(ExchangeBusy):
        await adapter.create_order("BTC/USDT", "buy", "market", Decimal("0.001"), None, "es-busy-2")
    assert (await first).status == "filled"
    fake_binance.set_latency(0)
    assert [o.client_order_id for o in fake_binance.orders] == ["es-busy-1"]
