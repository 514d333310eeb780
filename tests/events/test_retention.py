"""The outbox keeps `EXEC_EVENTS_RETENTION_DAYS` of history: older events whose deliveries are
finished go (with their delivery rows); one still being delivered stays."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import func, select

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.models import Event, WebhookDelivery
from execution_service.settings import Settings
from execution_service.workers.analytics import EVENTS_PRUNE_BATCH, prune_events
from tests.events.helpers import deliver
from tests.events.receiver import Receiver
from tests.factories import Actor, paper_setup

FQ1 = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}


async def _mine(ctx: AppContext, user_id: int | None) -> dict[str, int]:
    async with ctx.session_factory() as session:
        rows = await session.execute(
            select(Event.type, func.count()).where(Event.user_id == user_id).group_by(Event.type)
        )
        return {t: n for t, n in rows}


async def _prune_all(ctx: AppContext, days_later: int) -> None:
    while await prune_events(ctx, utcnow() + timedelta(days=days_later)) == EVENTS_PRUNE_BATCH:
        pass  # the shared test database holds other tests' events too


async def test_old_events_go_unless_still_being_delivered(
    ctx: AppContext, settings: Settings, user: Actor
) -> None:
    async with Receiver() as rx:
        # order.filled events go to a receiver that is down: their deliveries stay pending.
        body = {"url": f"{rx.base_url}/down", "event_types": ["order.filled"]}
        await user.ok("POST", "/api/v1/webhooks", 201, json=body)
        await (await paper_setup(user, price="100", **FQ1)).signal()
        await deliver(ctx)
    assert await _mine(ctx, user.user_id) == {"order.filled": 1, "position.opened": 1}

    await _prune_all(ctx, days_later=29)  # inside the retention: nothing goes
    assert await _mine(ctx, user.user_id) == {"order.filled": 1, "position.opened": 1}

    await _prune_all(ctx, days_later=31)
    assert await _mine(ctx, user.user_id) == {"order.filled": 1}  # still being delivered
    async with ctx.session_factory() as session:
        orphans = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(~WebhookDelivery.event_id.in_(select(Event.id)))
        )
    assert orphans == 0

    forever = replace(ctx, settings=settings.model_copy(update={"events_retention_days": 0}))
    assert await prune_events(forever, utcnow() + timedelta(days=3650)) == 0
