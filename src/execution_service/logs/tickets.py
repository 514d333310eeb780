"""Orders on venues whose positions are broker tickets (`positions_are_tickets`: MetaTrader).

There, SL/TP travel with the entry order (the broker holds them), and a position is closed by
its entry ticket rather than by an opposite order (which would open a second ticket).
"""

from __future__ import annotations

from decimal import Decimal

from execution_service.exchanges.base import ExchangeAdapter, Stops
from execution_service.models import ExecutionLog


def stops(adapter: ExchangeAdapter, entry: ExecutionLog) -> Stops | None:
    """The venue-held SL/TP of an entry, where they travel with it (none elsewhere)."""
    if entry.purpose != "entry" or not adapter.capabilities.stops_with_entry:
        return None
    plan = entry.plan or {}
    sl, tp = plan.get("sl_price"), plan.get("tp_price")
    return Stops(Decimal(str(sl)) if sl else None, Decimal(str(tp)) if tp else None)
