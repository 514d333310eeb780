"""ccxt's exceptions as base.py's `ExchangeError` hierarchy, with messages scrubbed of URLs,
request bodies and credentials (ccxt's text can carry all three)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import ccxt.async_support as ccxt

from execution_service.exchanges.base import (
    AddressRefused,
    AuthFailed,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    TemporaryError,
)
from execution_service.exchanges.values import retry_after_seconds
from execution_service.outbound.policy import UrlRefused

_URL = re.compile(r"https?://\S+")
_AUTH_CODES = re.compile(r'"code"\s*:\s*-(2015|2014|1022)\b')


def translate(
    e: Exception, secrets: Sequence[str], headers: Mapping[str, Any] | None
) -> ExchangeError:
    """Our error for a ccxt one; `headers` are those of the answer that failed (for 429/418)."""
    message = scrub(e, secrets)
    refused = _refusal(e)
    if refused is not None:
        return AddressRefused(f"the venue's address is refused: {refused.reason}")
    # Order matters: OrderNotFound subclasses InvalidOrder; PermissionDenied and
    # AccountSuspended subclass AuthenticationError; BadSymbol subclasses BadRequest.
    if isinstance(e, ccxt.OrderNotFound):
        return OrderNotFound(message)
    if isinstance(e, ccxt.InsufficientFunds):
        return InsufficientFunds(message)
    if isinstance(e, ccxt.AuthenticationError):
        return AuthFailed(message)
    if isinstance(e, ccxt.InvalidOrder | ccxt.BadRequest):
        return InvalidOrder(message)
    if isinstance(e, ccxt.DDoSProtection) and _AUTH_CODES.search(str(e)):
        # Binance answers a revoked or wrong key with -2015 (and -2014/-1022 for bad keys
        # and signatures); once a client has authenticated, ccxt files -2015 under
        # DDoSProtection (it also means a temporary IP ban). The exchange refused the request
        # before acting on it, so this is an auth failure, not an unknown outcome.
        return AuthFailed(message)
    if isinstance(e, ccxt.OperationFailed):
        # NetworkError (timeouts, 5xx, rate limits, DDoS bans) and "status unknown" answers
        # all live under OperationFailed, which in ccxt is NOT an ExchangeError subclass.
        return TemporaryError(message, retry_after=_retry_after(e, headers))
    return ExchangeError(message)


def _refusal(e: BaseException) -> UrlRefused | None:
    """The outbound policy's refusal behind a ccxt network error, if that is what it was."""
    seen: BaseException | None = e
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, UrlRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _retry_after(e: Exception, headers: Mapping[str, Any] | None) -> float | None:
    if not isinstance(e, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return None
    value = next((v for k, v in (headers or {}).items() if k.lower() == "retry-after"), None)
    return retry_after_seconds(value)


def _reason(body: dict[str, Any]) -> str | None:
    """The venue's own code and reason: `{code, msg}` (Binance, OKX), `{retCode, retMsg}`
    (Bybit), and where one order of a batch failed, the reason nested in `data[0]` (OKX's
    `sCode`/`sMsg`, under a top-level "All operations failed")."""
    data = body.get("data")
    item = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    if item.get("sMsg") and str(item.get("sCode", "0")) != "0":
        return f"{item.get('sCode')} {item['sMsg']}".strip()
    msg = body.get("msg") or body.get("retMsg") or body.get("message") or body.get("error")
    code = body.get("code", body.get("retCode"))
    if not msg:
        return None
    return f"{code} {msg}" if code is not None else str(msg)


def scrub(e: Exception, secrets: Sequence[str]) -> str:
    """Class name + the exchange's own message; no URLs, bodies or credentials."""
    text = str(e)
    start, end = text.find("{"), text.rfind("}")
    detail = None
    if 0 <= start < end:
        try:
            body = json.loads(text[start : end + 1])
        except ValueError:
            body = None
        if isinstance(body, dict):
            detail = _reason(body)
    if not detail:
        detail = _URL.sub("<url>", text)
    for secret in secrets:
        detail = str(detail).replace(secret, "***")
    return f"{type(e).__name__}: {str(detail)[:200]}"
