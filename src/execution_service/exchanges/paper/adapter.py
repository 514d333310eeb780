"""`PaperAdapter`: the paper venue, one account at a time."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execution_service.decimals import ZERO
from execution_service.enums import MarketType, OrderStatus, OrderType
from execution_service.exchanges.base import (
    BalanceEntry,
    FundingPayment,
    InsufficientFunds,
    Market,
    NoPrice,
    NotSupported,
    OrderNotFound,
    OrderResult,
    ProtectiveLeg,
    Stops,
    Ticker,
    Valuation,
    VenueClose,
    VenuePosition,
)
from execution_service.exchanges.capabilities import ClientIdFormat, VenueCapabilities
from execution_service.exchanges.paper.booking import (
    BPS,
    account_of,
    apply_account,
    book_fill,
    crosses,
    fee_of,
    fill_price,
    hold,
    reservation,
)
from execution_service.exchanges.paper.orders import check_order, order_result, parse_symbol
from execution_service.exchanges.paper.repository import PaperRepository
from execution_service.models import PaperHolding, PaperOrder

PAPER_STEP = Decimal("0.00000001")
# Simulated inside the service: an account that nets per symbol, whose balances and prices are
# our own rows, read and filled in bulk. Spot: no borrowing (leverage 1, no shorts). Swap:
# isolated margin at the preset's leverage, liquidated at a maintenance-margin rate.
CAPABILITIES = VenueCapabilities(
    simulated=True,
    reduce_only=True,
    market_types=frozenset({MarketType.spot, MarketType.swap}),
    client_ids=ClientIdFormat(max_length=64),
)


# The maintenance margin of a paper swap account when its settings do not say (percent).
DEFAULT_MAINTENANCE_MARGIN_PERCENT = Decimal("0.5")


@dataclass(frozen=True)
class PaperTerms:
    """A paper account's settings that its markets show: fee, slippage, and (swap) the
    maintenance margin rate its positions are liquidated at."""

    fee_rate: Decimal = ZERO
    slippage_bps: Decimal = ZERO
    maintenance_margin_rate: Decimal | None = None

    @classmethod
    def of(cls, market_type: str, config: dict[str, Any] | None) -> PaperTerms:
        return cls(*paper_rates(config), maintenance_rate(market_type, config))


def paper_rates(config: dict[str, Any] | None) -> tuple[Decimal, Decimal]:
    """A paper account's fee rate and slippage (bps), as its settings give them."""
    config = config or {}
    return (
        Decimal(str(config.get("fee_rate", "0"))),
        Decimal(str(config.get("slippage_bps", "0"))),
    )


@functools.lru_cache(maxsize=4096)
def paper_market(symbol: str, terms: PaperTerms | None = None) -> Market:
    """The same (immutable) value for the same symbol and terms: a fan-out asks it per account."""
    base, quote = parse_symbol(symbol)
    terms = terms or PaperTerms()
    return Market(
        symbol,
        base,
        quote,
        PAPER_STEP,
        PAPER_STEP,
        PAPER_STEP,
        ZERO,
        maintenance_margin_rate=terms.maintenance_margin_rate,
        taker_fee=terms.fee_rate,
        slippage=terms.slippage_bps / BPS,
    )


def maintenance_rate(market_type: str, config: dict[str, Any] | None) -> Decimal | None:
    """A paper account's maintenance margin rate (a fraction): None on spot, which borrows
    nothing and is never liquidated."""
    if market_type == MarketType.spot:
        return None
    percent = (config or {}).get("maintenance_margin_percent")
    return Decimal(str(percent or DEFAULT_MAINTENANCE_MARGIN_PERCENT)) / 100


class PaperAdapter:
    capabilities = CAPABILITIES

    def __init__(
        self,
        connection_id: int,
        data_connection_id: int | None,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        terms: PaperTerms | None = None,
    ) -> None:
        self.connection_id = connection_id
        self.data_connection_id = data_connection_id
        self._sessions = session_factory
        self.terms = terms or PaperTerms()
        self.fee_rate = self.terms.fee_rate
        self.slippage_bps = self.terms.slippage_bps

    async def load_markets(self, reload: bool = False) -> dict[str, Market]:
        return {}

    async def market(self, symbol: str) -> Market:
        return paper_market(symbol, self.terms)

    async def fetch_balance(self) -> dict[str, BalanceEntry]:
        async with self._sessions() as session:
            balances = await PaperRepository(session).balances_of([self.connection_id])
        return balances.get(self.connection_id, {})

    async def read_balance(self) -> dict[str, BalanceEntry]:
        return await self.fetch_balance()  # read from the database every time

    async def valuation(self, symbol: str) -> Valuation:
        return Valuation(paper_market(symbol).quote)

    async def fetch_ticker(self, symbol: str) -> Ticker:
        async with self._sessions() as session:
            row = await PaperRepository(session).latest_price(self.data_connection_id, symbol)
        if row is None:
            raise NoPrice(f"no price for {symbol} on the linked data connection")
        return Ticker(symbol, row.close, row.timestamp)

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        out: dict[str, Ticker] = {}
        for symbol in symbols:
            try:
                out[symbol] = await self.fetch_ticker(symbol)
            except NoPrice:
                continue
        return out

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
        if stops is not None:
            raise NotSupported("paper: stops are watched by the monitor, not sent with orders")
        _, quote = parse_symbol(symbol)
        check_order(amount, type, price)
        async with self._sessions() as session, session.begin():
            repo = PaperRepository(session)
            existing = await repo.order_for_update(
                self.connection_id, client_order_id=client_order_id
            )
            if existing is not None:  # the same client order id is the same order
                return order_result(existing)
            last = await repo.latest_price(self.data_connection_id, symbol)
            if last is None:
                raise NoPrice(f"no price for {symbol} on the linked data connection")
            order = PaperOrder(
                connection_id=self.connection_id,
                client_order_id=client_order_id,
                symbol=symbol,
                side=side,
                type=type,
                amount=amount,
                price=price,
                status=OrderStatus.open,
                fee_currency=quote,
            )
            fill_at = self.fill_price(order, last.close)
            if fill_at is not None:
                await self._fill(session, order, fill_at)
            else:
                await self._reserve(session, order)
            session.add(order)
        return order_result(order)

    def fill_price(
        self, order: PaperOrder, last: Decimal, trigger: Decimal | None = None
    ) -> Decimal | None:
        """Where a new order fills now (`booking.fill_price` at this account's slippage)."""
        return fill_price(order, last, self.slippage_bps, trigger)

    async def fetch_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        trigger: bool = False,
    ) -> OrderResult:
        async with self._sessions() as session, session.begin():
            repo = PaperRepository(session)
            order = await repo.order_for_update(
                self.connection_id, order_id=order_id, client_order_id=client_order_id
            )
            if order is None:
                raise OrderNotFound("no such paper order")
            if order.status == OrderStatus.open and order.price is not None:
                last = await repo.latest_price(self.data_connection_id, order.symbol)
                if last is not None and crosses(order.side, last.close, order.price):
                    await self._release(session, order)
                    try:
                        await self._fill(session, order, order.price)
                    except InsufficientFunds:
                        order.status = OrderStatus.cancelled
            return order_result(order)

    async def cancel_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        trigger: bool = False,
    ) -> OrderResult:
        async with self._sessions() as session, session.begin():
            repo = PaperRepository(session)
            order = await repo.order_for_update(
                self.connection_id, order_id=order_id, client_order_id=client_order_id
            )
            if order is None or order.status != OrderStatus.open:
                raise OrderNotFound("no open paper order to cancel")
            await self._release(session, order)
            order.status = OrderStatus.cancelled
            return order_result(order)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        async with self._sessions() as session:
            orders = await PaperRepository(session).open_orders(self.connection_id, symbol)
            return [order_result(o) for o in orders]

    async def set_leverage(self, symbol: str, leverage: Decimal) -> None:
        return None  # the paper account nets per symbol; no funding

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[VenuePosition]:
        return []  # the paper account nets per symbol; no funding

    async def fetch_funding(self, symbol: str, since: datetime) -> list[FundingPayment]:
        return []  # the paper account nets per symbol; no funding

    async def fetch_closes(self, symbol: str, since: datetime) -> list[VenueClose]:
        return []  # the paper account nets per symbol; no funding

    async def hedge_mode(self) -> bool:
        return False

    async def close_position(
        self, symbol: str, position_ref: str, amount: Decimal, client_order_id: str
    ) -> OrderResult:
        raise NotSupported("paper: positions are closed by opposite orders")

    async def place_protection(
        self, symbol: str, side: str, amount: Decimal, legs: list[ProtectiveLeg], list_id: str
    ) -> list[OrderResult]:
        raise NotSupported("paper: protective orders are not held at the venue")

    async def holds_alone(self, symbol: str, kind: OrderType) -> bool:
        return False

    async def amend_protection(
        self, symbol: str, side: str, leg: ProtectiveLeg, order_id: str | None
    ) -> OrderResult:
        raise NotSupported("paper: protective orders are not held at the venue")

    async def watch_order_changes(self) -> list[str]:
        raise NotSupported("paper: no order stream")

    async def watch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        raise NotSupported("paper: no ticker stream")

    async def amend_stops(
        self, symbol: str, position_ref: str, *, sl: Decimal | None, tp: Decimal | None
    ) -> OrderResult:
        raise NotSupported("paper: no stops are held with the position")

    async def close(self) -> None:
        return None

    async def _reserve(self, session: AsyncSession, order: PaperOrder) -> None:
        """A resting order holds its margin and fee until it fills or is cancelled."""
        assert order.price is not None
        repo = PaperRepository(session)
        _, quote = parse_symbol(order.symbol)
        balance = await repo.balance_for_update(self.connection_id, quote)
        if balance is None:
            raise InsufficientFunds(f"the paper account holds no {quote}")
        holding = await repo.holding_for_update(self.connection_id, order.symbol)
        fee = fee_of(order.amount, order.price, self.fee_rate)
        terms = await repo.terms(self.connection_id)
        hold(
            balance,
            order,
            reservation(account_of(balance, holding), order, order.price, fee, terms),
        )

    async def _release(self, session: AsyncSession, order: PaperOrder) -> None:
        if not order.reserved:
            return
        _, quote = parse_symbol(order.symbol)
        balance = await PaperRepository(session).balance_for_update(self.connection_id, quote)
        if balance is not None:
            hold(balance, order, -order.reserved)

    async def _fill(self, session: AsyncSession, order: PaperOrder, price: Decimal) -> None:
        """Book a complete fill of `order` at `price` against the account, atomically."""
        repo = PaperRepository(session)
        _, quote = parse_symbol(order.symbol)
        balance = await repo.balance_for_update(self.connection_id, quote)
        if balance is None:
            raise InsufficientFunds(f"the paper account holds no {quote}")
        holding = await repo.holding_for_update(self.connection_id, order.symbol)
        terms = await repo.terms(self.connection_id)
        fee = fee_of(order.amount, price, self.fee_rate)
        booked = book_fill(account_of(balance, holding), order, price, fee, terms)
        if holding is None:
            holding = PaperHolding(connection_id=self.connection_id, symbol=order.symbol)
            session.add(holding)
        apply_account(booked.account, balance, holding)
        order.filled, order.average, order.fee = order.amount, price, booked.fee
        order.status = OrderStatus.filled
