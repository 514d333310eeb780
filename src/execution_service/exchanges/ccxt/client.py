"""Building the ccxt client of one account: its options, sandbox mode and base URL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt

from execution_service.exchanges.budget import BudgetSpec
from execution_service.exchanges.ccxt.budgeting import meter, venue_key
from execution_service.exchanges.ccxt.errors import translate
from execution_service.exchanges.ccxt.network import pin
from execution_service.exchanges.ccxt.venues import client_options, venue_of
from execution_service.outbound.egress import Egress
from execution_service.outbound.policy import OutboundPolicy


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
    outbound: OutboundPolicy,
    budget: BudgetSpec | None = None,
    egress: Egress | None = None,
    streaming: bool = False,
) -> Any:
    """A ccxt async client for `exchange_id` (known to ccxt); errors name none of `secrets`.
    `streaming`: ccxt.pro's client of it (websockets, over the same pinned session; its
    websocket URLs follow `api_base_url` like the others)."""
    if streaming:
        import ccxt.pro as pro

        cls = getattr(pro, exchange_id)
    else:
        cls = getattr(ccxt, exchange_id)
    config: dict[str, Any] = {
        "apiKey": credentials.get("api_key"),
        "secret": credentials.get("api_secret"),
        # A budgeted client waits for its (venue, egress) budget instead: never idle time.
        "enableRateLimit": enable_rate_limit and budget is None,
        "timeout": timeout_ms,
        "options": client_options(venue_of(exchange_id), market_type),
    }
    if credentials.get("passphrase"):
        config["password"] = credentials["passphrase"]
    if credentials.get("uid"):
        config["uid"] = credentials["uid"]
    ex = cls(config)
    if egress is not None:  # out by the operator's proxy, which the policy lets us reach
        outbound = egress.policy(outbound)
        if egress.proxy_url.startswith("https://"):
            ex.httpsProxy = egress.proxy_url
        else:
            ex.httpProxy = egress.proxy_url
    pin(ex, outbound)  # its session reaches only addresses the policy allows
    # Currencies come from the markets: their own endpoint is one more (signed, on OKX and
    # Bybit) request per load, for names and precisions the markets already carry.
    ex.has = {**ex.has, "fetchCurrencies": False}
    try:
        if sandbox:
            ex.set_sandbox_mode(True)
    except ccxt.BaseError as e:
        raise translate(e, secrets, ex.last_response_headers) from None
    if budget is not None:
        meter(ex, budget, venue_key(exchange_id, sandbox, api_base_url), exchange_id)
    if api_base_url:
        # `hostname` alone is not enough: most exchanges spell out full URLs per API group.
        original = ex.urls["api"]
        ex.urls["api"] = rewrite_urls(original, api_base_url)
        _keep_error_tables(ex, list(_url_pairs(original, ex.urls["api"])))
        if api_base_url.startswith("http://"):
            # The 250 ms sleep on close() lets TLS sessions wind down; plain HTTP has none.
            ex.timeout_on_exit = 0
    return ex


def rewrite_urls(urls: Any, base_url: str) -> Any:
    """Point every URL in ccxt's nested `urls['api']` at `base_url`, keeping each path."""
    if isinstance(urls, dict):
        return {key: rewrite_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str) and "://" in urls:
        parts = urlsplit(urls)
        return base_url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    return urls


def _url_pairs(original: Any, rewritten: Any) -> Iterator[tuple[str, str]]:
    if isinstance(original, dict) and isinstance(rewritten, dict):
        for key, value in original.items():
            yield from _url_pairs(value, rewritten.get(key))
    elif isinstance(original, str) and isinstance(rewritten, str) and original != rewritten:
        yield original, rewritten


def _keep_error_tables(ex: Any, pairs: list[tuple[str, str]]) -> None:
    """Some venues (Binance) pick their table of error codes by the request's host (fapi.* is
    futures): with the URLs rewritten that host is gone, and a futures refusal such as -2019
    (margin insufficient) would lose its meaning. The table is picked from the original URL."""
    pick = getattr(ex, "get_exceptions_by_url", None)
    if pick is None:
        return
    pairs = sorted(pairs, key=lambda pair: len(pair[1]), reverse=True)

    def by_original_url(url: str | None, kind: str) -> Any:
        for original, rewritten in pairs:
            if url is not None and url.startswith(rewritten):
                return pick(original + url[len(rewritten) :], kind)
        return pick(url, kind)

    ex.get_exceptions_by_url = by_original_url


def known_hosts(exchange_id: str) -> frozenset[str]:
    """Every host ccxt's own `urls` name for an exchange's API (live, testnet, demo)."""
    ex = getattr(ccxt, exchange_id)()
    hosts: set[str] = set()
    for url in _strings([v for k, v in ex.urls.items() if k in ("api", "test", "demo")]):
        host = urlsplit(url.replace("{hostname}", str(ex.hostname or ""))).hostname
        if host:
            hosts.add(host.lower())
    return frozenset(hosts)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str) and "://" in value:
        yield value
