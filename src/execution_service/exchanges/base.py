"""The one async interface every adapter implements, and the errors it may raise (`errors`).

Adapters translate their library's exceptions into `ExchangeError` subclasses at the boundary
(freqtrade's pattern): nothing above `exchanges/` imports ccxt or httpx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from execution_service.enums import CloseReason, OrderStatus, OrderType
from execution_service.exchanges.capabilities import VenueCapabilities
from execution_service.exchanges.errors import (  # re-exported: the interface's errors
    AddressRefused as AddressRefused,
    AuthFailed as AuthFailed,
    ExchangeBusy as ExchangeBusy,
    ExchangeError as ExchangeError,
    InsufficientFunds as InsufficientFunds,
    InvalidOrder as InvalidOrder,
    InverseNotSupported as InverseNotSupported,
    LeverageNotSet as LeverageNotSet,
    NoPrice as NoPrice,
    NotSupported as NotSupported,
    OrderNotFound as OrderNotFound,
    TemporaryError as TemporaryError,
    UnknownSymbol as UnknownSymbol,
)


@dataclass(frozen=True)
class Market:
    """Precision and limits of one market, as the exchange states them."""

    symbol: str
    base: str
    quote: str
    amount_step: Decimal | None = None
    price_tick: Decimal | None = None
    min_amount: Decimal | None = None
    min_cost: Decimal | None = None
    # Lot-based venues (MetaTrader): `amount` is in lots, one lot is `contract_size` units of
    # the base; `pip_size` is the price move FX quotes "pips" in; `max_amount` the largest lot.
    max_amount: Decimal | None = None
    contract_size: Decimal | None = None
    pip_size: Decimal | None = None
    # A coin-margined (inverse) contract: not traded by this service.
    inverse: bool = False
    # Where the venue's liquidation is simulated here (paper swap): the maintenance margin rate
    # (a fraction) isolated positions are liquidated at. Real venues report their own price.
    maintenance_margin_rate: Decimal | None = None
    # What a fill costs beyond the price, as fractions: the taker fee, and the slippage a market
    # order is expected to pay (sizing counts both, so a stop-out loses what was meant).
    taker_fee: Decimal | None = None
    slippage: Decimal | None = None


@dataclass(frozen=True)
class BalanceEntry:
    free: Decimal
    used: Decimal
    total: Decimal


@dataclass(frozen=True)
class Ticker:
    symbol: str
    price: Decimal
    timestamp: datetime | None = None


@dataclass(frozen=True)
class Valuation:
    """How sizing values an amount of a symbol: in `currency` (the account's), one unit of amount
    moving `unit_value` per unit of price. Crypto: the market's quote and 1. MetaTrader: the
    account currency and a lot's contract size times the quote-to-account rate."""

    currency: str
    unit_value: Decimal = Decimal(1)
    contract_size: Decimal | None = None


@dataclass(frozen=True)
class Stops:
    """SL/TP sent with an entry order, where the venue holds them (`stops_with_entry`)."""

    sl: Decimal | None = None
    tp: Decimal | None = None


@dataclass(frozen=True)
class ProtectiveLeg:
    """One protective order of a position (`place_protection`): its SL (`stop`: a stop-market at
    `price`), its TP (`target`: a trigger, or an OCO's limit leg, at `price`), or its trailing
    stop (`trailing`: `price` is the callback percent, trailed by the venue from now)."""

    type: OrderType
    price: Decimal
    client_order_id: str


@dataclass(frozen=True)
class OrderRequest:
    """One order of a batch (`AdapterRegistry.create_orders_batch`)."""

    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    client_order_id: str
    # A market order fired by a stop or target at this level: a simulated venue fills it at the
    # level (moved against the taker by its slippage), as an order resting there would have.
    trigger: Decimal | None = None


@dataclass(frozen=True)
class VenuePosition:
    """A derivatives position as the venue reports it, in the units its orders are sent in
    (contracts where the venue counts contracts: `Market.contract_size` says what one is), for
    reconciling the venue's book with ours. `symbol` is the one asked for."""

    symbol: str
    side: str  # buy: long, sell: short
    amount: Decimal
    entry_price: Decimal | None = None
    liquidation_price: Decimal | None = None
    leverage: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FundingPayment:
    """One funding settlement on a position, in the settlement currency: positive received,
    negative paid."""

    id: str
    symbol: str
    amount: Decimal
    currency: str
    at: datetime


@dataclass(frozen=True)
class VenueClose:
    """How a position went away at the venue without an order of ours: liquidated (or
    auto-deleveraged), or closed by hand. Amounts as `VenuePosition`; money in the settlement
    currency. `pnl` is the gross PnL the venue booked for the close (price move only), where it
    says; `fee` what the close itself cost, where it says; `fees_total` where the venue only
    reports a position's fees as one total (open and close)."""

    symbol: str
    side: str  # the position's: buy (long) or sell (short)
    amount: Decimal
    price: Decimal
    liquidation: bool
    at: datetime
    pnl: Decimal | None = None
    fee: Decimal | None = None
    fees_total: Decimal | None = None
    order_id: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class OrderResult:
    """An order as the exchange reports it, in the execution-log vocabulary.

    `close_reason` and `realized_pnl` are set where the venue itself closed a position (a broker's
    SL/TP) and reports the profit in the account currency: that is the truth, ahead of our own
    arithmetic."""

    order_id: str
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    status: OrderStatus
    amount: Decimal
    filled: Decimal = Decimal(0)
    average: Decimal | None = None
    price: Decimal | None = None
    fee: Decimal = Decimal(0)
    fee_currency: str | None = None
    timestamp: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    # Every fee currency's total (a fill may pay in the base, the quote or a third asset such as
    # BNB), and the quote price, at the fill's time, of each currency that is neither.
    fees: dict[str, Decimal] = field(default_factory=dict)
    fee_prices: dict[str, Decimal] = field(default_factory=dict)
    close_reason: CloseReason | None = None
    realized_pnl: Decimal | None = None


class Quotes(Protocol):
    """The reads sizing needs: an adapter, or a simulated account's state read in bulk."""

    async def market(self, symbol: str) -> Market: ...

    async def fetch_ticker(self, symbol: str) -> Ticker: ...

    async def fetch_balance(self) -> dict[str, BalanceEntry]: ...

    async def valuation(self, symbol: str) -> Valuation: ...


class ExchangeAdapter(Protocol):
    """What the service needs from a trading venue. All amounts and prices are Decimal.

    What the venue can do beyond the common core is in `capabilities`; an operation it cannot
    do raises `NotSupported` (nothing is sent)."""

    @property
    def capabilities(self) -> VenueCapabilities: ...

    async def load_markets(self, reload: bool = False) -> dict[str, Market]: ...

    async def market(self, symbol: str) -> Market: ...

    async def fetch_balance(self) -> dict[str, BalanceEntry]: ...

    async def read_balance(self) -> dict[str, BalanceEntry]:
        """The balances asked of the venue now (a health check), whatever copy `fetch_balance`
        keeps; the copy is replaced by the answer, not dropped before it."""

    async def valuation(self, symbol: str) -> Valuation: ...

    async def fetch_ticker(self, symbol: str) -> Ticker: ...

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]: ...

    async def create_order(
        self,
        symbol: str,
        side: str,
        type: str,
        amount: Decimal,
        price: Decimal | None,
        client_order_id: str,
        stops: Stops | None = None,
        *,
        reduce_only: bool = False,
    ) -> OrderResult:
        """`reduce_only` (where `capabilities.reduce_only`): the order may only shrink the
        position the account holds in that symbol, never open the other side."""
        ...

    async def set_leverage(self, symbol: str, leverage: Decimal) -> None:
        """Derivatives: the leverage (and the venue's margin mode this service uses) for a
        symbol, set before the first order on it and whenever it changes. Idempotent; spot
        venues do nothing."""

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[VenuePosition]:
        """Derivatives: the positions the venue holds for this account ([] on spot)."""
        ...

    async def fetch_funding(self, symbol: str, since: datetime) -> list[FundingPayment]:
        """Derivatives: the funding settled on the account's position in `symbol` since
        `since`, oldest first ([] on spot)."""
        ...

    async def fetch_closes(self, symbol: str, since: datetime) -> list[VenueClose]:
        """Derivatives: positions in `symbol` the venue closed since `since` other than by our
        orders' fills (liquidations, closes by hand), oldest first, as far as it keeps them."""
        ...

    async def hedge_mode(self) -> bool:
        """Derivatives: whether the account holds longs and shorts of a symbol apart (hedge,
        long/short mode). This service trades one net position per symbol."""
        ...

    async def close_position(
        self, symbol: str, position_ref: str, amount: Decimal, client_order_id: str
    ) -> OrderResult:
        """`positions_are_tickets`: close `amount` of the position the entry `position_ref`
        opened. If the venue already closed it itself, the result is that close (`filled`, with
        `close_reason` and `realized_pnl`)."""
        ...

    async def amend_stops(
        self, symbol: str, position_ref: str, *, sl: Decimal | None, tp: Decimal | None
    ) -> OrderResult:
        """`amends_stops`: set the venue-held SL and TP of a position (None removes one)."""
        ...

    async def place_protection(
        self, symbol: str, side: str, amount: Decimal, legs: list[ProtectiveLeg], list_id: str
    ) -> list[OrderResult]:
        """`capabilities.protection`: rest a position's SL and/or TP at the venue, each leg
        reducing only. `trigger_orders`: one leg per call; `oco`: both legs as one list
        (`list_id`), or a lone SL as a stop order. One result per leg, in order."""
        ...

    async def holds_alone(self, symbol: str, kind: OrderType) -> bool:
        """Whether one protective leg of `kind` can rest alone at the venue for this market
        (asked before its row is written: a leg the venue cannot hold is the monitor's)."""
        ...

    async def amend_protection(
        self, symbol: str, side: str, leg: ProtectiveLeg, order_id: str | None
    ) -> OrderResult:
        """`capabilities.amends_triggers`: the resting leg (by `order_id`, else its client
        order id) takes `leg.price` in place; the result is the leg read back, `price` the
        level the venue now holds."""
        ...

    async def fetch_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        trigger: bool = False,
    ) -> OrderResult:
        """`trigger`: a protective trigger order (some venues keep them apart). Once it fired,
        the result is the order it fired: its fills, average price and fees."""
        ...

    async def cancel_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        trigger: bool = False,
    ) -> OrderResult: ...

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderResult]: ...

    async def watch_order_changes(self) -> list[str]:
        """`Stream.orders`: waits for the venue to push order updates of this account; the
        client order ids of the orders that changed (what they became is read by lookup)."""
        ...

    async def watch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        """`Stream.tickers`: waits (up to a second) for the venue to push tickers of these
        symbols; those pushed since the last call, keyed like `fetch_tickers` ({}: none)."""
        ...

    async def close(self) -> None: ...
