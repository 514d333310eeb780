"""How a `CcxtAdapter` calls its ccxt client: reads retried, writes never, and every ccxt error
translated into ours at the boundary (secrets scrubbed from its text)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import ccxt.async_support as ccxt

from execution_service.exchanges.base import ExchangeBusy, ExchangeError, TemporaryError
from execution_service.exchanges.ccxt.errors import translate
from execution_service.exchanges.retry import retry_read

T = TypeVar("T")


class CcxtCalls:
    exchange_id: str
    _ex: Any
    _secrets: list[str]
    _read_retries: int
    _retry_base_delay: float

    async def _read(self, call: Callable[[], Awaitable[T]]) -> T:
        return await retry_read(
            lambda: self._call(call), retries=self._read_retries, base_delay=self._retry_base_delay
        )

    async def _call(self, call: Callable[[], Awaitable[T]], *, unknown_outcome: bool = False) -> T:
        try:
            return await call()
        except ccxt.BaseError as e:
            raise self._translate(e) from None
        except ExchangeBusy:  # the request budget refused it before it was sent
            raise
        except Exception as e:
            # Not ccxt's (a parsing bug, a transport error): after a write the order may exist.
            error = TemporaryError if unknown_outcome else ExchangeError
            raise error(f"{type(e).__name__} from ccxt {self.exchange_id}") from None

    def _sync(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except ccxt.BaseError as e:
            raise self._translate(e) from None

    def _translate(self, e: Exception) -> ExchangeError:
        # ccxt keeps the headers of the last answer; on a 429/418 that is the one that failed.
        return translate(e, self._secrets, self._ex.last_response_headers)
