"""The paper venue's own book: balances, net holdings per symbol, and its orders."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from execution_service.db import Money, UtcDateTime, Vocabulary, utcnow
from execution_service.enums import (
    Direction,
    OrderStatus,
    OrderType,
)
from execution_service.models.base import Base


class PaperBalance(Base):
    __tablename__ = "paper_balances"
    __table_args__ = (UniqueConstraint("connection_id", "currency"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("execution_connections.id", ondelete="CASCADE")
    )
    currency: Mapped[str] = mapped_column(String(16))
    free: Mapped[Decimal] = mapped_column(Money)
    used: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))


class PaperHolding(Base):
    """Net position per symbol of a paper account (one-way mode, like a margin account)."""

    __tablename__ = "paper_holdings"
    __table_args__ = (UniqueConstraint("connection_id", "symbol"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("execution_connections.id", ondelete="CASCADE")
    )
    symbol: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(Money)  # signed: negative is short
    average_price: Mapped[Decimal] = mapped_column(Money)
    margin: Mapped[Decimal] = mapped_column(Money)


class PaperOrder(Base):
    """The paper exchange's own book: paper orders are found by client order id like real ones."""

    __tablename__ = "paper_orders"
    __table_args__ = (
        UniqueConstraint("connection_id", "client_order_id"),
        Index("ix_paper_orders_open", "connection_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("execution_connections.id", ondelete="CASCADE")
    )
    client_order_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[Direction] = mapped_column(Vocabulary(Direction, 8))
    type: Mapped[OrderType] = mapped_column(Vocabulary(OrderType, 8))
    amount: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal | None] = mapped_column(Money)
    filled: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    average: Mapped[Decimal | None] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    fee_currency: Mapped[str | None] = mapped_column(String(16))
    # What a resting order holds of the quote balance (its margin and fee) until it fills or is
    # cancelled: two resting orders cannot spend the same funds.
    reserved: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    status: Mapped[OrderStatus] = mapped_column(Vocabulary(OrderStatus, 20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
