"""The declarative base every table shares, and the ownership and timestamp columns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from execution_service.db import UtcDateTime, metadata, utcnow


class Base(DeclarativeBase):
    metadata = metadata


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Owned:
    """Rows belong to a platform user (`user_id`) or to the platform (`admin_id`)."""

    user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    admin_id: Mapped[int | None] = mapped_column(BigInteger)
