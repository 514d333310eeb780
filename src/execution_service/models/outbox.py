"""Workers' heartbeats and the monitor's shares, and the outbox: events, webhooks and their
deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from execution_service.db import UtcDateTime, Vocabulary, utcnow
from execution_service.enums import (
    DeliveryStatus,
    EventType,
)
from execution_service.models.base import Base, Owned, Timestamps


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance: Mapped[str] = mapped_column(String(100))
    beat_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class MonitorShare(Base):
    """One share of the position monitor's work (`positions.shares`): the (price source, symbol)
    pairs that hash to it are judged by the worker process holding its lease, and by no other."""

    __tablename__ = "monitor_shares"

    share: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class MonitorWorker(Base):
    """A worker process running the monitor, alive until `alive_until` unless it renews: the
    shares are split evenly among the living."""

    __tablename__ = "monitor_workers"

    instance: Mapped[str] = mapped_column(String(100), primary_key=True)
    alive_until: Mapped[datetime] = mapped_column(UtcDateTime)


class Event(Owned, Base):
    """The outbox: written in the transaction of the change it reports, read by the webhook
    worker and the live stream. `dispatched_at` is set once webhook deliveries exist for it."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    type: Mapped[EventType] = mapped_column(Vocabulary(EventType, 40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)


class Webhook(Owned, Timestamps, Base):
    """A URL that receives events: a user's own, or (no user_id) every event of the platform."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    # None: every event type.
    event_types: Mapped[list[str] | None] = mapped_column(JSON)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    secret_key_id: Mapped[str] = mapped_column(String(32))


class WebhookDelivery(Base):
    """One event to one webhook: the retry state and the outcome of the latest attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    status: Mapped[DeliveryStatus] = mapped_column(
        Vocabulary(DeliveryStatus, 16), default=DeliveryStatus.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
