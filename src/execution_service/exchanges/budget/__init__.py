"""Request budgets per (venue, egress), shared by every account and, with Redis, every process
(issue #19). See `engine.VenueBudget`; the ccxt translation is in `exchanges/ccxt/budgeting.py`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from execution_service.exchanges.budget.engine import VenueBudget
from execution_service.exchanges.budget.model import (
    Call,
    Priority,
    VenueLimits,
    Window,
    calling,
    current_call,
    soon,
)
from execution_service.exchanges.budget.store import MemoryStore, Slot, Store


class Budgets:
    """Every budget of this process, on one store (memory, or Redis when EXEC_REDIS_URL is set)."""

    def __init__(
        self, store: Store | None = None, redis_url: str | None = None, scale: float = 1.0
    ) -> None:
        self.scale = scale  # not money
        if store is None and redis_url:
            from execution_service.exchanges.budget.redis_store import RedisStore

            store = RedisStore(redis_url)
        self.store: Store = store if store is not None else MemoryStore()
        self._budgets: dict[tuple[str, str], VenueBudget] = {}
        # Given to every budget: told of each new pause (see `VenueBudget.on_pause`).
        self.on_pause: Callable[[dict[str, Any]], Awaitable[None]] | None = None

    def get(self, venue: str, egress: str | None, limits: VenueLimits) -> VenueBudget:
        name = egress_name(egress)
        budget = self._budgets.get((venue, name))
        if budget is None:
            if self.scale != 1.0:
                limits = replace(
                    limits,
                    weight=self._scaled(limits.weight),
                    orders=tuple(self._scaled(w) for w in limits.orders),
                )
            budget = self._budgets[(venue, name)] = VenueBudget(self.store, venue, name, limits)
            budget.on_pause = self.on_pause
        return budget

    def _scaled(self, window: Window) -> Window:
        return replace(window, limit=max(1, int(window.limit * self.scale)))

    def all(self) -> list[VenueBudget]:
        return list(self._budgets.values())

    async def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            await close()


@dataclass(frozen=True)
class BudgetSpec:
    """What a client needs to be budgeted: the process's budgets and the egress it goes out by."""

    budgets: Budgets
    egress: str | None = None
    # Overrides the venue's published limits (tests; operators on other tiers).
    limits: VenueLimits | None = None
    # Replaces only the published weight window (EXEC_BUDGET_WEIGHT_WINDOWS).
    weight: Window | None = None


def egress_name(egress: str | None) -> str:
    """An egress group's name, or a proxy's host and port (never its credentials): what
    labels and keys carry."""
    if not egress:
        return "direct"
    if "://" not in egress:
        return egress
    parts = urlsplit(egress)
    return f"{parts.hostname or '?'}:{parts.port}" if parts.port else parts.hostname or "?"


__all__ = [
    "BudgetSpec",
    "Budgets",
    "Call",
    "MemoryStore",
    "Priority",
    "Slot",
    "Store",
    "VenueBudget",
    "VenueLimits",
    "Window",
    "calling",
    "current_call",
    "egress_name",
    "soon",
]
