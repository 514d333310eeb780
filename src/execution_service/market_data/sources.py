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
class Quote:
    price: Decimal
    at: datetime


def source_of(conn: ExecutionConnection) -> Source:
    if conn.data_connection_id is not None:
        return (SourceKind.data, conn.data_connection_id)
    return (SourceKind.conn, conn.id)
