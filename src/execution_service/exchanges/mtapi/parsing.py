"""The gateway's answers as our values, and the names MetaTrader knows our orders by."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from execution_service.enums import CloseReason, Direction, OrderStatus
from execution_service.exchanges.base import (
    BalanceEntry,
    ExchangeError,
    InvalidOrder,
    Market,
    OrderNotFound,
    OrderResult,
)
from execution_service.exchanges.mtapi.gateway import expect
from execution_service.exchanges.values import first, to_decimal

Ticket = dict[str, Any]  # one order as the gateway sends it (see tests/fakes/mtapi.py)

POSITION_TYPES = frozenset({"Buy", "Sell"})
PENDING_TYPES = frozenset({"BuyLimit", "SellLimit", "BuyStop", "SellStop"})
FROM = re.compile(r"^from #(\d+)")
TO = re.compile(r"^to #(\d+)")


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal


def mt_symbol(symbol: str) -> str:
    """MetaTrader's name for a symbol: "EUR/USD" -> "EURUSD" (suffixes such as ".r" kept)."""
    return symbol.replace("/", "")


def magic_number(client_order_id: str) -> int:
    """A stable magic number for a client order id, in 1..2**31-1 (MetaTrader's int, and never
    0, which marks manual trades)."""
    return zlib.crc32(client_order_id.encode()) % (2**31 - 1) + 1


def to_market(name: str, body: dict[str, Any]) -> Market:
    info = body.get("symbolInfo") if isinstance(body.get("symbolInfo"), dict) else body
    group = body.get("groupParams") if isinstance(body.get("groupParams"), dict) else body
    assert isinstance(info, dict) and isinstance(group, dict)
    digits = as_int(info.get("digits"), -1)
    # A point is 10**-digits by definition; the reported double is only a fallback.
    point = Decimal(1).scaleb(-digits) if digits >= 0 else to_decimal(info.get("point"))
    # Fractional pricing: 5-digit majors and 3-digit JPY pairs quote a tenth of a pip, so a pip
    # is 10 points (0.0001, 0.01). Elsewhere (4/2-digit FX, metals, indices) a point is the
    # smallest move there is, and we call that the pip; risk sizing never depends on it.
    pip = point * 10 if point is not None and digits in (3, 5) else point
    return Market(
        symbol=name,
        base=str(info.get("currencyBase") or name[:3]),
        quote=str(info.get("currencyProfit") or name[3:6]),
        amount_step=to_decimal(group.get("lotStep")),
        price_tick=point,
        min_amount=to_decimal(group.get("minLot")),
        max_amount=to_decimal(group.get("maxLot")),
        contract_size=to_decimal(info.get("contractSize")),
        pip_size=pip,
    )


def to_balance(summary: dict[str, Any]) -> tuple[str, BalanceEntry]:
    """AccountSummary as the account currency and its free margin, margin and equity."""
    currency = str(summary.get("currency") or "")
    if not currency:
        raise ExchangeError("mtapi AccountSummary has no currency")
    zero = Decimal(0)
    return currency, BalanceEntry(
        free=to_decimal(summary.get("freeMargin")) or zero,
        used=to_decimal(summary.get("margin")) or zero,
        total=first(to_decimal(summary.get("equity")), to_decimal(summary.get("balance"))) or zero,
    )


def to_order(
    t: Ticket,
    symbol: str,
    *,
    is_open: bool,
    currency: str | None,
    client_order_id: str | None = None,
) -> OrderResult:
    """A ticket as an order; `currency` is the account's, which any commission is in."""
    kind = str(t.get("type") or "")
    lots = to_decimal(t.get("lots")) or Decimal(0)
    open_price = to_decimal(t.get("openPrice"))
    commission = to_decimal(t.get("commission")) or Decimal(0)
    fee = -commission if commission < 0 else Decimal(0)  # MT books charges as negatives
    position = kind in POSITION_TYPES
    return OrderResult(
        order_id=str(t.get("ticket") or ""),
        client_order_id=client_order_id or comment(t) or None,
        symbol=symbol,
        side=Direction.buy if kind.startswith("Buy") else Direction.sell,
        type="market" if position else ("limit" if "Limit" in kind else "stop"),
        # A pending ticket in history was deleted; one that filled became Buy/Sell.
        status=OrderStatus.filled
        if position
        else (OrderStatus.open if is_open else OrderStatus.cancelled),
        amount=lots,
        filled=lots if position else Decimal(0),
        average=open_price if position else None,
        price=None if position else open_price,
        fee=fee,
        fee_currency=currency if fee else None,
        raw=dict(t),
        # A closed ticket's profit, in the account currency: the broker's own figure.
        realized_pnl=None if is_open else to_decimal(t.get("profit")),
    )


def our_close(
    closed: Ticket, symbol: str, lots: Decimal, client_order_id: str | None
) -> OrderResult:
    """Our close of `lots` of a position (the closed ticket) as the fill of our exit: a `filled`
    order of the opposite side at the close price."""
    result = to_order(closed, symbol, is_open=False, currency=None, client_order_id=client_order_id)
    result.side = opposite(result.side)
    result.amount, result.filled = lots, to_decimal(closed.get("lots")) or lots
    result.average = to_decimal(closed.get("closePrice"))
    result.fee, result.fee_currency = Decimal(0), None  # MT charges commission on open
    return result


def broker_close(closed: OrderResult, position_ref: str, amount: Decimal) -> OrderResult:
    """The broker's close of a whole position (ticket `position_ref`, read from the history) as
    the fill of our exit, with the reason the broker's comment gives ("[sl]", "[tp]")."""
    price = to_decimal(closed.raw.get("closePrice"))
    if price is None:
        raise OrderNotFound(f"ticket {position_ref} has nothing left open")
    note = comment(closed.raw).lower()
    closed.close_reason = (
        CloseReason.sl
        if "[sl" in note
        else CloseReason.tp
        if "[tp" in note
        else CloseReason.external
    )
    closed.side = opposite(closed.side)
    closed.status = OrderStatus.filled
    closed.amount = closed.filled = amount
    closed.average = price
    # The ticket's commission was charged on open, and booked with the entry: not again here.
    closed.fee, closed.fee_currency = Decimal(0), None
    return closed


def check_lots(market: Market, lots: Decimal) -> Decimal:
    if lots <= 0 or (market.min_amount is not None and lots < market.min_amount):
        raise InvalidOrder(f"{lots} lots is under {market.symbol}'s minimum {market.min_amount}")
    if market.max_amount is not None and lots > market.max_amount:
        raise InvalidOrder(f"{lots} lots is over {market.symbol}'s maximum {market.max_amount}")
    return lots


def tickets(body: Any, what: str) -> list[Ticket]:
    """Trade tickets only: history also lists balance and credit operations."""
    rows = expect(body, list, what)
    return [t for t in rows if isinstance(t, dict) and t.get("type") not in ("Balance", "Credit")]


def opposite(side: str) -> str:
    return Direction.sell if side == Direction.buy else Direction.buy


def comment(t: Ticket) -> str:
    return str(t.get("comment") or "")


def as_int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, ArithmeticError):
        return default
