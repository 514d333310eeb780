"""An account's order updates pushed by its venue (ccxt.pro `watch_orders`), for the order
tracker to look those orders up at once instead of at its next pass. The stream says which
orders changed; what they became is still read by client order id (the REST lookup the tracker
trusts), so a lost or garbled event costs latency, never a wrong booking.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import ccxt.async_support as ccxt

from execution_service.exchanges.base import TemporaryError
from execution_service.exchanges.ccxt.client import build_client
from execution_service.exchanges.ccxt.errors import translate

# ccxt.pro hands an update to a waiting `watch_orders` only: one that lands while nobody waits
# (two events in one read, or between two calls) is kept in its order cache but resolves
# nothing. Each call therefore reads the whole cache for what changed since the last, and waits
# at most this long, so an update that resolved nothing is still seen within it.
WAIT_SECONDS = 0.25


class OrderStream:
    def __init__(self, exchange_id: str, secrets: list[str], **client: Any) -> None:
        self.exchange_id = exchange_id
        self._secrets = secrets
        self._ex: Any = build_client(exchange_id, secrets=secrets, streaming=True, **client)
        self._seen: dict[str, tuple[Any, ...]] = {}

    async def changes(self) -> list[str]:
        """The client order ids of the orders the venue says changed since the last call
        (waits up to `WAIT_SECONDS` for one; [] if none)."""
        changed = self._changed()  # landed while nobody waited: no need to wait for more
        if changed:
            return changed
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ex.watch_orders(), WAIT_SECONDS)
        except ccxt.BaseError as e:
            raise translate(e, self._secrets, self._ex.last_response_headers) from None
        except Exception as e:  # the socket's own failures: the caller reconnects
            raise TemporaryError(
                f"{type(e).__name__} on {self.exchange_id}'s order stream"
            ) from None
        return self._changed()

    def _changed(self) -> list[str]:
        changed, seen = [], {}
        for order in list(self._ex.orders or []):
            client_id = order.get("clientOrderId")
            if not client_id:
                continue
            state = (order.get("status"), order.get("filled"), order.get("lastUpdateTimestamp"))
            seen[client_id] = state
            if self._seen.get(client_id) != state:
                changed.append(str(client_id))
        self._seen = seen  # what left the cache is forgotten
        return changed

    async def close(self) -> None:
        await self._ex.close()
