"""The per-account bound: an order that cannot get a slot in time is refused unsent; the
budget priority each call runs under."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import pytest

from execution_service.exchanges.base import ExchangeBusy
from execution_service.exchanges.bounded import BoundedAdapter
from execution_service.exchanges.budget import Priority, calling, current_call
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


class _Seen:
    """An inner adapter that notes the budget context each call runs under."""

    capabilities = None
    seen: list[tuple[str, Priority | None]]

    def __init__(self) -> None:
        self.seen = []

    def _note(self, name: str) -> None:
        call = current_call()
        self.seen.append((name, call.priority if call else None))

    async def fetch_balance(self) -> dict[str, object]:
        self._note("fetch_balance")
        return {}

    async def cancel_order(self, symbol: str, **_: object) -> None:
        self._note("cancel_order")


@pytest.mark.parametrize(
    ("outer", "operation", "expected"),
    [
        (None, "fetch_balance", Priority.READ),  # the default for a read
        (Priority.BACKGROUND, "fetch_balance", Priority.BACKGROUND),  # a health check's stands
        (Priority.EXIT, "fetch_balance", Priority.EXIT),
        (Priority.BACKGROUND, "cancel_order", Priority.EXIT),  # a cancel is always an exit's
    ],
)
async def test_the_callers_priority_stands_except_for_exits(
    outer: Priority | None, operation: str, expected: Priority
) -> None:
    inner = _Seen()
    adapter = BoundedAdapter(inner, asyncio.Semaphore(1))  # type: ignore[arg-type]
    with calling(outer) if outer is not None else contextlib.nullcontext():
        if operation == "fetch_balance":
            await adapter.fetch_balance()
        else:
            await adapter.cancel_order("BTC/USDT", client_order_id="x")
    assert inner.seen == [(operation, expected)]
