from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service import setbased
from execution_service.enums import DeliveryStatus
from execution_service.models import Event, WebhookDelivery
from execution_service.principal import Principal


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Many events in one statement, in the order given (their ids follow it)."""
        await setbased.insert_many(self.session, cast(Table, Event.__table__), rows)

    async def latest_id(self) -> int:
        return int(await self.session.scalar(select(func.max(Event.id))) or 0)

    async def ids_after(self, last_id: int, limit: int) -> Sequence[int]:
        """Every event's id after `last_id`, whoever owns it: the stream's cursor must see the
        holes in the ids, not only in the caller's events."""
        stmt = select(Event.id).where(Event.id > last_id).order_by(Event.id).limit(limit)
        return (await self.session.scalars(stmt)).all()

    async def between(self, principal: Principal, after: int, upto: int) -> Sequence[Event]:
        """The caller's events with ids in (after, upto], in id order."""
        stmt = principal.scope(select(Event), Event).where(Event.id > after, Event.id <= upto)
        return (await self.session.scalars(stmt.order_by(Event.id))).all()

    async def prune(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` events dispatched before `before` whose webhook deliveries are all
        finished (their delivery rows go with them). An event still being delivered stays."""
        pending = exists().where(
            WebhookDelivery.event_id == Event.id, WebhookDelivery.status == DeliveryStatus.pending
        )
        ids = (
            await self.session.scalars(
                select(Event.id)
                .where(Event.dispatched_at < before, ~pending)  # ix_events_dispatched_at
                .order_by(Event.id)
                .limit(limit)
            )
        ).all()
        if ids:
            # Explicitly, not by ON DELETE CASCADE alone: SQLite enforces it only with its pragma.
            await self.session.execute(
                delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(ids))
            )
            await self.session.execute(delete(Event).where(Event.id.in_(ids)))
        return len(ids)
