"""An order's fees where its answer lacks them: from its trades, and a third currency's fee
(BNB) priced in the quote at the fill."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from execution_service.exchanges.base import ExchangeError, Market, OrderResult, Ticker
from execution_service.exchanges.ccxt.parsing import first_fee, trade_fees
from execution_service.exchanges.ccxt.venues import CcxtVenue

log = logging.getLogger(__name__)
Read = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]


async def add_trade_fees(
    ex: Any, venue: CcxtVenue, read: Read, order: OrderResult, symbol: str
) -> None:
    """An order's status (Binance `GET /api/v3/order`, its futures orders) carries no fills, so
    no fee: it comes from the order's trades (`myTrades`, `userTrades` by order id). Without
    them the fee stays unknown (0) rather than failing the order's recording."""
    if venue.fees_from_my_trades:
        by_order = {"orderId": order.order_id}
        call: Callable[[], Awaitable[Any]] = lambda: ex.fetch_my_trades(  # noqa: E731
            symbol, None, None, by_order
        )
    elif ex.has.get("fetchOrderTrades"):
        call = lambda: ex.fetch_order_trades(order.order_id, symbol)  # noqa: E731
    else:
        return
    try:
        trades = await read(call)
    except ExchangeError as exc:
        log.warning("order %s: its trades could not be read: %s", order.order_id, exc.message)
        return
    order.fees = trade_fees(trades)
    order.fee, order.fee_currency = first_fee(order.fees)


async def price_fees(
    order: OrderResult, market: Market, fetch_ticker: Callable[[str], Awaitable[Ticker]]
) -> None:
    """A fee paid in a third asset (BNB) is worth its FEE/QUOTE price now, at the fill: the book
    counts it in the quote currency. Without a price it is booked at 0, and said."""
    for currency in order.fees:
        if currency in (market.base, market.quote) or currency in order.fee_prices:
            continue
        pair = f"{currency}/{market.quote}"
        try:
            order.fee_prices[currency] = (await fetch_ticker(pair)).price
        except ExchangeError as exc:
            log.warning("a fee in %s has no %s price: %s", currency, pair, exc.message)
