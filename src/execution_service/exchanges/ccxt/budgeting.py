"""ccxt's side of the request budget (issue #19): the weight of each request from ccxt's own
`rateLimit` and per-endpoint `cost`, a table of the limits venues publish where ccxt has none,
and the hook that makes every HTTP request of a client wait for its (venue, egress) budget.

ccxt's own limiter is switched off on a budgeted client: it spaces each client's requests by
`rateLimit x cost` whatever the venue's budget has left, so an idle budget would still wait.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt

from execution_service.exchanges.budget import BudgetSpec, VenueBudget, VenueLimits, Window
from execution_service.exchanges.values import retry_after_seconds


@dataclass(frozen=True)
class Published:
    """A venue's published limits, and how many of its weight units one ccxt cost unit is."""

    limits: VenueLimits
    weight_per_cost: float  # not money


_BINANCE_ORDERS = (Window(100, 10), Window(200_000, 86_400))
_SPOT_COUNTS = (("x-mbx-order-count-10s", 10.0), ("x-mbx-order-count-1d", 86_400.0))
_FUTURES_COUNTS = (("x-mbx-order-count-10s", 10.0), ("x-mbx-order-count-1m", 60.0))
# Binance: 6,000 request weight per minute per IP (spot), 2,400 (futures); ccxt's spot costs are
# in units of its 50 ms rateLimit (weight 20 = cost 4), its futures costs are the weights.
PUBLISHED: dict[str, Published] = {
    "binance": Published(
        VenueLimits(Window(6000, 60), _BINANCE_ORDERS, "x-mbx-used-weight-1m", _SPOT_COUNTS),
        5.0,
    ),
    "binanceusdm": Published(
        VenueLimits(
            Window(2400, 60),
            (Window(300, 10), Window(1200, 60)),
            "x-mbx-used-weight-1m",
            _FUTURES_COUNTS,
        ),
        1.0,
    ),
    "binancecoinm": Published(
        VenueLimits(Window(2400, 60), (Window(1200, 60),), "x-mbx-used-weight-1m"), 1.0
    ),
}


def listed_weight(exchange_id: str, path: Any, params: dict[str, Any]) -> int | None:
    """Binance spot's weight for a 24 h ticker of a list of symbols (1-20: 2, 21-100: 40, more:
    80), which ccxt knows only as "no symbol" (cost 40: weight 200, the read share of a minute
    in 24 requests). The monitor asks it once a tick for every account on the venue (issue
    #20). None: ccxt's cost stands."""
    if exchange_id != "binance" or path != "ticker/24hr" or "symbols" not in params:
        return None
    try:
        count = len(json.loads(params["symbols"]))  # ccxt sends the JSON list of market ids
    except (TypeError, ValueError):
        return None
    return 2 if count <= 20 else 40 if count <= 100 else 80


def published(exchange_id: str, rate_limit_ms: float) -> Published:
    """The venue's table, or what ccxt's `rateLimit` implies: one cost unit per `rateLimit` ms."""
    if exchange_id in PUBLISHED:
        return PUBLISHED[exchange_id]
    per_minute = max(1, int(60_000 / max(rate_limit_ms, 1)))
    return Published(VenueLimits(Window(per_minute, 60)), 1.0)


def venue_key(exchange_id: str, sandbox: bool, api_base_url: str | None) -> str:
    key = exchange_id + ("-sandbox" if sandbox else "")
    if api_base_url:  # a venue at another address (a test fake, a regional endpoint)
        parts = urlsplit(api_base_url)
        key += f"@{parts.hostname}:{parts.port}" if parts.port else f"@{parts.hostname}"
    return key


def is_order(method: str, path: str) -> bool:
    return method.upper() == "POST" and "order" in path.lower() and "cancel" not in path.lower()


def meter(ex: Any, spec: BudgetSpec, venue: str, exchange_id: str) -> VenueBudget:
    """Make every request of `ex` wait for its budget, and read the venue's answer back."""
    table = published(exchange_id, float(ex.rateLimit))  # not money
    limits = spec.limits or table.limits
    if spec.weight is not None:
        limits = replace(limits, weight=spec.weight)
    budget = spec.budgets.get(venue, spec.egress, limits)
    account = hashlib.sha256(str(ex.apiKey or "public").encode()).hexdigest()[:16]
    original, handle_errors = ex.fetch2, ex.handle_errors
    status: list[int] = [0]  # the HTTP status of this client's last answer

    def seen(code: Any, *args: Any) -> Any:
        status[0] = int(code) if str(code).isdigit() else 0
        return handle_errors(code, *args)

    async def fetch2(
        path: Any, api: Any = "public", method: str = "GET", params: Any = None, config: Any = None
    ) -> Any:
        params, config = params or {}, config or {}
        weight = listed_weight(exchange_id, path, params)
        if weight is None:
            cost = ex.calculate_rate_limiter_cost(api, method, path, params, config)
            weight = max(1, math.ceil(float(cost) * table.weight_per_cost - 1e-9))  # not money
        ticket = await budget.acquire(weight, account=account, order=is_order(method, str(path)))
        status[0] = 0
        try:
            return await original(path, api, method, params, config)
        except ccxt.BaseError as e:
            if status[0] in (418, 429):
                await _stopped(ex, budget, status[0], e)
            raise
        finally:
            budget.landed(ticket)
            await _read_back(ex, budget, limits, account)

    ex.handle_errors, ex.fetch2 = seen, fetch2
    return budget


async def _stopped(ex: Any, budget: VenueBudget, status: int, e: Exception) -> None:
    """A 429/418: pause the (venue, egress) for everyone, unless it is one account's order count
    (Binance -1015), which is that account's alone."""
    text = str(e)
    if "-1015" in text or "Too many new orders" in text:
        return
    headers = {str(k).lower(): v for k, v in (ex.last_response_headers or {}).items()}
    await budget.pause(status, retry_after_seconds(headers.get("retry-after")))


async def _read_back(ex: Any, budget: VenueBudget, limits: VenueLimits, account: str) -> None:
    """The venue's own counts (weight, and this account's orders) are floors on ours."""
    counts = dict(limits.order_headers)
    for name, value in (ex.last_response_headers or {}).items():
        header = str(name).lower()
        with contextlib.suppress(ValueError):
            if header == limits.weight_header:
                await budget.report_used(int(value))
            elif header in counts:
                await budget.report_orders(account, counts[header], int(value))
