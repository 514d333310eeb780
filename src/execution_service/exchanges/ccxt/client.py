"""Building the ccxt client of one account: its options, sandbox mode and base URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt

from execution_service.enums import MarketType
from execution_service.exchanges.ccxt.errors import translate


def build_client(
    exchange_id: str,
    credentials: dict[str, str],
    secrets: list[str],
    *,
    sandbox: bool,
    api_base_url: str | None,
    market_type: str,
    timeout_ms: int,
    enable_rate_limit: bool,
) -> Any:
    """A ccxt async client for `exchange_id` (known to ccxt); errors name none of `secrets`."""
    cls = getattr(ccxt, exchange_id)
    config: dict[str, Any] = {
        "apiKey": credentials.get("api_key"),
        "secret": credentials.get("api_secret"),
        "enableRateLimit": enable_rate_limit,
        "timeout": timeout_ms,
        "options": _options(market_type, is_binance(exchange_id)),
    }
    if credentials.get("passphrase"):
        config["password"] = credentials["passphrase"]
    ex = cls(config)
    try:
        if sandbox:
            ex.set_sandbox_mode(True)
    except ccxt.BaseError as e:
        raise translate(e, secrets, ex.last_response_headers) from None
    if api_base_url:
        # `hostname` alone is not enough: most exchanges spell out full URLs per API group.
        ex.urls["api"] = rewrite_urls(ex.urls["api"], api_base_url)
        if api_base_url.startswith("http://"):
            # The 250 ms sleep on close() lets TLS sessions wind down; plain HTTP has none.
            ex.timeout_on_exit = 0
    return ex


def is_binance(exchange_id: str) -> bool:
    """Binance or one of its ccxt subclasses (binanceusdm, binanceus, ...)."""
    return issubclass(getattr(ccxt, exchange_id), ccxt.binance)


def _options(market_type: str, is_binance: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"defaultType": market_type}
    if is_binance:
        # load_markets() is then exactly one request (exchangeInfo of the one market type):
        # no currencies/margin-pairs endpoints, which also need keys and extra weight.
        options["fetchMarkets"] = {
            "types": ["linear" if market_type == MarketType.swap else "spot"]
        }
        options["fetchCurrencies"] = False
        options["fetchMargins"] = False
        # Otherwise fetch_open_orders() without a symbol raises a rate-limit "warning".
        options["warnOnFetchOpenOrdersWithoutSymbol"] = False
    return options


def rewrite_urls(urls: Any, base_url: str) -> Any:
    """Point every URL in ccxt's nested `urls['api']` at `base_url`, keeping each path."""
    if isinstance(urls, dict):
        return {key: rewrite_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str) and "://" in urls:
        parts = urlsplit(urls)
        return base_url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    return urls
