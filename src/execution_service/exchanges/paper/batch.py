"""Many accounts' paper orders in one transaction: a signal's fan-out.

The rows are read (and the ones a fill changes locked) in a few statements, every order is
booked in Python by the arithmetic the single-order path uses (`booking`), and the outcome is
written in a few set-based statements (`ledger`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execution_service.db import utcnow
from execution_service.decimals import ZERO
from execution_service.enums import OrderStatus
from execution_service.exchanges.base import ExchangeError, InsufficientFunds, NoPrice, OrderResult
from execution_service.exchanges.paper.adapter import paper_rates
from execution_service.exchanges.paper.booking import (
    Terms,
    account_of,
    apply_account,
    book_fill,
    fee_of,
    fill_price,
    hold,
    reservation,
)
from execution_service.exchanges.paper.ledger import BalanceRow, HoldingRow, Ledger, OrderRow
from execution_service.exchanges.paper.orders import check_order, order_result, parse_symbol
from execution_service.exchanges.paper.repository import PaperRepository


class Venue(Protocol):
    """What a batch's order needs of its paper account: a `PaperAdapter`, or a `PaperAccount`."""

    @property
    def connection_id(self) -> int: ...
    @property
    def data_connection_id(self) -> int | None: ...
    @property
    def fee_rate(self) -> Decimal: ...
    @property
    def slippage_bps(self) -> Decimal: ...


@dataclass(frozen=True, slots=True)
class PaperAccount:
    """A paper account as a batch's order sees it, without building its adapter."""

    connection_id: int
    data_connection_id: int | None
    fee_rate: Decimal = ZERO
    slippage_bps: Decimal = ZERO

    @classmethod
    def of(
        cls, connection_id: int, data_connection_id: int | None, config: dict[str, Any] | None
    ) -> PaperAccount:
        """From a paper connection's row: its ids and settings (no adapter per connection of a
        10,000-account fan-out)."""
        return cls(connection_id, data_connection_id, *paper_rates(config))


@dataclass(frozen=True, slots=True)
class PaperOrderRequest:
    adapter: Venue
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    client_order_id: str
    trigger: Decimal | None = None  # a stop's or target's level (`OrderRequest.trigger`)


@dataclass
class _Books:
    """Every row the batch touches, read (and locked) once for all its orders, and what its
    orders changed."""

    orders: dict[tuple[int, str], OrderRow]  # known ones, then the batch's own
    prices: dict[tuple[int | None, str], Decimal | None]
    balances: dict[tuple[int, str], BalanceRow]
    holdings: dict[tuple[int, str], HoldingRow]
    terms: dict[int, Terms]
    placed: list[OrderRow] = field(default_factory=list)
    moved: dict[int, BalanceRow] = field(default_factory=dict)  # by id
    held: dict[tuple[int, str], HoldingRow] = field(default_factory=dict)


async def create_orders(
    session_factory: async_sessionmaker[AsyncSession], requests: Sequence[PaperOrderRequest]
) -> list[OrderResult | ExchangeError]:
    """`create_order` for many paper orders (any accounts) in one transaction: the same outcome,
    order by order, as sending them one at a time in this order. Each order is atomic on its own:
    a refused one (no price, funds) changes nothing; the others still fill."""
    if not requests:
        return []
    async with session_factory() as session, session.begin():
        ledger = Ledger(await session.connection())
        books = await _read(session, ledger, requests)
        placed: list[OrderRow | ExchangeError] = []
        for r in requests:
            try:
                placed.append(_place(books, r))
            except ExchangeError as exc:
                placed.append(exc)
        await ledger.insert_orders(books.placed, utcnow())
        await ledger.update_balances(list(books.moved.values()))
        await ledger.write_holdings(list(books.held.values()))
    return [p if isinstance(p, ExchangeError) else order_result(p) for p in placed]


async def _read(
    session: AsyncSession, ledger: Ledger, requests: Sequence[PaperOrderRequest]
) -> _Books:
    conn_ids = sorted({r.adapter.connection_id for r in requests})
    symbols = sorted({r.symbol for r in requests})
    quotes = sorted({q for q in map(_quote, symbols) if q is not None})
    repo = PaperRepository(session)
    keys = sorted({(r.adapter.connection_id, r.client_order_id) for r in requests})
    orders = await ledger.orders(keys)
    prices = await repo.latest_closes((r.adapter.data_connection_id, r.symbol) for r in requests)
    return _Books(
        orders,
        prices,
        await ledger.balances(conn_ids, quotes),
        await ledger.holdings(conn_ids, symbols),
        await repo.terms_of(conn_ids),
    )


def _quote(symbol: str) -> str | None:
    try:
        return parse_symbol(symbol)[1]
    except ExchangeError:
        return None  # refused when its order is placed


def _place(books: _Books, r: PaperOrderRequest) -> OrderRow:
    """One order of the batch, filled against the books if it fills now; raises ExchangeError
    (and changes nothing) if it is refused."""
    paper = r.adapter
    _, quote = parse_symbol(r.symbol)
    check_order(r.amount, r.type, r.price)
    key = (paper.connection_id, r.client_order_id)
    known = books.orders.get(key)
    if known is not None:  # the same client order id is the same order
        return known
    last = books.prices[(paper.data_connection_id, r.symbol)]
    if last is None:
        raise NoPrice(f"no price for {r.symbol} on the linked data connection")
    order = OrderRow(
        *key, r.symbol, r.side, r.type, r.amount, r.price, OrderStatus.open, fee_currency=quote
    )
    fill_at = fill_price(order, last, paper.slippage_bps, r.trigger)
    assert fill_at is not None or order.price is not None  # a limit order rests at its price
    balance = books.balances.get((paper.connection_id, quote))
    if balance is None:
        raise InsufficientFunds(f"the paper account holds no {quote}")
    holding = books.holdings.get((paper.connection_id, r.symbol))
    terms = books.terms.get(paper.connection_id, Terms())
    account = account_of(balance, holding)
    if fill_at is not None:
        fee = fee_of(order.amount, fill_at, paper.fee_rate)
        booked = book_fill(account, order, fill_at, fee, terms)
        if holding is None:
            holding = HoldingRow(paper.connection_id, r.symbol)
            books.holdings[(paper.connection_id, r.symbol)] = holding
        apply_account(booked.account, balance, holding)
        books.held[(paper.connection_id, r.symbol)] = holding
        order.filled, order.average, order.fee = order.amount, fill_at, booked.fee
        order.status = OrderStatus.filled
    else:  # it rests: its margin and fee are held until it fills or is cancelled
        assert order.price is not None
        fee = fee_of(order.amount, order.price, paper.fee_rate)
        hold(balance, order, reservation(account, order, order.price, fee, terms))
    books.moved[balance.id] = balance
    books.orders[key] = order
    books.placed.append(order)
    return order
