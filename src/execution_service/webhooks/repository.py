from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.enums import DeliveryStatus
from execution_service.models import Event, Webhook, WebhookDelivery
from execution_service.principal import Principal


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, principal: Principal, webhook_id: int) -> Webhook | None:
        stmt = principal.scope(select(Webhook), Webhook).where(Webhook.id == webhook_id)
        return (await self.session.scalars(stmt)).first()

    async def list(
        self, principal: Principal, limit: int, offset: int
    ) -> tuple[Sequence[Webhook], int]:
        stmt = principal.scope(select(Webhook), Webhook)
        rows = await self.session.scalars(stmt.order_by(Webhook.id).limit(limit).offset(offset))
        total = await self.session.scalar(select(func.count()).select_from(stmt.subquery()))
        return rows.all(), total or 0

    async def all(self) -> Sequence[Webhook]:
        return (await self.session.scalars(select(Webhook).order_by(Webhook.id))).all()

    async def deliveries(
        self, webhook_id: int, limit: int, offset: int
    ) -> tuple[Sequence[WebhookDelivery], int]:
        """A page of one webhook's deliveries, newest first (the caller has checked the webhook
        is visible)."""
        stmt = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
        rows = await self.session.scalars(
            stmt.order_by(WebhookDelivery.id.desc()).limit(limit).offset(offset)
        )
        total = await self.session.scalar(select(func.count()).select_from(stmt.subquery()))
        return rows.all(), total or 0

    # --- the delivery worker ---------------------------------------------------------------

    async def claim_undispatched(self, limit: int) -> Sequence[Event]:
        """Events not yet fanned out, oldest first, locked; those another worker holds are
        skipped."""
        stmt = (
            select(Event)
            .where(Event.dispatched_at.is_(None))
            .order_by(Event.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.scalars(stmt)).all()

    async def listening(self, user_ids: set[int]) -> Sequence[Webhook]:
        """The platform webhooks (no user) and those of these users."""
        stmt = select(Webhook).where(or_(Webhook.user_id.is_(None), Webhook.user_id.in_(user_ids)))
        return (await self.session.scalars(stmt)).all()

    async def claim_due(
        self, now: datetime, limit: int
    ) -> Sequence[tuple[WebhookDelivery, Event, Webhook]]:
        """Pending deliveries due by `now`, oldest first, with their event and webhook; only the
        delivery rows are locked, and those another worker holds are skipped."""
        rows = await self.session.execute(
            select(WebhookDelivery, Event, Webhook)
            .join(Event, Event.id == WebhookDelivery.event_id)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(
                WebhookDelivery.status == DeliveryStatus.pending,
                WebhookDelivery.next_attempt_at <= now,
            )
            .order_by(WebhookDelivery.id)
            .limit(limit)
            .with_for_update(of=WebhookDelivery, skip_locked=True)
        )
        return [(delivery, event, hook) for delivery, event, hook in rows.all()]

    async def lock_attempt(self, delivery_id: int, attempt: int) -> WebhookDelivery | None:
        """The pending delivery, locked, if `attempt` is still its latest: a lease that ran out
        may have passed it to another worker."""
        stmt = (
            select(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.attempts == attempt,
                WebhookDelivery.status == DeliveryStatus.pending,
            )
            .with_for_update()
        )
        return (await self.session.scalars(stmt)).first()
