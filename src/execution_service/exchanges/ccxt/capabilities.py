"""What a ccxt venue can do: ccxt's own `has` flags for it, and its row of `venues.py`."""

from __future__ import annotations

import functools
from typing import Any

import ccxt.async_support as ccxt

from execution_service.enums import MarketType, Protection
from execution_service.exchanges.capabilities import Stream, VenueCapabilities
from execution_service.exchanges.ccxt.venues import CcxtVenue, venue_of


@functools.cache
def _streams(exchange_id: str) -> frozenset[Stream]:
    """The push feeds ccxt's websocket layer (`ccxt.pro`, inside the ccxt package) has for it."""
    import ccxt.pro as pro

    cls = getattr(pro, exchange_id, None)
    if cls is None:
        return frozenset()
    has = cls().has  # describing the class opens nothing
    wanted = {Stream.tickers: "watchTickers", Stream.orders: "watchOrders"}
    return frozenset(stream for stream, flag in wanted.items() if has.get(flag))


def _unproven(venue: CcxtVenue, market_type: MarketType) -> set[Stream]:
    """The streams ccxt has for the venue that no fake proves for this market type."""
    proven = {Stream.orders: venue.order_streams, Stream.tickers: venue.ticker_streams}
    return {stream for stream, types in proven.items() if market_type not in types}


def capabilities_of(exchange_id: str, has: dict[str, Any], market_type: str) -> VenueCapabilities:
    """A ccxt venue's capabilities, from ccxt's own `has` flags for it and its row of the venue
    table (client ids, lookups, ids-only answers, linear swaps)."""
    venue = venue_of(exchange_id)
    derivatives = market_type != MarketType.spot
    types = {t for t in MarketType if has.get(t.value)}
    holds_positions = bool(has.get("fetchPositions") and has.get("setLeverage"))
    return VenueCapabilities(
        stop_orders=bool(has.get("createStopMarketOrder") or has.get("createStopLossOrder")),
        take_profit_orders=bool(has.get("createTakeProfitOrder")),
        trailing_stops=bool(has.get("createTrailingPercentOrder")),
        reduce_only=derivatives and bool(has.get("createReduceOnlyOrder")),
        venue_positions=derivatives and holds_positions,
        funding=derivatives and bool(has.get("fetchFundingHistory")),
        market_types=frozenset(types),
        linear_swaps=venue.linear_swaps,
        protection=venue.protection.get(MarketType(market_type), Protection.emulated),
        trailing_percents=venue.trailing_percents.get(MarketType(market_type)),
        amends_triggers=MarketType(market_type) in venue.amends_triggers,
        client_ids=venue.client_ids,
        ids_only_answers=venue.ids_only_answers,
        streams=_streams(exchange_id) - _unproven(venue, MarketType(market_type)),
    )


@functools.cache
def venue_capabilities(exchange_id: str, market_type: MarketType) -> VenueCapabilities:
    """`capabilities_of` without a client of our own (one is described once per venue)."""
    if exchange_id not in ccxt.exchanges:
        return VenueCapabilities()
    return capabilities_of(exchange_id, getattr(ccxt, exchange_id)().has, market_type)
