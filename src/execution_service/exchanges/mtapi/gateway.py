"""One session on an mtapi.io-style REST gateway.

The gateway takes plain GETs with query parameters. `Connect` (user, password, host, port)
answers a session token that every later call carries as `id`; errors are JSON
`{message, code}`. httpx stays inside this module, and JSON numbers are parsed straight into
Decimal (never through float) so no binary noise reaches the service's money columns.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any, TypeVar

import httpx

from execution_service.exchanges.base import (
    AddressRefused,
    AuthFailed,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    TemporaryError,
)
from execution_service.exchanges.retry import retry_read
from execution_service.exchanges.values import retry_after_seconds
from execution_service.outbound.http import pinned_client
from execution_service.outbound.policy import OutboundPolicy, UrlRefused

T = TypeVar("T")

# Gateway error codes by what they mean for the service. Anything else named INVALID_* is an
# invalid order; anything else at all a plain ExchangeError.
_NOT_FOUND = frozenset({"INVALID_TICKET", "TICKET_NOT_FOUND", "ORDER_NOT_FOUND"})
_NO_MONEY = frozenset({"NO_MONEY", "NOT_ENOUGH_MONEY"})
_AUTH = frozenset(
    {"INVALID_ACCOUNT", "INVALID_PASSWORD", "AUTH_FAILED", "ACCOUNT_DISABLED", "CONNECT_FAILED"}
)
_TEMPORARY = frozenset(
    {"SERVER_BUSY", "NO_CONNECTION", "NOT_CONNECTED", "TIMEOUT", "TRADE_TIMEOUT"}
    | {"TOO_MANY_REQUESTS", "BROKER_BUSY", "TRADE_CONTEXT_BUSY"}
)
# A requote or off-quotes answer is a definite "not placed", so it is an invalid order (the
# service records it rejected) rather than a temporary error (which means "outcome unknown").
_INVALID_ORDER = frozenset(
    {"MARKET_CLOSED", "TRADE_DISABLED", "REQUOTE", "OFF_QUOTES", "PRICE_CHANGED", "TOO_MANY_ORDERS"}
)


class TokenExpired(ExchangeError):
    """INVALID_TOKEN: handled inside the mtapi package by reconnecting; never leaves it."""


class Gateway:
    """The HTTP session of one MetaTrader account: its token, reconnects and error mapping."""

    def __init__(
        self,
        base_url: str,
        credentials: dict[str, str],
        *,
        timeout_ms: int,
        read_retries: int,
        retry_base_delay: float,
        outbound: OutboundPolicy,
    ) -> None:
        missing = [k for k in ("user", "password", "host") if not credentials.get(k)]
        if missing:
            raise AuthFailed(f"mtapi credentials lack {', '.join(missing)}")
        self._login = {k: str(credentials[k]) for k in ("user", "password", "host")}
        if credentials.get("port"):
            self._login["port"] = str(credentials["port"])
        # Never echoed in messages (and the Connect URL, which carries them, never is either).
        self._secrets = [v for v in credentials.values() if v and len(v) >= 4]
        self._read_retries = read_retries
        self._retry_base_delay = retry_base_delay
        # Only to addresses the outbound policy allows, pinned per request; no redirects.
        self._client = pinned_client(
            outbound, base_url=base_url.rstrip("/"), timeout=timeout_ms / 1000
        )
        self._token: str | None = None
        self._connect_lock = asyncio.Lock()

    async def read(self, path: str, params: dict[str, str]) -> Any:
        return await retry_read(
            lambda: self.call(path, params),
            retries=self._read_retries,
            base_delay=self._retry_base_delay,
        )

    async def call(self, path: str, params: dict[str, str]) -> Any:
        """One authenticated call; on an expired token, reconnect and call once more. Only for
        reads and idempotent writes: OrderSend and partial closes have their own paths."""
        token = await self.session()
        try:
            return await self.get(path, {"id": token, **params})
        except TokenExpired:
            token = await self.reconnect(token)
        try:
            return await self.get(path, {"id": token, **params})
        except TokenExpired:
            raise TemporaryError(f"mtapi refused a fresh session token on {path}") from None

    async def session(self) -> str:
        return self._token if self._token is not None else await self.reconnect(None)

    async def reconnect(self, stale: str | None) -> str:
        """Connect for a new token, once for all the tasks that found `stale` expired."""
        async with self._connect_lock:
            if self._token is not None and self._token != stale:
                return self._token  # another task reconnected while this one waited
            self._token = None
            body = await self.get("/Connect", self._login)
            token = str(body).strip() if isinstance(body, str | int) else ""  # "1234" parses
            if not token:
                raise ExchangeError("mtapi Connect answered without a session token")
            self._token = token
            return token

    async def get(self, path: str, params: dict[str, str]) -> Any:
        """One GET. Messages name the call, never the URL: Connect's carries the password."""
        failure = refused = None
        try:
            response = await self._client.get(path, params=params)
        except httpx.TimeoutException:
            failure = f"mtapi {path} timed out"
        except httpx.HTTPError as e:  # refused, reset, protocol errors
            if isinstance(e.__cause__, UrlRefused):
                refused = f"mtapi {path}: the gateway's address is refused ({e.__cause__.reason})"
            failure = f"mtapi {path}: {type(e).__name__}"
        if refused is not None:
            raise AddressRefused(refused)
        if failure is not None:  # raised out here: no chained httpx error holding the URL
            raise TemporaryError(failure)
        status = response.status_code
        if 300 <= status < 400:  # never followed: a gateway that redirects is misconfigured
            raise ExchangeError(f"mtapi {path} answered a redirect (HTTP {status}), not followed")
        try:
            body: Any = json.loads(response.text, parse_float=Decimal)
        except ValueError:
            body = response.text  # Connect answers its token as plain text
        if status >= 500 or status == 429:
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            raise TemporaryError(f"mtapi {path} answered HTTP {status}", retry_after=retry_after)
        if isinstance(body, dict) and isinstance(body.get("code"), str) and "message" in body:
            raise self._translate(path, body)
        if status in (401, 403):
            raise AuthFailed(f"mtapi {path} answered HTTP {status}")
        if status >= 400:
            raise ExchangeError(f"mtapi {path} answered HTTP {status}")
        return body

    async def close(self) -> None:
        await self._client.aclose()

    def _translate(self, path: str, body: dict[str, Any]) -> ExchangeError:
        code = str(body["code"]).upper()
        message = self._scrub(f"{code}: {body.get('message') or ''}")
        if code == "INVALID_TOKEN":
            return TokenExpired(message)
        if code in _TEMPORARY:
            return TemporaryError(message)
        if path == "/Connect" or code in _AUTH:
            return AuthFailed(message)  # whatever else stops a login is the login's problem
        if code in _NOT_FOUND:
            return OrderNotFound(message)
        if code in _NO_MONEY or "not enough money" in message.lower():
            return InsufficientFunds(message)
        if code in _INVALID_ORDER or code.startswith("INVALID_"):
            return InvalidOrder(message)
        return ExchangeError(message)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:200]


def expect(body: Any, kind: type[T], what: str) -> T:
    if not isinstance(body, kind):
        raise ExchangeError(f"mtapi {what} answered an unexpected {type(body).__name__}")
    return body
