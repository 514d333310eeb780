"""A paused budget is a /health/ready detail (reported, never failing), /metrics series (used,
limit, paused until, per (venue, egress)) and a `venue.paused` event."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from execution_service.context import AppContext
from execution_service.exchanges.budget import VenueLimits, Window
from execution_service.models import Event


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
    # An event of no owner (admins, service keys and platform webhooks hear it), once per pause.
    await budget.pause(418, 30)  # another answer of the same ban: no second event
    async with ctx.session_factory() as session:
        events = (await session.scalars(select(Event).where(Event.type == "venue.paused"))).all()
    mine_events = [e for e in events if e.payload["venue"] == "testvenue@obs"]
    assert len(mine_events) == 1, [e.payload for e in mine_events]
    (event,) = mine_events
    assert event.user_id is None and event.admin_id is None
    assert event.payload["status"] == 418 and event.payload["egress"] == "proxy.example:3128"
    assert "secret" not in str(event.payload)
    await budget.store.pause(budget.pause_key, 0)  # (memory: a later pause wins; this ends it)
