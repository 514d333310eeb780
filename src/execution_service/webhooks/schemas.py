from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AnyHttpUrl, Field, UrlConstraints

from execution_service.enums import EventType
from execution_service.schemas import Body, Model, OwnerId

WebhookUrl = Annotated[
    AnyHttpUrl, UrlConstraints(max_length=2000, allowed_schemes=["http", "https"])
]


class WebhookCreate(Body):
    url: WebhookUrl
    event_types: list[EventType] | None = Field(
        default=None, min_length=1, max_length=20, description="default: every event type"
    )
    user_id: OwnerId | None = Field(default=None, description="admin/service keys only")
    admin_id: OwnerId | None = Field(default=None, description="admin/service keys only")


class WebhookRead(Model):
    id: int
    user_id: int | None = Field(description="null: a platform webhook, sent every owner's events")
    admin_id: int | None
    url: str
    event_types: list[EventType] | None = Field(description="null: every event type")
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(
        description="the signing secret: shown in this response only; verify X-Signature with it"
    )


class DeliveryRead(Model):
    id: int
    event_id: int
    webhook_id: int
    status: str = Field(description="pending, delivered or failed (gave up)")
    attempts: int
    next_attempt_at: datetime
    status_code: int | None = Field(description="the receiver's answer to the latest attempt")
    error: str | None
    delivered_at: datetime | None
    created_at: datetime
