"""Retry with exponential backoff for reads only.

Writes (order creation) are never retried: a timed-out create may have reached the exchange, and
resending it could trade twice. The caller reconciles such orders by client order id instead.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from execution_service.exchanges.base import TemporaryError

T = TypeVar("T")


async def retry_read(
    call: Callable[[], Awaitable[T]],
    *,
    retries: int,
    base_delay: float,
    max_delay: float = 10.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run `call`, retrying `TemporaryError` up to `retries` more times.

    The wait doubles each time (with jitter so many clients do not retry in step), unless the
    exchange said how long to wait (`retry_after`). A wait longer than `max_delay` is not sat
    out: the error is raised so the caller can reschedule instead of holding a worker."""
    attempt = 0
    while True:
        try:
            return await call()
        except TemporaryError as e:
            if attempt >= retries:
                raise
            if e.retry_after is not None:
                delay = e.retry_after
            else:
                delay = base_delay * (2**attempt) * (0.5 + random.random() / 2)
            if delay > max_delay:
                raise
            attempt += 1
            await sleep(delay)
