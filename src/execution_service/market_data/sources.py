"""Where a position's price comes from: its connection's linked data connection, or, without
one, the connection's own venue. The monitor fetches one price per (source, symbol) per tick."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from execution_service.models import ExecutionConnection


class SourceKind(StrEnum):
    data = "data"  # a data connection (manual prices, or a ccxt venue's public tickers)
    conn = "conn"  # the execution connection's own adapter


Source = tuple[SourceKind, int]


@dataclass(frozen=True)
class Move:
    """One price the market went through: a tick (low = high = close), or a bar, which went to
    its low and its high before its close."""

    at: datetime
    close: Decimal
    low: Decimal
    high: Decimal

    @classmethod
    def tick(cls, at: datetime, price: Decimal) -> Move:
        return cls(at, price, price, price)

    @property
    def is_tick(self) -> bool:
        return self.low == self.high == self.close


@dataclass(frozen=True)
class Quote:
    """A source's latest price for a symbol (positions are marked to it), and every move since
    the positions priced by it were last marked, oldest first (the last one closes at `price`).
    Without a path only the latest price is known (a venue's ticker)."""

    price: Decimal
    at: datetime
    path: tuple[Move, ...] = ()

    @property
    def low(self) -> Decimal:
        return min((m.low for m in self.path), default=self.price)

    @property
    def high(self) -> Decimal:
        return max((m.high for m in self.path), default=self.price)

    def since(self, marked_at: datetime | None) -> tuple[Move, ...]:
        """The moves a position last marked at `marked_at` has not been judged on; the latest
        price alone when there is none newer (a stop whose exit was refused is judged again)."""
        newer = tuple(m for m in self.path if marked_at is None or m.at > marked_at)
        return newer or (Move.tick(self.at, self.price),)


def source_of(conn: ExecutionConnection) -> Source:
    if conn.data_connection_id is not None:
        return (SourceKind.data, conn.data_connection_id)
    return (SourceKind.conn, conn.id)
