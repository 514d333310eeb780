"""A paper order's vocabulary: the checks a new order passes first, and what the venue reports of
an order (`order_result`), read from a `PaperOrder` or from the batch's light values alike."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from execution_service.decimals import ZERO
from execution_service.enums import OrderStatus, OrderType
from execution_service.exchanges.base import InvalidOrder, OrderResult


def parse_symbol(symbol: str) -> tuple[str, str]:
    base, sep, rest = symbol.partition("/")
    quote = rest.split(":", 1)[0]
    if not sep or not base or not quote:
        raise InvalidOrder(f"symbol {symbol!r} is not BASE/QUOTE")
    return base.upper(), quote.upper()


class Recorded(Protocol):
    """What an order's result is read from: a `PaperOrder`, or the batch's light values."""

    @property
    def id(self) -> int | None: ...
    @property
    def client_order_id(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def filled(self) -> Decimal | None: ...
    @property
    def average(self) -> Decimal | None: ...
    @property
    def price(self) -> Decimal | None: ...
    @property
    def fee(self) -> Decimal | None: ...
    @property
    def fee_currency(self) -> str | None: ...
    @property
    def updated_at(self) -> datetime | None: ...


def order_result(order: Recorded) -> OrderResult:
    return OrderResult(
        order_id=str(order.id) if order.id is not None else "",
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        status=OrderStatus(order.status),
        amount=order.amount,
        filled=order.filled or ZERO,
        average=order.average,
        price=order.price,
        fee=order.fee or ZERO,
        fee_currency=order.fee_currency,
        timestamp=order.updated_at or datetime.now(UTC),
        raw={"paper": True, "status": order.status},
    )


def check_order(amount: Decimal, type: str, price: Decimal | None) -> None:
    if amount <= 0:
        raise InvalidOrder("amount must be positive")
    if type == OrderType.limit and (price is None or price <= 0):
        raise InvalidOrder("a limit order needs a positive price")
