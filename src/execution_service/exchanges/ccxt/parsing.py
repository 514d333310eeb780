"""ccxt's answers as our values: markets, balances, tickers, orders, fees and what our own fill
does to the balances. The exchange's raw strings in `info` come first, ccxt's floats after."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE

from execution_service.decimals import ratio
from execution_service.enums import MarketType, OrderStatus
from execution_service.exchanges.base import BalanceEntry, Market, OrderResult, Ticker
from execution_service.exchanges.cache import balances_after_fill
from execution_service.exchanges.values import first, to_decimal

# ccxt unified order status -> execution-log vocabulary ("open" is refined by the filled amount).
_STATUS = {
    "closed": OrderStatus.filled,
    "canceled": OrderStatus.cancelled,
    "cancelled": OrderStatus.cancelled,
    "expired": OrderStatus.cancelled,
    "rejected": OrderStatus.rejected,
}


def to_market(m: dict[str, Any], precision_mode: Any) -> Market:
    precision = m.get("precision") or {}
    limits = m.get("limits") or {}
    return Market(
        symbol=m["symbol"],
        base=m["base"],
        quote=m["quote"],
        amount_step=_step(precision.get("amount"), precision_mode),
        price_tick=_step(precision.get("price"), precision_mode),
        min_amount=to_decimal((limits.get("amount") or {}).get("min")),
        min_cost=to_decimal((limits.get("cost") or {}).get("min")),
        contract_size=contract_size(m),
        inverse=bool(m.get("inverse")),
        taker_fee=to_decimal(m.get("taker")),
    )


def of_type(m: dict[str, Any], market_type: str) -> bool:
    """A market a connection of `market_type` trades: spot pairs, or perpetual swaps."""
    return bool(m.get("spot")) if market_type == MarketType.spot else bool(m.get("swap"))


def contract_size(m: dict[str, Any]) -> Decimal | None:
    """What one unit of a derivative's amount is, in the base (OKX BTC-USDT-SWAP: 0.01 BTC);
    None where an amount is in the base already (spot, and contracts of 1). The venue's own
    string first (OKX `ctVal`), ccxt's float after."""
    if not m.get("contract"):
        return None
    size = first(to_decimal(info_of(m).get("ctVal")), to_decimal(m.get("contractSize")))
    return None if size is None or size == 1 else size


def _step(precision: Any, precision_mode: Any) -> Decimal | None:
    value = to_decimal(precision)
    if value is None:
        return None
    if precision_mode == TICK_SIZE:  # binance and most others: already the step
        return value
    if precision_mode == DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(value))
    return None  # SIGNIFICANT_DIGITS: no fixed step exists


def to_balances(raw: dict[str, Any]) -> dict[str, BalanceEntry]:
    """Balances from the venue's own strings where we know them, ccxt's floats otherwise. On a
    derivatives account `total` is the cash (wallet) balance, without the open positions'
    unrealised PnL: sizing adds that itself (`signals.decision.equity_of`)."""
    rows = _raw_balances(info_of(raw))
    if rows is None:
        skip = {"info", "free", "used", "total", "timestamp", "datetime", "debt"}
        rows = [
            (
                cur,
                to_decimal(e.get("free")),
                to_decimal(e.get("used")),
                to_decimal(e.get("total")),
            )
            for cur, e in raw.items()
            if cur not in skip and isinstance(e, dict)
        ]
    out: dict[str, BalanceEntry] = {}
    for currency, free, used, total in rows:
        free = free or Decimal(0)
        used = used if used is not None else (total - free if total is not None else Decimal(0))
        total = total if total is not None else free + used
        if currency and (free or used or total):
            out[str(currency)] = BalanceEntry(free=free, used=used, total=total)
    return out


Row = tuple[Any, Decimal | None, Decimal | None, Decimal | None]


def _raw_balances(info: dict[str, Any]) -> list[Row] | None:
    """(currency, free, used, total): Binance spot `balances` (free, locked); OKX's trading
    account `details` (availBal, cashBal: its `eq` counts unrealised PnL); Binance futures
    `assets` (availableBalance, walletBalance: its `marginBalance` counts unrealised PnL)."""
    if isinstance(info.get("balances"), list):
        return [
            (b.get("asset"), to_decimal(b.get("free")), to_decimal(b.get("locked")), None)
            for b in info["balances"]
        ]
    data = info.get("data")
    if isinstance(data, list) and data and isinstance(data[0], dict) and "details" in data[0]:
        details = data[0]["details"] or []
        return [
            (d.get("ccy"), _raw(d, "availBal"), None, to_decimal(d.get("cashBal"))) for d in details
        ]
    if isinstance(info.get("assets"), list):
        return [
            (
                a.get("asset"),
                to_decimal(a.get("availableBalance")),
                None,
                to_decimal(a.get("walletBalance")),
            )
            for a in info["assets"]
        ]
    return None


def to_ticker(t: dict[str, Any], symbol: str) -> Ticker | None:
    info = info_of(t)
    price = first(
        to_decimal(info.get("lastPrice")), to_decimal(t.get("last")), to_decimal(t.get("close"))
    )
    if price is None or price <= 0:
        return None
    return Ticker(symbol=t.get("symbol") or symbol, price=price, timestamp=_ts(t))


def to_order(
    o: dict[str, Any],
    symbol: str,
    *,
    side: str | None = None,
    type: str | None = None,
    client_order_id: str | None = None,
    amount: Decimal | None = None,
) -> OrderResult:
    info = info_of(o)
    # The venue's own strings first, ccxt's floats after: amounts in the venue's units
    # (contracts on a contract venue), Binance origQty/executedQty, OKX sz/accFillSz (its spot
    # sizes are in the base: tgtCcy base_ccy), Bybit qty/cumExecQty (spot: marketUnit baseCoin).
    qty = first(_raw(info, "origQty", "sz", "qty"), to_decimal(o.get("amount")), amount)
    qty = qty or Decimal(0)
    done = _raw(info, "executedQty", "accFillSz", "cumExecQty")
    filled = first(done, to_decimal(o.get("filled"))) or Decimal(0)
    cost = cost_of(o, info)
    # The venue's average price (Binance futures, Bybit avgPrice, OKX avgPx); else the quote
    # spent over the amount (Binance spot); else ccxt's.
    average = _raw(info, "avgPrice", "avgPx")
    if average is None and filled > 0 and cost is not None and cost > 0:
        average = ratio(cost, filled)
    if average is None:
        average = to_decimal(o.get("average"))
    price = first(_raw(info, "price", "px"), to_decimal(o.get("price")))
    fees = fees_of(o, info)
    fee, fee_currency = first_fee(fees)
    return OrderResult(
        order_id=str(o.get("id") or ""),
        # A Binance cancel answer's `clientOrderId` is the cancel request's own id.
        client_order_id=info.get("origClientOrderId") or o.get("clientOrderId") or client_order_id,
        symbol=o.get("symbol") or symbol,
        side=o.get("side") or side or "",
        type=o.get("type") or type or "",
        status=_status(o.get("status"), qty, filled),
        amount=qty,
        filled=filled,
        average=average,
        price=price if price else None,  # Binance reports market orders' price as 0
        fee=fee,
        fee_currency=fee_currency,
        timestamp=_ts(o),
        raw=info or {k: v for k, v in o.items() if k != "info"},
        fees=fees,
    )


def trade_fees(trades: list[dict[str, Any]]) -> dict[str, Decimal]:
    """An order's fees from its trades (ccxt's `fetch_order_trades`), read as `fees_of` reads a
    Binance order answer's `fills`."""
    fills = []
    for trade in trades:
        info = info_of(trade)
        fee = trade.get("fee") or {}
        fills.append(
            {
                "commission": info.get("commission", fee.get("cost")),
                "commissionAsset": info.get("commissionAsset", fee.get("currency")),
            }
        )
    return fees_of({}, {"fills": fills})


def _status(status: Any, amount: Decimal, filled: Decimal) -> OrderStatus:
    mapped = _STATUS.get(str(status)) if status else None
    if mapped:
        return mapped
    if status is None and amount > 0 and filled >= amount:
        return OrderStatus.filled  # some exchanges report no status; a complete fill says enough
    return OrderStatus.partially_filled if filled > 0 else OrderStatus.open


def fees_of(o: dict[str, Any], info: dict[str, Any]) -> dict[str, Decimal]:
    """Every fee currency's total: Binance `fills[].commission` strings when present (one fill
    may pay in BNB and the next in USDT), OKX `fee` (negative: charged) in `feeCcy`, Bybit
    `cumFeeDetail`; ccxt's fees otherwise."""
    fills = info.get("fills")
    detail = info.get("cumFeeDetail")
    okx_fee = to_decimal(info.get("fee")) if info.get("feeCcy") else None
    if isinstance(fills, list) and fills:
        items = [(f.get("commissionAsset"), to_decimal(f.get("commission"))) for f in fills]
    elif isinstance(detail, dict) and detail:
        items = [(currency, to_decimal(cost)) for currency, cost in detail.items()]
    elif okx_fee is not None:
        items = [(info["feeCcy"], -okx_fee)]
    else:
        fees = o.get("fees") or ([o["fee"]] if o.get("fee") else [])
        items = [
            (f.get("currency"), to_decimal(f.get("cost"))) for f in fees if isinstance(f, dict)
        ]
    out: dict[str, Decimal] = {}
    for currency, cost in items:
        if cost is not None and currency:
            out[str(currency)] = out.get(str(currency), Decimal(0)) + cost
    return out


def first_fee(fees: dict[str, Decimal]) -> tuple[Decimal, str | None]:
    """The order's `fee` and `fee_currency` as the API has always shown them: the first
    currency's total (`fees` has them all)."""
    for currency, cost in fees.items():
        return cost, currency
    return Decimal(0), None


def booking(
    market: Market, order: OrderResult, cost: Decimal | None, market_type: str
) -> Callable[[dict[str, BalanceEntry]], dict[str, BalanceEntry] | None] | None:
    """What our own complete spot fill does to the account's balances; None for anything else (a
    resting or partial order, an unknown cost, a derivative, whose fill moves margin rather than
    assets): the next read asks the exchange."""
    if (
        market_type != MarketType.spot
        or order.status != OrderStatus.filled
        or order.filled <= 0
        or cost is None
        or len(order.fees) > 1  # fees in several currencies: ask the venue
    ):
        return None
    return lambda balances: balances_after_fill(
        balances,
        base=market.base,
        quote=market.quote,
        side=order.side,
        filled=order.filled,
        cost=cost,
        fee=order.fee,
        fee_currency=order.fee_currency,
    )


def cost_of(o: dict[str, Any], info: dict[str, Any]) -> Decimal | None:
    """The quote spent or received so far: the exchange's string first (Binance spot and
    futures, Bybit), ccxt's float after."""
    raw = _raw(info, "cummulativeQuoteQty", "cumQuote", "cumExecValue")
    return first(raw, to_decimal(o.get("cost")))


def _raw(info: dict[str, Any], *names: str) -> Decimal | None:
    """The first of the venue's own fields that holds a positive number ("0" and "" are how
    venues say "none yet": Binance futures' avgPrice, OKX's avgPx before a fill)."""
    for name in names:
        value = to_decimal(info.get(name))
        if value is not None and value > 0:
            return value
    return None


def info_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The exchange's raw answer ccxt keeps beside its parsed fields."""
    info = obj.get("info")
    return info if isinstance(info, dict) else {}


def _ts(obj: dict[str, Any]) -> datetime | None:
    ms = obj.get("timestamp")
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if isinstance(ms, int | float) else None
