"""What a venue can do, declared by its adapter as one typed value (NautilusTrader's venue
capabilities, freqtrade's `_ft_has`). Code above `exchanges/` asks these questions instead of
branching on an adapter's or an exchange's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from execution_service.enums import MarketType, Protection


class Stream(StrEnum):
    """Push feeds the venue offers (websockets)."""

    tickers = "tickers"
    orders = "orders"


@dataclass(frozen=True)
class ClientIdFormat:
    """The client order ids the venue accepts, and whether an order is found again by one."""

    max_length: int = 36
    # The characters allowed, as a regular expression matched against the whole id.
    alphabet: str = r"[A-Za-z0-9._:\-]+"
    lookup: bool = True

    def accepts(self, client_order_id: str) -> bool:
        return len(client_order_id) <= self.max_length and bool(
            re.fullmatch(self.alphabet, client_order_id)
        )


@dataclass(frozen=True)
class VenueCapabilities:
    # The venue lives inside the service (paper): its accounts and prices are rows of our own
    # database, read for many accounts in one query, and its orders fill in one transaction
    # for many accounts at once (`AdapterRegistry.preload` / `create_orders_batch`).
    simulated: bool = False
    # Positions are broker tickets (MetaTrader): amounts are lots, an exit closes the entry's
    # ticket (`close_position`) instead of sending an opposite order, which would open a second.
    positions_are_tickets: bool = False
    # SL/TP travel with the entry order and rest at the venue from its first tick.
    stops_with_entry: bool = False
    # Those held SL/TP are amended in place (`amend_stops`).
    amends_stops: bool = False
    # Trigger orders that can rest at the venue: stop-market, take-profit, trailing, OCO pairs.
    stop_orders: bool = False
    take_profit_orders: bool = False
    trailing_stops: bool = False
    oco: bool = False
    # How a position's SL and TP are held at the venue once its entry fills (`orders.protection`
    # places them): separate reduce-only trigger orders, one OCO list, or not at all (emulated
    # by the monitor). Proven per venue (its fake), not taken from ccxt's `has` alone.
    protection: Protection = Protection.emulated
    # The callback percents (low, high) of a trailing stop the venue trails itself, as one more
    # reduce-only trigger order (None: the monitor trails, the venue holds the SL only).
    trailing_percents: tuple[Decimal, Decimal] | None = None
    # A resting SL or TP leg takes a new level in place (`amend_protection`: the same order,
    # so the venue never holds two stops, nor none); otherwise a new leg is placed first and
    # the old one cancelled after.
    amends_triggers: bool = False
    # An order can be flagged so that it only ever reduces a position (derivatives).
    reduce_only: bool = False
    # The venue holds positions of its own (derivatives) that can be read back to reconcile
    # ours (`fetch_positions`), settles funding on them (`fetch_funding`), and takes a
    # leverage per symbol (`set_leverage`).
    venue_positions: bool = False
    funding: bool = False
    # The venue checks margin itself; funds are not pre-checked here (its refusal is recorded).
    margin_checked_by_venue: bool = False
    market_types: frozenset[MarketType] = frozenset({MarketType.spot})
    # Its perpetual swaps are linear (margined and settled in the quote, USDT): a swap account
    # is refused where the venue has inverse (coin-margined) ones only.
    linear_swaps: bool = True
    client_ids: ClientIdFormat = field(default_factory=ClientIdFormat)
    # Create and cancel answer with ids only: the order's state must be fetched after.
    ids_only_answers: bool = False
    streams: frozenset[Stream] = frozenset()

    def holds_coins(self, market_type: MarketType | str) -> bool:
        """A real spot account: the coins its positions bought left the quote balance, so its
        equity counts them at their price. Elsewhere (margin, derivatives, a simulated venue's
        ledger, a broker) the balance still holds what positions cost or posted, and equity adds
        their unrealised PnL."""
        spot = market_type == MarketType.spot
        return spot and not (self.simulated or self.positions_are_tickets)
