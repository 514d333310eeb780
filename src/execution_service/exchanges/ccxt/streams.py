"""A venue's pushed feeds (ccxt.pro, inside the ccxt package), opened on first use and closed
with their adapter: an account's order updates (`order_stream`) and public tickers.

The ticker stream is ccxt.pro's `watch_tickers` on a client built like the REST one (the same
outbound policy and the same base-URL rewrite, which moves its websocket URLs too; no
credentials: the data is public), sharing the REST client's loaded markets. What it hands out is
our own `Ticker`, and its failures are our `ExchangeError`s: a dropped or refused socket is a
`TemporaryError`, and the caller reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any

import ccxt.async_support as ccxt

from execution_service.exchanges.base import NotSupported, TemporaryError, Ticker
from execution_service.exchanges.capabilities import Stream, VenueCapabilities
from execution_service.exchanges.ccxt.client import build_client
from execution_service.exchanges.ccxt.errors import translate
from execution_service.exchanges.ccxt.order_stream import OrderStream
from execution_service.exchanges.ccxt.parsing import info_of, to_ticker
from execution_service.exchanges.values import to_decimal

# ccxt.pro resolves a pushed ticker only for a waiting `watch_tickers`: one landing while the
# caller stores the last batch is kept in its ticker cache and resolves nothing. Each call reads
# the cache for what changed since the last (that is the batch), and waits at most this long
# for news, so the caller can count the venue's silence.
WAIT_SECONDS = 1.0


class TickerStream:
    """The pushed tickers of one set of the venue's symbols (a new set: a new subscription)."""

    def __init__(self, exchange_id: str, secrets: list[str], **client: Any) -> None:
        self.exchange_id = exchange_id
        self._secrets = secrets
        self._client = client
        self._ex: Any = None
        self._watching: tuple[str, ...] = ()
        self._seen: dict[str, tuple[Any, ...]] = {}

    @property
    def client(self) -> Any:
        """ccxt.pro's client (None until the first watch)."""
        return self._ex

    async def changes(self, symbols: list[str], markets_from: Any = None) -> dict[str, Ticker]:
        """The tickers of `symbols` (the venue's names) pushed since the last call, by symbol;
        waits up to `WAIT_SECONDS` for one ({} if none came). `markets_from`: a client of the
        same venue whose loaded markets the stream's client takes instead of loading its own."""
        wanted = tuple(sorted(set(symbols)))
        if wanted != self._watching:
            await self._subscribe(wanted, markets_from)
        if not wanted:  # none the venue lists: nothing will come (the caller counts silence)
            await asyncio.sleep(WAIT_SECONDS)
            return {}
        changed = self._changed()  # landed while nobody waited: no need to wait for more
        if changed:
            return changed
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ex.watch_tickers(list(wanted)), WAIT_SECONDS)
        except ccxt.BaseError as e:
            await self.close()  # the next call starts afresh: a new socket, a new subscription
            raise translate(e, self._secrets, None) from None
        except Exception as e:  # the socket's own failures: the caller reconnects
            await self.close()
            raise TemporaryError(
                f"{type(e).__name__} on {self.exchange_id}'s ticker stream"
            ) from None
        return self._changed()

    async def _subscribe(self, wanted: tuple[str, ...], markets_from: Any) -> None:
        """A new set is a new client: ccxt.pro opens a socket per set of symbols it is asked
        for and keeps the old one subscribed; closing the old client ends both."""
        old, self._ex = self._ex, None
        if old is not None:
            await old.close()
        self._watching = wanted
        self._seen = {s: state for s, state in self._seen.items() if s in wanted}
        if not wanted:
            return
        ex = build_client(
            self.exchange_id, {}, self._secrets, streaming=True, enable_rate_limit=False,
            **self._client,
        )  # fmt: skip
        source = markets_from if markets_from is not None and markets_from.markets else old
        if source is not None and source.markets:
            ex.set_markets_from_exchange(source)  # no exchangeInfo request of its own
        self._ex = ex

    def _changed(self) -> dict[str, Ticker]:
        changed: dict[str, Ticker] = {}
        cache = self._ex.tickers or {}
        for symbol in self._watching:
            raw = cache.get(symbol)
            if not isinstance(raw, dict):
                continue
            state = (raw.get("timestamp"), raw.get("last"), info_of(raw).get("c"))
            if self._seen.get(symbol) == state:
                continue
            self._seen[symbol] = state
            ticker = pushed_ticker(raw, symbol)
            if ticker is not None:
                changed[symbol] = ticker
        return changed

    async def close(self) -> None:
        ex, self._ex, self._watching = self._ex, None, ()
        if ex is not None:
            with contextlib.suppress(Exception):  # a socket already broken closes as it can
                await ex.close()


def pushed_ticker(raw: dict[str, Any], symbol: str) -> Ticker | None:
    """Our ticker from ccxt.pro's: the last price as the venue wrote it (Binance's streams call
    it `c`), not ccxt's float, where the venue's own string is there."""
    ticker = to_ticker(raw, symbol)
    exact = info_of(raw).get("c")
    price = to_decimal(exact) if isinstance(exact, str) else None
    if ticker is None or price is None or price <= 0:
        return ticker
    return dataclasses.replace(ticker, price=price)


class Streams:
    """One adapter's pushed feeds, each opened on its first use (where its venue is proven to
    push it: `capabilities.streams`)."""

    def __init__(
        self,
        exchange_id: str,
        capabilities: VenueCapabilities,
        credentials: dict[str, str],
        secrets: list[str],
        client: Mapping[str, Any],
    ) -> None:
        self.exchange_id = exchange_id
        self._capabilities = capabilities
        self._credentials = credentials
        self._secrets = secrets
        self._client = dict(client)
        self._orders: OrderStream | None = None
        self._tickers: TickerStream | None = None

    async def order_changes(self, markets_from: Any = None) -> list[str]:
        """The client order ids the venue pushed changes of. `markets_from`: the REST client,
        whose loaded markets the stream's shares."""
        if Stream.orders not in self._capabilities.streams:
            raise NotSupported(f"{self.exchange_id}: no order stream proven here")
        if self._orders is None:
            self._orders = OrderStream(
                self.exchange_id, self._secrets, credentials=self._credentials,
                enable_rate_limit=False, **self._client,
            )  # fmt: skip
        return await self._orders.changes(markets_from)

    async def tickers(self, names: Mapping[str, str], markets_from: Any) -> dict[str, Ticker]:
        """The pushed tickers of our symbols (`names`: each one's name at the venue), keyed by
        ours. `markets_from`: the REST client, whose loaded markets the stream's shares."""
        if Stream.tickers not in self._capabilities.streams:
            raise NotSupported(f"{self.exchange_id}: no ticker stream proven here")
        if self._tickers is None:
            self._tickers = TickerStream(self.exchange_id, self._secrets, **self._client)
        pushed = await self._tickers.changes(sorted(set(names.values())), markets_from)
        return {s: pushed[v] for s, v in names.items() if v in pushed}

    async def close(self) -> None:
        for stream in (self._orders, self._tickers):
            if stream is not None:
                await stream.close()
        self._orders = self._tickers = None
