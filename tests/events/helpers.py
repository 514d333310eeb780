"""Drive the webhook worker by hand, and read server-sent events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
from sqlalchemy import update

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.models import WebhookDelivery
from execution_service.workers.webhooks import DeliveryReport, dispatch, webhook_tick


async def deliver(ctx: AppContext) -> DeliveryReport:
    """Fan out every undispatched event (the shared database holds other tests' too), then one
    delivery tick: what the worker loop does, without waiting for its interval."""
    while await dispatch(ctx):
        pass
    return await webhook_tick(ctx)


async def make_due(ctx: AppContext, webhook_id: int) -> None:
    """Skip the backoff: the webhook's pending deliveries are due now."""
    async with ctx.session_factory() as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.status == "pending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()


async def sse_frames(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """Each event with data, as {field: value}; comments and bare `retry:` frames are skipped."""
    frame: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in frame:
                yield frame
            frame = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            frame[name] = value[1:] if value.startswith(" ") else value
