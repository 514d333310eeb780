"""Client order ids: deterministic from what the order is for, so a lost answer is found again
at the venue by the same id and an order is never sent twice under two names."""

from __future__ import annotations


def entry_client_order_id(prefix: str, signal_id: int, connection_id: int) -> str:
    """The entry order of a signal on one connection."""
    return f"{prefix}-{signal_id}-{connection_id}-e"


def exit_client_order_id(prefix: str, position_id: int, n: int) -> str:
    """The n-th exit order of a position (a partial take-profit, then the rest, ...)."""
    return f"{prefix}-p{position_id}-x{n}"
