"""An account's order updates pushed by its venue (ccxt.pro `watch_orders`), for the order
tracker to look those orders up at once instead of at its next pass. The stream says which
orders changed; what they became is still read by client order id (the REST lookup the tracker
trusts), so a lost or garbled event costs latency, never a wrong booking.

A failed watch closes ccxt.pro's client: the next call starts afresh (a new socket, a new
subscription), rather than trusting a client a failure may have left half subscribed.
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
        self._client = client
        self._ex: Any = None
        self._subscribed = False
        self._seen: dict[str, tuple[Any, ...]] = {}

    async def changes(self, markets_from: Any = None) -> list[str]:
        """The client order ids of the orders the venue says changed since the last call
        (waits up to `WAIT_SECONDS` for one; [] if none). `markets_from`: a client of the same
        venue whose loaded markets the stream's client takes instead of loading its own."""
        if self._ex is None:
            self._ex = build_client(
                self.exchange_id, secrets=self._secrets, streaming=True, **self._client
            )
        if self._ex.markets is None and markets_from is not None and markets_from.markets:
            self._ex.set_markets_from_exchange(markets_from)
        changed = self._changed()  # landed while nobody waited: no need to wait for more
        if changed:
            return changed
        try:
            if not self._subscribed:
                await self._subscribe()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel that
            # lands as the watch returns, and the stream's task then never ends (a worker's
            # shutdown waiting on it until SIGKILL, seen with 150 streams).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WAIT_SECONDS):
                    await self._ex.watch_orders()
        except Exception as e:
            headers = self._ex.last_response_headers
            await self.close()
            cause = _ccxt_error(e)
            if cause is not None:
                raise translate(cause, self._secrets, headers) from None
            # The socket's own failures: the caller reconnects.
            raise TemporaryError(
                f"{type(e).__name__} on {self.exchange_id}'s order stream"
            ) from None
        return self._changed()

    async def _subscribe(self) -> None:
        """Subscribe (ccxt.pro's `authenticate`, as `watch_orders` calls it), given the client's
        own timeout rather than `WAIT_SECONDS`: ccxt 4.5.90 marks Binance spot's account as
        subscribed before its signed request is answered, so a subscribe cut short by the short
        wait would leave the client believing in a subscription the venue may never have made."""
        ex = self._ex
        kind, sub, params = ex.resolve_auth_type("watchOrders", None, {})
        auth = ex.extend(params, {"type": kind, "symbol": None, "subType": sub})
        async with asyncio.timeout(max(ex.timeout / 1000, WAIT_SECONDS)):
            await ex.authenticate(auth)
        self._subscribed = True

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
        ex, self._ex, self._subscribed = self._ex, None, False
        if ex is not None:
            with contextlib.suppress(Exception):  # a socket already broken closes as it can
                await ex.close()


def _ccxt_error(e: BaseException) -> ccxt.BaseError | None:
    """The venue's refusal behind `e`. ccxt 4.5.90's Binance spot subscribe, refused (a bad
    signature: -1022), raises KeyError from its own clean-up (its error handler has already
    dropped the subscription the clean-up deletes again): the refusal is the KeyError's context.
    That clean-up also never settles its pending subscribe, which would hold every later watch
    on this client: hence a new client after any failure."""
    if isinstance(e, ccxt.BaseError):
        return e
    if isinstance(e, KeyError) and isinstance(e.__context__, ccxt.BaseError):
        return e.__context__
    return None
