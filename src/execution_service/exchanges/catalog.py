"""What this build knows of venues from a connection's row alone, with no client built: the
ccxt exchanges it can reach, each venue's capabilities and production hosts."""

from __future__ import annotations

import functools

from execution_service.enums import Adapter, DataSourceType, MarketType
from execution_service.exchanges.capabilities import VenueCapabilities
from execution_service.exchanges.kinds import DATA_KINDS
from execution_service.exchanges.mtapi import adapter as mtapi_adapter
from execution_service.exchanges.paper import adapter as paper


def supported_exchanges() -> frozenset[str]:
    import ccxt.async_support as ccxt_async

    return frozenset(ccxt_async.exchanges)


def known_exchange(adapter: str, exchange: str | None) -> bool:
    """Whether a connection's `exchange` names a venue its adapter can reach."""
    return adapter != Adapter.ccxt or exchange is None or exchange in supported_exchanges()


@functools.cache
def capabilities(adapter: str, exchange: str | None, market_type: str) -> VenueCapabilities:
    """What a connection's venue can do, known from its row alone: no client is built, so a
    paper connection never gets a real one."""
    if adapter == Adapter.paper:
        return paper.CAPABILITIES
    if adapter == Adapter.mtapi:
        return mtapi_adapter.CAPABILITIES
    from execution_service.exchanges.ccxt.capabilities import venue_capabilities

    return venue_capabilities(exchange or "", MarketType(market_type))


def feed_capabilities(data_type: str, exchange: str | None, market_type: str) -> VenueCapabilities:
    """What a fetching data connection's source can do (its `streams`: whether its prices can
    be pushed), from its row alone; a manual connection's source is its pusher: nothing."""
    adapter = DATA_KINDS[DataSourceType(data_type)].adapter
    if adapter is None:
        return VenueCapabilities()
    return capabilities(adapter, exchange, market_type)


@functools.cache
def venue_hosts(adapter: str, exchange: str | None) -> frozenset[str] | None:
    """The hosts a connection of this venue may name in production (ccxt's own URLs for the
    exchange), or None where the venue has no known list (a MetaTrader gateway)."""
    if adapter != Adapter.ccxt or not exchange or exchange not in supported_exchanges():
        return None
    from execution_service.exchanges.ccxt.client import known_hosts

    return known_hosts(exchange)
