"""A paused budget is a /health/ready detail (reported, never failing) and /metrics series:
used, limit, paused until, per (venue, egress)."""

from __future__ import annotations

import httpx

from execution_service.context import AppContext
from execution_service.exchanges.budget import VenueLimits, Window


async def test_a_pause_shows_in_readiness_and_metrics(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    budgets = ctx.adapters.budgets
    assert budgets is not None
    budget = budgets.get(
        "testvenue@obs", "http://user:secret@proxy.example:3128", VenueLimits(Window(600, 60))
    )
    await budget.acquire(7, order=True)
    await budget.pause(418, 30)

    ready = await client.get("/health/ready")
    assert ready.status_code == 200  # a venue's ban does not take the service out of rotation
    paused = ready.json()["checks"]["request_budget"]["paused"]
    mine = [b for b in paused if b["venue"] == "testvenue@obs"]
    assert (
        mine
        and mine[0]["egress"] == "proxy.example:3128"
        and mine[0]["limit"] == budget.limits.weight.limit
    )
    assert mine[0]["used"] >= 7 and mine[0]["paused_until"] > 0
    assert "secret" not in ready.text

    text = (await client.get("/metrics")).text
    labels = 'egress="proxy.example:3128",venue="testvenue@obs"'
    # (The session's settings scale every limit: EXEC_BUDGET_LIMIT_SCALE.)
    assert f"execution_budget_limit{{{labels}}} {float(budget.limits.weight.limit)}" in text
    assert f"execution_budget_paused_until{{{labels}}}" in text
    assert "execution_budget_used{" in text
    assert "secret" not in text
    await budget.store.pause(budget.pause_key, 0)  # (memory: a later pause wins; this ends it)
