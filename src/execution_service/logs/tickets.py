"""Orders on venues whose positions are broker tickets (MetaTrader through mtapi).

There, SL/TP travel with the entry order (the broker holds them), and a position is closed by
its entry ticket rather than by an opposite order (which would open a second ticket).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from execution_service.exchanges.base import ExchangeAdapter, OrderNotFound, OrderResult
from execution_service.models import ExecutionLog


def stops(adapter: ExchangeAdapter, entry: ExecutionLog) -> dict[str, Any]:
    """The broker-held SL/TP of an entry, as create_order keywords (none for other venues)."""
    if entry.purpose != "entry" or not getattr(adapter, "ticket_positions", False):
        return {}
    plan = entry.plan or {}
    return {
        key: Decimal(str(plan[name])) if plan.get(name) else None
        for key, name in (("sl", "sl_price"), ("tp", "tp_price"))
    }


async def close(adapter: Any, exit_log: ExecutionLog, ticket: str) -> OrderResult:
    """Close `exit_log.quantity` lots of the position that `ticket` opened. If the broker no
    longer has it open, it closed it itself (its SL or TP, or a trader's terminal): that close is
    recorded as this exit's fill, with the broker's price and profit and the reason it gives."""
    try:
        result: OrderResult = await adapter.close_position(
            exit_log.symbol, ticket, exit_log.quantity, exit_log.client_order_id
        )
        return result
    except OrderNotFound:
        closed: OrderResult = await adapter.fetch_order(exit_log.symbol, order_id=ticket)
        price = closed.raw.get("closePrice") if isinstance(closed.raw, dict) else None
        if price is None:
            raise
        comment = str(closed.raw.get("comment") or "").lower()
        closed.raw["close_reason"] = (
            "sl" if "[sl" in comment else "tp" if "[tp" in comment else "external"
        )
        closed.side = exit_log.direction
        closed.status = "filled"
        closed.amount = closed.filled = exit_log.quantity
        closed.average = Decimal(str(price))
        return closed
