"""In-process limits: failed authentication per client, and signals per API key.

Both are per process: behind several API replicas the effective limit is the sum. They protect
the service and the exchanges from one noisy client; they are not a billing meter.
"""

from __future__ import annotations

import time
from collections import deque


class FailedAuthLimiter:
    """After `max_failures` failed authentications within `window` seconds, a scope (an address
    and key prefix, or a key prefix from anywhere) is refused (429) for `window` seconds without
    its keys being looked at: guessing keys gets slow. A failure may weigh less than 1 (the
    per-prefix scope counts each at 0.1: ten times the failures before it blocks)."""

    def __init__(self, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, deque[tuple[float, float]]] = {}
        self._blocked_until: dict[str, float] = {}

    def retry_after(self, client: str) -> float | None:
        until = self._blocked_until.get(client)
        if until is None:
            return None
        remaining = until - time.monotonic()
        if remaining <= 0:
            del self._blocked_until[client]
            return None
        return remaining

    def failed(self, client: str, weight: float = 1.0) -> None:  # not money
        now = time.monotonic()
        recent = self._failures.setdefault(client, deque())
        recent.append((now, weight))
        while recent and recent[0][0] < now - self.window:
            recent.popleft()
        if sum(w for _, w in recent) >= self.max_failures - 1e-9:
            self._blocked_until[client] = now + self.window
            recent.clear()
        if len(self._failures) > 10_000:  # forget the quiet ones; memory stays bounded
            self._failures = {k: v for k, v in self._failures.items() if v}

    def reset(self) -> None:
        self._failures.clear()
        self._blocked_until.clear()


class TokenBucket:
    """`rate` tokens a second up to `burst`, per key. `take` returns 0 or the seconds to wait."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[int, tuple[float, float]] = {}

    def take(self, key: int) -> float:
        now = time.monotonic()
        tokens, stamp = self._buckets.get(key, (float(self.burst), now))  # not money
        tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)  # not money
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        return 0.0

    def reset(self) -> None:
        self._buckets.clear()
