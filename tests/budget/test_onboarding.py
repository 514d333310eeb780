"""Onboarding waits for the venue's request budget: while it has no room, activation answers 503
with Retry-After (nothing sent, the failure not counted), and succeeds once it has room."""

from __future__ import annotations

import asyncio

from execution_service.context import AppContext
from execution_service.exchanges.budget import VenueLimits, Window
from execution_service.exchanges.ccxt.budgeting import venue_key
from tests.factories import Actor
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection


async def test_activation_answers_503_with_retry_after_while_the_budget_is_paused(
    user: Actor, ctx: AppContext, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance, activate=False)
    budgets = ctx.adapters.budgets
    assert budgets is not None
    key = venue_key("binance", False, fake_binance.base_url)
    budget = budgets.get(key, None, VenueLimits(Window(6000, 60)))
    await budget.pause(
        429, 3.5
    )  # (longer than activation waits, 2 s here) the venue said "slow down" to another account on this IP
    before = len(fake_binance.requests)

    busy = await user.request("POST", f"/api/v1/connections/{conn['id']}/activate")
    assert busy.status_code == 503
    assert busy.headers["content-type"].startswith("application/problem+json")
    assert busy.json()["code"] == "exchange_busy"
    assert 3 <= int(busy.headers["Retry-After"]) <= 4
    assert len(fake_binance.requests) == before  # nothing was sent
    row = await user.ok("GET", f"/api/v1/connections/{conn['id']}")
    assert row["is_active"] is False and row["consecutive_failures"] == 0

    await asyncio.sleep(float(busy.headers["Retry-After"]))
    active = await user.ok("POST", f"/api/v1/connections/{conn['id']}/activate")
    assert active["is_active"] is True
