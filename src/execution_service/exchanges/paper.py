"""The paper exchange: a simulated margin account inside the service, persisted in its own tables.

- Market orders fill at the linked data connection's latest price, moved against the taker by
  `slippage_bps`; the fee is `fee_rate` * notional in the quote currency.
- Limit orders fill at once when marketable (at the latest price), otherwise rest `open` and fill at
  their limit when a later `fetch_order` sees the price cross it (the order tracker polls that).
- The account nets per symbol (one-way mode): a fill that opens or adds reserves
  notional/leverage of margin (leverage from the connection's preset, else 1); a fill that reduces
  releases margin pro rata and books the realised PnL. No price: `NoPrice`; too little free
  quote: `InsufficientFunds`.
- Markets exist for any `BASE/QUOTE` symbol with amount step, tick and minimum amount 0.00000001 and
  no minimum notional.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execution_service import metrics
from execution_service.decimals import ONE, ZERO, normalize, ratio
from execution_service.enums import Direction, MarketType, OrderStatus, OrderType
from execution_service.exchanges.base import (
    BalanceEntry,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    Market,
    NoPrice,
    NotSupported,
    OrderNotFound,
    OrderResult,
    Stops,
    Ticker,
    Valuation,
)
from execution_service.exchanges.capabilities import ClientIdFormat, VenueCapabilities
from execution_service.models import (
    DataConnection,
    ExecutionConnection,
    MarketData,
    PaperBalance,
    PaperHolding,
    PaperOrder,
    TradingPreset,
)

PAPER_STEP = Decimal("0.00000001")
BPS = Decimal(10_000)
# Simulated inside the service: a margin account that nets per symbol (so leverage applies on
# spot too), whose balances and prices are our own rows, read and filled in bulk.
CAPABILITIES = VenueCapabilities(
    simulated=True,
    leverage_on_spot=True,
    reduce_only=True,
    market_types=frozenset({MarketType.spot, MarketType.swap}),
    client_ids=ClientIdFormat(max_length=64),
)


def parse_symbol(symbol: str) -> tuple[str, str]:
    base, sep, rest = symbol.partition("/")
    quote = rest.split(":", 1)[0]
    if not sep or not base or not quote:
        raise InvalidOrder(f"symbol {symbol!r} is not BASE/QUOTE")
    return base.upper(), quote.upper()


def paper_market(symbol: str) -> Market:
    base, quote = parse_symbol(symbol)
    return Market(symbol, base, quote, PAPER_STEP, PAPER_STEP, PAPER_STEP, ZERO)


async def latest_price(
    session: AsyncSession, data_connection_id: int | None, symbol: str
) -> MarketData | None:
    if data_connection_id is None:
        return None
    stmt = (
        select(MarketData)
        .where(MarketData.data_connection_id == data_connection_id, MarketData.symbol == symbol)
        .order_by(MarketData.timestamp.desc(), MarketData.id.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def latest_prices(
    session: AsyncSession, data_connection_ids: Iterable[int | None], symbol: str
) -> dict[int | None, MarketData | None]:
    """`latest_price` of many data connections in one statement (each its own index lookup)."""
    keys = list(data_connection_ids)
    wanted = {dc for dc in keys if dc is not None}
    found: dict[int | None, MarketData | None] = dict.fromkeys(keys)
    if not wanted:
        return found
    latest = (
        select(MarketData.id)
        .where(MarketData.data_connection_id == DataConnection.id, MarketData.symbol == symbol)
        .order_by(MarketData.timestamp.desc(), MarketData.id.desc())
        .limit(1)
        .correlate(DataConnection)
        .scalar_subquery()
    )
    ids = select(latest).where(DataConnection.id.in_(sorted(wanted)))
    for row in await session.scalars(select(MarketData).where(MarketData.id.in_(ids))):
        found[row.data_connection_id] = row
    return found


async def balances_of(
    session: AsyncSession, connection_ids: Sequence[int]
) -> dict[int, dict[str, BalanceEntry]]:
    """Every currency's balance of many paper accounts, in one query (absent: none)."""
    out: dict[int, dict[str, BalanceEntry]] = {}
    if not connection_ids:
        return out
    rows = await session.scalars(
        select(PaperBalance).where(PaperBalance.connection_id.in_(connection_ids))
    )
    for r in rows:
        out.setdefault(r.connection_id, {})[r.currency] = BalanceEntry(
            r.free, r.used, normalize(r.free + r.used)
        )
    return out


class PreloadedQuotes:
    """A paper account's balances and price as read for a whole fan-out in a few queries: what
    `PaperAdapter` would answer, without a query per connection."""

    def __init__(self, balances: dict[str, BalanceEntry], ticker: Ticker | None) -> None:
        self._balances = balances
        self._ticker = ticker

    async def market(self, symbol: str) -> Market:
        return paper_market(symbol)

    async def fetch_ticker(self, symbol: str) -> Ticker:
        if self._ticker is None:
            # Counted as the adapter's bounded wrapper counts a failed call.
            metrics.EXCHANGE_ERRORS.labels(NoPrice.code, "fetch_ticker").inc()
            raise NoPrice(f"no price for {symbol} on the linked data connection")
        return self._ticker

    async def fetch_balance(self) -> dict[str, BalanceEntry]:
        return self._balances

    async def valuation(self, symbol: str) -> Valuation:
        return Valuation(paper_market(symbol).quote)


async def preload(
    session: AsyncSession, accounts: Sequence[tuple[int, int | None]], symbol: str
) -> dict[int, PreloadedQuotes]:
    """Quotes for many paper accounts ((connection id, data connection id) each): their
    balances and the symbol's latest price on each data connection, in two queries."""
    balances = await balances_of(session, [conn_id for conn_id, _ in accounts])
    prices = await latest_prices(session, {dc for _, dc in accounts}, symbol)
    tickers = {
        dc: None if row is None else Ticker(symbol, row.close, row.timestamp)
        for dc, row in prices.items()
    }
    return {
        conn_id: PreloadedQuotes(balances.get(conn_id, {}), tickers.get(dc))
        for conn_id, dc in accounts
    }


class PaperAdapter:
    capabilities = CAPABILITIES

    def __init__(
        self,
        connection_id: int,
        data_connection_id: int | None,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        fee_rate: Decimal = ZERO,
        slippage_bps: Decimal = ZERO,
    ) -> None:
        self.connection_id = connection_id
        self.data_connection_id = data_connection_id
        self._sessions = session_factory
        self.fee_rate = fee_rate
        self.slippage_bps = slippage_bps

    async def load_markets(self, reload: bool = False) -> dict[str, Market]:
        return {}

    async def market(self, symbol: str) -> Market:
        return paper_market(symbol)

    async def fetch_balance(self) -> dict[str, BalanceEntry]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(PaperBalance).where(PaperBalance.connection_id == self.connection_id)
            )
            return {
                r.currency: BalanceEntry(r.free, r.used, normalize(r.free + r.used)) for r in rows
            }

    def forget_balance(self) -> None:
        return None  # balances are read from the database every time

    async def valuation(self, symbol: str) -> Valuation:
        return Valuation(paper_market(symbol).quote)

    async def fetch_ticker(self, symbol: str) -> Ticker:
        async with self._sessions() as session:
            row = await latest_price(session, self.data_connection_id, symbol)
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
    ) -> OrderResult:
        if stops is not None:
            raise NotSupported("paper: stops are watched by the monitor, not sent with orders")
        _, quote = parse_symbol(symbol)
        _check(amount, type, price)
        async with self._sessions() as session, session.begin():
            existing = await self._order(session, client_order_id=client_order_id)
            if existing is not None:  # the same client order id is the same order
                return _result(existing)
            last = await latest_price(session, self.data_connection_id, symbol)
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
            session.add(order)
        return _result(order)

    def fill_price(self, order: PaperOrder, last: Decimal) -> Decimal | None:
        """Where a new order fills now: a market order at the last price moved against the
        taker by the slippage, a marketable limit at the last price; None: it rests."""
        if order.type == OrderType.market:
            slip = self.slippage_bps / BPS
            return normalize(last * (ONE + slip if order.side == Direction.buy else ONE - slip))
        if _crosses(order.side, last, order.price):
            return last
        return None

    async def fetch_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderResult:
        async with self._sessions() as session, session.begin():
            order = await self._order(session, order_id=order_id, client_order_id=client_order_id)
            if order is None:
                raise OrderNotFound("no such paper order")
            if order.status == OrderStatus.open and order.price is not None:
                last = await latest_price(session, self.data_connection_id, order.symbol)
                if last is not None and _crosses(order.side, last.close, order.price):
                    try:
                        await self._fill(session, order, order.price)
                    except InsufficientFunds:
                        order.status = OrderStatus.cancelled
            return _result(order)

    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderResult:
        async with self._sessions() as session, session.begin():
            order = await self._order(session, order_id=order_id, client_order_id=client_order_id)
            if order is None or order.status != OrderStatus.open:
                raise OrderNotFound("no open paper order to cancel")
            order.status = OrderStatus.cancelled
            return _result(order)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        async with self._sessions() as session:
            stmt = select(PaperOrder).where(
                PaperOrder.connection_id == self.connection_id,
                PaperOrder.status == OrderStatus.open,
            )
            if symbol is not None:
                stmt = stmt.where(PaperOrder.symbol == symbol)
            return [_result(o) for o in await session.scalars(stmt)]

    async def close_position(
        self, symbol: str, position_ref: str, amount: Decimal, client_order_id: str
    ) -> OrderResult:
        raise NotSupported("paper: positions are closed by opposite orders")

    async def amend_stops(
        self, symbol: str, position_ref: str, *, sl: Decimal | None, tp: Decimal | None
    ) -> OrderResult:
        raise NotSupported("paper: no stops are held with the position")

    async def close(self) -> None:
        return None

    async def _order(
        self,
        session: AsyncSession,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> PaperOrder | None:
        stmt = select(PaperOrder).where(PaperOrder.connection_id == self.connection_id)
        if order_id is not None:
            if not order_id.isdigit():
                return None
            stmt = stmt.where(PaperOrder.id == int(order_id))
        elif client_order_id is not None:
            stmt = stmt.where(PaperOrder.client_order_id == client_order_id)
        else:
            raise InvalidOrder("an order id or client order id is needed")
        return (await session.scalars(stmt.with_for_update())).first()

    async def _fill(self, session: AsyncSession, order: PaperOrder, price: Decimal) -> None:
        """Book a complete fill of `order` at `price` against the account, atomically."""
        _, quote = parse_symbol(order.symbol)
        balance = (
            await session.scalars(
                select(PaperBalance)
                .where(
                    PaperBalance.connection_id == self.connection_id, PaperBalance.currency == quote
                )
                .with_for_update()
            )
        ).first()
        if balance is None:
            raise InsufficientFunds(f"the paper account holds no {quote}")
        holding = (
            await session.scalars(
                select(PaperHolding)
                .where(
                    PaperHolding.connection_id == self.connection_id,
                    PaperHolding.symbol == order.symbol,
                )
                .with_for_update()
            )
        ).first()
        leverage = await self._leverage(session)
        fee = normalize(order.amount * price * self.fee_rate)
        after = book_fill(_account(balance, holding), order, price, fee, leverage)
        if holding is None:
            holding = PaperHolding(connection_id=self.connection_id, symbol=order.symbol)
            session.add(holding)
        _apply(after, balance, holding)
        order.filled, order.average, order.fee = order.amount, price, fee
        order.status = OrderStatus.filled

    async def _leverage(self, session: AsyncSession) -> Decimal:
        leverage = await session.scalar(
            select(TradingPreset.leverage)
            .join(ExecutionConnection, ExecutionConnection.preset_id == TradingPreset.id)
            .where(ExecutionConnection.id == self.connection_id)
        )
        return leverage if leverage and leverage > 0 else ONE


def _crosses(side: str, last: Decimal, limit: Decimal | None) -> bool:
    if limit is None:
        return False
    return last <= limit if side == Direction.buy else last >= limit


def _result(order: PaperOrder) -> OrderResult:
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


# --- booking: pure arithmetic over one quote balance and one symbol's holding -----------------


@dataclass(frozen=True)
class Account:
    """What a fill touches: the quote balance and the symbol's net holding (zero if none)."""

    free: Decimal
    used: Decimal
    quantity: Decimal = ZERO  # signed: negative is short
    average_price: Decimal = ZERO
    margin: Decimal = ZERO
    quote: str = ""


def book_fill(
    account: Account, order: PaperOrder, price: Decimal, fee: Decimal, leverage: Decimal
) -> Account:
    """The account after a complete fill of `order` at `price`; `InsufficientFunds` if it cannot
    pay. Pure, so a batch can refuse one order without undoing anything of the others."""
    quantity, average, margin_held = account.quantity, account.average_price, account.margin
    signed = order.amount if order.side == Direction.buy else -order.amount
    free, used = account.free - fee, account.used
    remaining = order.amount
    if quantity != 0 and (quantity > 0) != (signed > 0):
        closing = min(remaining, abs(quantity))
        direction = ONE if quantity > 0 else -ONE
        pnl = (price - average) * closing * direction
        released = margin_held * closing / abs(quantity)
        free += released + pnl
        used -= released
        margin_held = normalize(margin_held - released)
        quantity = normalize(quantity - direction * closing)
        remaining -= closing
        if quantity == 0:
            average, margin_held = ZERO, ZERO
    if remaining > 0:
        margin = remaining * price / leverage
        if free < margin:
            raise InsufficientFunds(
                f"paper account: {normalize(margin + fee)} {account.quote} needed, "
                f"{account.free} free"
            )
        held = abs(quantity)
        average = ratio(held * average + remaining * price, held + remaining)
        quantity = normalize(quantity + (remaining if signed > 0 else -remaining))
        margin_held = normalize(margin_held + margin)
        free -= margin
        used += margin
    if free < 0:
        raise InsufficientFunds(f"paper account: not enough {account.quote} for the fee")
    return Account(normalize(free), normalize(used), quantity, average, margin_held, account.quote)


def _account(balance: PaperBalance, holding: PaperHolding | None) -> Account:
    if holding is None:
        return Account(balance.free, balance.used, quote=balance.currency)
    return Account(
        balance.free,
        balance.used,
        holding.quantity,
        holding.average_price,
        holding.margin,
        balance.currency,
    )


def _apply(after: Account, balance: PaperBalance, holding: PaperHolding) -> None:
    balance.free, balance.used = after.free, after.used
    holding.quantity, holding.average_price = after.quantity, after.average_price
    holding.margin = after.margin


# --- batch: many accounts' orders in one transaction (a signal's fan-out) ---------------------


@dataclass(frozen=True)
class PaperOrderRequest:
    adapter: PaperAdapter
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    client_order_id: str


async def create_orders(
    session_factory: async_sessionmaker[AsyncSession], requests: Sequence[PaperOrderRequest]
) -> list[OrderResult | ExchangeError]:
    """`create_order` for many paper orders (any accounts) in one transaction: the same outcome,
    order by order, as sending them one at a time in this order. Each order is atomic on its own:
    a refused one (no price, funds) changes nothing; the others still fill."""
    out: list[OrderResult | ExchangeError] = []
    if not requests:
        return out
    conn_ids = sorted({r.adapter.connection_id for r in requests})
    symbols = sorted({r.symbol for r in requests})
    async with session_factory() as session, session.begin():
        existing = {
            (o.connection_id, o.client_order_id): o
            for o in await session.scalars(
                select(PaperOrder)
                .where(
                    PaperOrder.connection_id.in_(conn_ids),
                    PaperOrder.client_order_id.in_([r.client_order_id for r in requests]),
                )
                .with_for_update()
            )
        }
        prices: dict[tuple[int | None, str], MarketData | None] = {}
        for symbol in sorted({r.symbol for r in requests}):
            sources = {r.adapter.data_connection_id for r in requests if r.symbol == symbol}
            for dc_id, row in (await latest_prices(session, sources, symbol)).items():
                prices[(dc_id, symbol)] = row
        balances = {
            (b.connection_id, b.currency): b
            for b in await session.scalars(
                select(PaperBalance)
                .where(PaperBalance.connection_id.in_(conn_ids))
                .order_by(PaperBalance.id)
                .with_for_update()
            )
        }
        holdings = {
            (h.connection_id, h.symbol): h
            for h in await session.scalars(
                select(PaperHolding)
                .where(PaperHolding.connection_id.in_(conn_ids), PaperHolding.symbol.in_(symbols))
                .order_by(PaperHolding.id)
                .with_for_update()
            )
        }
        leverages: dict[int, Decimal] = {
            conn_id: leverage
            for conn_id, leverage in await session.execute(
                select(ExecutionConnection.id, TradingPreset.leverage)
                .join(TradingPreset, ExecutionConnection.preset_id == TradingPreset.id)
                .where(ExecutionConnection.id.in_(conn_ids))
            )
            if leverage and leverage > 0
        }
        placed: list[PaperOrder | ExchangeError] = []
        for r in requests:
            paper = r.adapter
            try:
                _, quote = parse_symbol(r.symbol)
                _check(r.amount, r.type, r.price)
                known = existing.get((paper.connection_id, r.client_order_id))
                if known is not None:  # the same client order id is the same order
                    placed.append(known)
                    continue
                last = prices[(paper.data_connection_id, r.symbol)]
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
                fill_at = paper.fill_price(order, last.close)
                if fill_at is not None:
                    balance = balances.get((paper.connection_id, quote))
                    if balance is None:
                        raise InsufficientFunds(f"the paper account holds no {quote}")
                    holding = holdings.get((paper.connection_id, r.symbol))
                    fee = normalize(order.amount * fill_at * paper.fee_rate)
                    leverage = leverages.get(paper.connection_id, ONE)
                    after = book_fill(_account(balance, holding), order, fill_at, fee, leverage)
                    if holding is None:
                        holding = PaperHolding(connection_id=paper.connection_id, symbol=r.symbol)
                        holdings[(paper.connection_id, r.symbol)] = holding
                        session.add(holding)
                    _apply(after, balance, holding)
                    order.filled, order.average, order.fee = order.amount, fill_at, fee
                    order.status = OrderStatus.filled
                session.add(order)
                existing[(paper.connection_id, r.client_order_id)] = order
                placed.append(order)
            except ExchangeError as exc:
                placed.append(exc)
        await session.flush()  # one multi-row INSERT: the orders get their ids
        out = [p if isinstance(p, ExchangeError) else _result(p) for p in placed]
    return out


def _check(amount: Decimal, type: str, price: Decimal | None) -> None:
    if amount <= 0:
        raise InvalidOrder("amount must be positive")
    if type == OrderType.limit and (price is None or price <= 0):
        raise InvalidOrder("a limit order needs a positive price")
