"""Many accounts' paper orders in one transaction: a signal's fan-out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execution_service.decimals import normalize
from execution_service.enums import OrderStatus
from execution_service.exchanges.base import ExchangeError, InsufficientFunds, NoPrice, OrderResult
from execution_service.exchanges.paper.adapter import PaperAdapter
from execution_service.exchanges.paper.booking import (
    Terms,
    account_of,
    apply_account,
    book_fill,
    hold,
    reservation,
)
from execution_service.exchanges.paper.orders import check_order, order_result, parse_symbol
from execution_service.exchanges.paper.repository import PaperRepository
from execution_service.models import MarketDataLatest, PaperBalance, PaperHolding, PaperOrder


@dataclass(frozen=True)
class PaperOrderRequest:
    adapter: PaperAdapter
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    client_order_id: str
    trigger: Decimal | None = None  # a stop's or target's level (`OrderRequest.trigger`)


@dataclass
class _Books:
    """Every row the batch touches, read (and locked) once for all its orders."""

    session: AsyncSession
    existing: dict[tuple[int, str], PaperOrder]
    prices: dict[tuple[int | None, str], MarketDataLatest | None]
    balances: dict[tuple[int, str], PaperBalance]
    holdings: dict[tuple[int, str], PaperHolding]
    terms: dict[int, Terms]


async def create_orders(
    session_factory: async_sessionmaker[AsyncSession], requests: Sequence[PaperOrderRequest]
) -> list[OrderResult | ExchangeError]:
    """`create_order` for many paper orders (any accounts) in one transaction: the same outcome,
    order by order, as sending them one at a time in this order. Each order is atomic on its own:
    a refused one (no price, funds) changes nothing; the others still fill."""
    if not requests:
        return []
    async with session_factory() as session, session.begin():
        books = await _read(session, requests)
        placed: list[PaperOrder | ExchangeError] = []
        for r in requests:
            try:
                placed.append(_place(books, r))
            except ExchangeError as exc:
                placed.append(exc)
        await session.flush()  # one multi-row INSERT: the orders get their ids
        return [p if isinstance(p, ExchangeError) else order_result(p) for p in placed]


async def _read(session: AsyncSession, requests: Sequence[PaperOrderRequest]) -> _Books:
    conn_ids = sorted({r.adapter.connection_id for r in requests})
    symbols = sorted({r.symbol for r in requests})
    repo = PaperRepository(session)
    existing = await repo.orders_for_update(conn_ids, [r.client_order_id for r in requests])
    prices: dict[tuple[int | None, str], MarketDataLatest | None] = {}
    for symbol in symbols:
        sources = {r.adapter.data_connection_id for r in requests if r.symbol == symbol}
        for dc_id, row in (await repo.latest_prices(sources, symbol)).items():
            prices[(dc_id, symbol)] = row
    return _Books(
        session,
        existing,
        prices,
        await repo.balances_for_update(conn_ids),
        await repo.holdings_for_update(conn_ids, symbols),
        await repo.terms_of(conn_ids),
    )


def _place(books: _Books, r: PaperOrderRequest) -> PaperOrder:
    """One order of the batch, filled against the books if it fills now; raises ExchangeError
    (and changes nothing) if it is refused."""
    paper = r.adapter
    _, quote = parse_symbol(r.symbol)
    check_order(r.amount, r.type, r.price)
    known = books.existing.get((paper.connection_id, r.client_order_id))
    if known is not None:  # the same client order id is the same order
        return known
    last = books.prices[(paper.data_connection_id, r.symbol)]
    if last is None:
        raise NoPrice(f"no price for {r.symbol} on the linked data connection")
    order = PaperOrder(
        connection_id=paper.connection_id,
        client_order_id=r.client_order_id,
        symbol=r.symbol,
        side=r.side,
        type=r.type,
        amount=r.amount,
        price=r.price,
        status=OrderStatus.open,
        fee_currency=quote,
    )
    fill_at = paper.fill_price(order, last.close, r.trigger)
    if fill_at is not None:
        balance = books.balances.get((paper.connection_id, quote))
        if balance is None:
            raise InsufficientFunds(f"the paper account holds no {quote}")
        holding = books.holdings.get((paper.connection_id, r.symbol))
        fee = normalize(order.amount * fill_at * paper.fee_rate)
        terms = books.terms.get(paper.connection_id, Terms())
        booked = book_fill(account_of(balance, holding), order, fill_at, fee, terms)
        if holding is None:
            holding = PaperHolding(connection_id=paper.connection_id, symbol=r.symbol)
            books.holdings[(paper.connection_id, r.symbol)] = holding
            books.session.add(holding)
        apply_account(booked.account, balance, holding)
        order.filled, order.average, order.fee = order.amount, fill_at, booked.fee
        order.status = OrderStatus.filled
    else:  # it rests: its margin and fee are held until it fills or is cancelled
        assert order.price is not None
        balance = books.balances.get((paper.connection_id, quote))
        if balance is None:
            raise InsufficientFunds(f"the paper account holds no {quote}")
        holding = books.holdings.get((paper.connection_id, r.symbol))
        fee = normalize(order.amount * order.price * paper.fee_rate)
        terms = books.terms.get(paper.connection_id, Terms())
        account = account_of(balance, holding)
        hold(balance, order, reservation(account, order, order.price, fee, terms))
    books.session.add(order)
    books.existing[(paper.connection_id, r.client_order_id)] = order
    return order
