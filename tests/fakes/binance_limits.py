"""Binance's own request limits, enforced by the fake on its side (per source IP, per API key).

- Request weight per IP in fixed windows (Binance: 6,000 per minute, windows on the minute):
  every answered request adds its endpoint's weight; the running total comes back in
  `X-MBX-USED-WEIGHT-1M`.
- Past the limit: 429 (-1003) with `Retry-After` (seconds to the window's end). A request from an
  IP that got a 429 and keeps sending before that time is answered 418 (IP banned) with a
  `Retry-After` of `ban_seconds`, and so is every request until the ban ends.
- Orders per API key (Binance: 100 per 10 s, 200,000 per day): `X-MBX-ORDER-COUNT-10S` and
  `-1D` on order answers; past either, 429 (-1015).

The weights are Binance's published ones (also ccxt's `binance.api` costs times 5).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

# (method, path) -> weight, or (weight with a symbol, weight without)
WEIGHTS: dict[tuple[str, str], tuple[int, int]] = {
    ("GET", "/api/v3/ping"): (1, 1),
    ("GET", "/api/v3/time"): (1, 1),
    ("GET", "/api/v3/exchangeInfo"): (20, 20),
    ("GET", "/api/v3/ticker/price"): (2, 4),
    ("GET", "/api/v3/ticker/24hr"): (2, 80),
    ("GET", "/api/v3/account"): (20, 20),
    ("POST", "/api/v3/order"): (1, 1),
    ("GET", "/api/v3/order"): (4, 4),
    ("DELETE", "/api/v3/order"): (1, 1),
    ("GET", "/api/v3/openOrders"): (6, 80),
    ("GET", "/api/v3/myTrades"): (20, 20),
    # Order lists (binance_oco.py)
    ("POST", "/api/v3/orderList/oco"): (1, 1),
    ("GET", "/api/v3/orderList"): (4, 4),
    ("DELETE", "/api/v3/orderList"): (1, 1),
    ("GET", "/api/v3/openOrderList"): (6, 6),
    ("GET", "/api/v3/allOrderList"): (20, 20),
}
# How many orders a request places, against the per-key order limits: an OCO is two.
ORDERS: dict[tuple[str, str], int] = {
    ("POST", "/api/v3/order"): 1,
    ("POST", "/api/v3/orderList/oco"): 2,
}


def orders_in(method: str, path: str) -> int:
    return ORDERS.get((method, path), 0)


def weight_of(method: str, path: str, params: dict[str, str]) -> int:
    with_symbol, without = WEIGHTS.get((method, path), (1, 1))
    if "symbols" in params:
        count = params["symbols"].count(",") + 1
        return 2 if count <= 20 else 40 if count <= 100 else 80
    return with_symbol if "symbol" in params else without


@dataclass
class Refusal:
    status: int
    code: int
    msg: str
    retry_after: float


@dataclass
class BinanceLimits:
    weight_limit: int = 6000
    window_seconds: float = 60.0  # not money
    orders_per_10s: int = 100
    orders_per_day: int = 200_000
    order_window_seconds: float = 10.0  # not money
    ban_seconds: float = 120.0  # not money
    clock: Callable[[], float] = time.time
    # state
    used: dict[tuple[str, int], int] = field(default_factory=dict)  # (ip, window) -> weight
    warned_until: dict[str, float] = field(default_factory=dict)  # ip -> end of its 429 window
    banned_until: dict[str, float] = field(default_factory=dict)
    orders: dict[tuple[str, str, int], int] = field(default_factory=dict)  # (key, span, window)
    refused: Counter[int] = field(default_factory=Counter)  # status -> how many

    def _window(self, span: float) -> int:
        return math.floor(self.clock() / span)

    def _left(self, span: float) -> float:
        return span - self.clock() % span

    def used_weight(self, ip: str) -> int:
        return self.used.get((ip, self._window(self.window_seconds)), 0)

    def admit(self, ip: str, weight: int) -> Refusal | None:
        """Count one request of `weight` from `ip`, or say why it is refused."""
        now = self.clock()
        if self.banned_until.get(ip, 0) > now:
            return self._refuse(418, self.banned_until[ip] - now)
        if self.warned_until.get(ip, 0) > now:  # kept sending after a 429: banned
            self.banned_until[ip] = now + self.ban_seconds
            return self._refuse(418, self.ban_seconds)
        key = (ip, self._window(self.window_seconds))
        if self.used.get(key, 0) + weight > self.weight_limit:
            left = self._left(self.window_seconds)
            self.warned_until[ip] = now + left
            return self._refuse(429, left)
        self.used[key] = self.used.get(key, 0) + weight
        return None

    def _refuse(self, status: int, retry_after: float) -> Refusal:
        self.refused[status] += 1
        if status == 418:
            until = int((self.clock() + retry_after) * 1000)
            msg = f"Way too much request weight used; IP banned until {until}."
        else:
            msg = (
                f"Too much request weight used; current limit is {self.weight_limit} request "
                "weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid "
                "polling the API."
            )
        return Refusal(status, -1003, msg, max(1.0, math.ceil(retry_after)))

    def admit_order(self, api_key: str, count: int = 1) -> Refusal | None:
        for span, limit, name in (
            (self.order_window_seconds, self.orders_per_10s, "10S"),
            (86400.0, self.orders_per_day, "1D"),
        ):
            if self.orders.get((api_key, name, self._window(span)), 0) + count > limit:
                self.refused[429] += 1
                msg = f"Too many new orders; current limit is {limit} orders per {name}."
                return Refusal(429, -1015, msg, max(1.0, math.ceil(self._left(span))))
        for span, name in ((self.order_window_seconds, "10S"), (86400.0, "1D")):
            key = (api_key, name, self._window(span))
            self.orders[key] = self.orders.get(key, 0) + count
        return None

    def headers(self, ip: str, api_key: str | None, order: bool) -> dict[str, str]:
        out = {"X-MBX-USED-WEIGHT-1M": str(self.used_weight(ip))}
        if order and api_key:
            for span, name in ((self.order_window_seconds, "10S"), (86400.0, "1D")):
                count = self.orders.get((api_key, name, self._window(span)), 0)
                out[f"X-MBX-ORDER-COUNT-{name}"] = str(count)
        return out

    @property
    def refusals(self) -> int:
        return self.refused[429] + self.refused[418]
