"""What differs between ccxt venues beyond ccxt's own `has` flags: one row per venue this service
has been proven against (each one's loopback fake in `tests/fakes/`), and a cautious default for
the rest. Everything above `exchanges/` sees only the `VenueCapabilities` built from this.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt

from execution_service.enums import MarketType, Protection
from execution_service.exchanges.base import InvalidOrder
from execution_service.exchanges.capabilities import ClientIdFormat


@dataclass(frozen=True)
class CcxtVenue:
    # ccxt's `fetchMarkets` types that load only the connection's market type (None: the venue
    # has no such option; its markets are loaded whole and filtered here).
    market_types: Mapping[MarketType, tuple[str, ...]] | None = None
    client_ids: ClientIdFormat = field(default_factory=ClientIdFormat)
    # The parameter carrying our client order id when an order is looked up or cancelled, and
    # what every order lookup needs besides.
    lookup_param: str = "clientOrderId"
    lookup_params: Mapping[str, Any] = field(default_factory=dict)
    # Create and cancel answer with the order's ids only: its state is read back after.
    ids_only_answers: bool = False
    # The margin mode set per symbol with its leverage (None: the account's own, left as is),
    # and what every derivatives order then carries for it.
    margin_mode: str | None = None
    margin_mode_with_leverage: bool = False  # OKX: one call sets both
    swap_order_params: Mapping[str, Any] = field(default_factory=dict)
    # Error markers that mean "already set" when setting the leverage or margin mode.
    unchanged: tuple[str, ...] = ()
    # How the account's position mode is read: ccxt's fetch_position_mode, or from its positions.
    position_mode_from_positions: bool = False
    # Funding history amounts: +1 received positive (OKX bills, Binance income); -1 where the
    # venue reports funding as a fee, paid positive (Bybit executions).
    funding_sign: int = 1
    # Where closes made without us are read: the venue's positions history (OKX, Bybit), or its
    # liquidation orders and trades (Binance).
    closes_from_history: bool = True
    # An order's fee comes from its trades, found by `orderId` in the account's trades.
    fees_from_my_trades: bool = False
    linear_swaps: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    # How positions' SL/TP rest at the venue, per market type (proven against its fake; absent:
    # emulated by the monitor). Trigger orders kept apart are looked up and cancelled with
    # `trigger_params`; once fired, `fired_order_key` (in the answer's info) names the order
    # placed. `oco_method`: ccxt's implicit-API method that places an OCO list.
    protection: Mapping[MarketType, Protection] = field(default_factory=dict)
    trigger_params: Mapping[str, Any] = field(default_factory=dict)
    # What cancelling a trigger order takes instead (None: `trigger_params`).
    trigger_cancel_params: Mapping[str, Any] | None = None
    fired_order_key: str | None = None
    # The market types whose trigger orders take a new trigger price in place (ccxt's
    # `edit_order`: same order id, never two nor none resting); elsewhere a new level is a new
    # leg placed before the old one is cancelled. Proven against the fake.
    amends_triggers: frozenset[MarketType] = frozenset()
    oco_method: str = ""
    # On an OCO venue, the order type a lone SL is sent as, per market type: held alone only
    # where the market lists it (Binance's `orderTypes`; ccxt refuses it before sending else).
    lone_stop_types: Mapping[MarketType, str] = field(default_factory=dict)
    # The market types whose order stream (ccxt.pro watch_orders) is proven against the fake.
    order_streams: frozenset[MarketType] = frozenset()
    # The market types whose ticker stream (ccxt.pro watch_tickers) is proven against the fake.
    ticker_streams: frozenset[MarketType] = frozenset()
    # Trailing stops the venue trails itself (callback percent range), per market type.
    trailing_percents: Mapping[MarketType, tuple[Decimal, Decimal]] = field(default_factory=dict)


_BINANCE = CcxtVenue(
    market_types={MarketType.spot: ("spot",), MarketType.swap: ("linear",)},
    # newClientOrderId: ^[.A-Z:/a-z0-9_-]{1,36}$
    client_ids=ClientIdFormat(max_length=36, alphabet=r"[.A-Za-z0-9:/_\-]+"),
    # Binance takes the client id we gave as `origClientOrderId` on lookups and cancels.
    lookup_param="origClientOrderId",
    margin_mode="isolated",
    unchanged=("-4046",),
    closes_from_history=False,
    fees_from_my_trades=True,
    # USDⓈ-M: reduce-only STOP_MARKET / TAKE_PROFIT_MARKET algo orders; spot: orderList/oco.
    protection={MarketType.swap: Protection.trigger_orders, MarketType.spot: Protection.oco},
    trigger_params={"trigger": True},
    fired_order_key="actualOrderId",
    oco_method="private_post_orderlist_oco",
    lone_stop_types={MarketType.spot: "STOP_LOSS"},
    # USDⓈ-M: its user data stream (listen key; ORDER_TRADE_UPDATE, ALGO_UPDATE). Spot: the
    # WebSocket API's (userDataStream.subscribe.signature; executionReport).
    order_streams=frozenset({MarketType.swap, MarketType.spot}),
    # Spot's and USDⓈ-M's market streams (`<symbol>@miniTicker`, at /ws and /market/ws).
    ticker_streams=frozenset({MarketType.spot, MarketType.swap}),
    # USDⓈ-M TRAILING_STOP_MARKET: callbackRate 0.1 to 10 (percent).
    trailing_percents={MarketType.swap: (Decimal("0.1"), Decimal(10))},
    options={
        # load_markets() is then exactly one request (exchangeInfo of the one market type): no
        # currencies/margin-pairs endpoints, which also need keys and extra weight.
        "fetchCurrencies": False,
        "fetchMargins": False,
        # Otherwise fetch_open_orders() without a symbol raises a rate-limit "warning".
        "warnOnFetchOpenOrdersWithoutSymbol": False,
    },
)

VENUES: dict[str, CcxtVenue] = {
    "okx": CcxtVenue(
        market_types={MarketType.spot: ("spot",), MarketType.swap: ("swap",)},
        # clOrdId: letters and digits, at most 32.
        client_ids=ClientIdFormat(max_length=32, alphabet=r"[A-Za-z0-9]+"),
        ids_only_answers=True,
        margin_mode="isolated",
        margin_mode_with_leverage=True,
        swap_order_params={"marginMode": "isolated"},
    ),
    "bybit": CcxtVenue(
        market_types={MarketType.spot: ("spot",), MarketType.swap: ("linear",)},
        # orderLinkId: at most 36 of letters, digits, "-" and "_".
        client_ids=ClientIdFormat(max_length=36, alphabet=r"[A-Za-z0-9_\-]+"),
        lookup_param="orderLinkId",
        # ccxt refuses a unified account's fetch_order unless told it knows that only the
        # account's last 500 orders can be read back (`order/realtime`).
        lookup_params={"acknowledged": True},
        ids_only_answers=True,
        unchanged=("110043",),  # leverage not modified
        position_mode_from_positions=True,
        funding_sign=-1,
        # Linear: reduce-only conditional market orders (`triggerPrice`, `triggerDirection`;
        # the same order id becomes the market order once triggered, with its own fills and
        # fees). Looked up with orderFilter=StopOrder (ccxt's `trigger`), cancelled as any
        # order, amended in place (`/v5/order/amend`).
        protection={MarketType.swap: Protection.trigger_orders},
        trigger_params={"trigger": True},
        trigger_cancel_params={},
        amends_triggers=frozenset({MarketType.swap}),
    ),
    "binance": _BINANCE,
    "binanceusdm": _BINANCE,
    "binancecoinm": CcxtVenue(
        market_types={MarketType.swap: ("inverse",)},
        client_ids=_BINANCE.client_ids,
        lookup_param="origClientOrderId",
        linear_swaps=False,
        options=_BINANCE.options,
    ),
}

DEFAULT = CcxtVenue()


@functools.cache
def venue_of(exchange_id: str) -> CcxtVenue:
    """The venue's row; a Binance subclass (binanceus, ...) takes Binance's."""
    if exchange_id in VENUES:
        return VENUES[exchange_id]
    cls = getattr(ccxt, exchange_id, None)
    if isinstance(cls, type) and issubclass(cls, ccxt.binance):
        return _BINANCE
    return DEFAULT


def order_params(
    venue: CcxtVenue, market_type: str, client_order_id: str, reduce_only: bool
) -> dict[str, Any]:
    """A new order's params: our client order id, the venue's swap params, reduce-only."""
    params: dict[str, Any] = {"clientOrderId": client_order_id}
    if market_type == MarketType.swap:
        params.update(venue.swap_order_params)
    if reduce_only:
        params["reduceOnly"] = True
    return params


def order_ref(
    venue: CcxtVenue, order_id: str | None, client_order_id: str | None, *, lookup: bool = False
) -> tuple[str, dict[str, Any]]:
    """The id ccxt is given and its params: the venue's order id, or our client order id under
    the venue's parameter name (with its lookup params when reading)."""
    params: dict[str, Any] = dict(venue.lookup_params) if lookup else {}
    if order_id:
        return str(order_id), params
    if client_order_id:
        return "", {**params, venue.lookup_param: client_order_id}
    raise InvalidOrder("order_id or client_order_id is required")


def client_options(venue: CcxtVenue, market_type: str) -> dict[str, Any]:
    """ccxt options for a client of `market_type`: its markets only, nothing it does not need."""
    kind = MarketType(market_type)
    # A plain str: ccxt reads its options with checks a str subclass (our enum) fails.
    options: dict[str, Any] = {"defaultType": kind.value, **venue.options}
    types = (venue.market_types or {}).get(kind)
    if types is not None:
        options["fetchMarkets"] = {"types": list(types)}
    return options
