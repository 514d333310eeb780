"""`MtapiAdapter`: one gateway session for one MetaTrader account."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from execution_service.decimals import ONE, round_down, round_to_tick
from execution_service.enums import Direction, OrderType
from execution_service.exchanges.base import (
    BalanceEntry,
    ExchangeError,
    FundingPayment,
    InvalidOrder,
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
from execution_service.exchanges.mtapi.gateway import Gateway, expect
from execution_service.exchanges.mtapi.markets import Markets
from execution_service.exchanges.mtapi.parsing import (
    PENDING_TYPES,
    POSITION_TYPES,
    Quote,
    Ticket,
    broker_close,
    check_lots,
    magic_number,
    mt_symbol,
    our_close,
    to_balance,
    to_order,
)
from execution_service.exchanges.mtapi.tickets import Tickets
from execution_service.exchanges.mtapi.writes import order_close, order_send
from execution_service.exchanges.values import plain, to_decimal
from execution_service.outbound.policy import OPEN, OutboundPolicy

COMMENT_MAX = 31  # MetaTrader truncates longer comments, which would break the lookup
QUOTE_CONCURRENCY = 8  # GetQuote calls in flight at once for one fetch_tickers
_OPERATIONS: dict[tuple[str, str], str] = {
    (Direction.buy, OrderType.market): "Buy",
    (Direction.sell, OrderType.market): "Sell",
    (Direction.buy, OrderType.limit): "BuyLimit",
    (Direction.sell, OrderType.limit): "SellLimit",
}
# Positions are broker tickets: amounts are lots of `contract_size`, SL/TP travel with the order
# and are amended in place, a position is closed by its entry ticket, and the broker checks
# margin itself. Our client order id goes in the comment (and the magic number derived from it).
CAPABILITIES = VenueCapabilities(
    positions_are_tickets=True,
    stops_with_entry=True,
    amends_stops=True,
    stop_orders=True,
    take_profit_orders=True,
    reduce_only=True,  # a close by ticket never opens the other way
    margin_checked_by_venue=True,
    client_ids=ClientIdFormat(max_length=COMMENT_MAX),
)


class MtapiAdapter:
    """One gateway session for one MetaTrader account. Create it once per connection and
    `close()` it."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        base_url: str,
        credentials: dict[str, str],
        *,
        timeout_ms: int = 10000,
        read_retries: int = 3,
        retry_base_delay: float = 0.2,
        markets_ttl_seconds: float = 3600,
        slippage_points: int = 20,
        history_days: int = 30,
        outbound: OutboundPolicy = OPEN,
    ) -> None:
        self._gateway = Gateway(
            base_url,
            credentials,
            timeout_ms=timeout_ms,
            read_retries=read_retries,
            retry_base_delay=retry_base_delay,
            outbound=outbound,
        )
        self._tickets = Tickets(self._gateway, history_days=history_days)
        self._markets = Markets(self._gateway, ttl_seconds=markets_ttl_seconds)
        self._slippage = str(slippage_points)
        self._currency: str | None = None

    # --- markets ---------------------------------------------------------------------------------

    async def market(self, symbol: str) -> Market:
        return await self._markets.get(symbol)

    async def load_markets(self, reload: bool = False) -> dict[str, Market]:
        return await self._markets.load(reload)

    # --- account and prices ----------------------------------------------------------------------

    async def fetch_balance(self) -> dict[str, BalanceEntry]:
        """`{account currency: free = free margin, used = margin, total = equity}`.

        `total` is equity (balance + floating profit of open tickets), not balance: it is what
        the account is worth now, what risk sizing takes a percent of, and it keeps
        free + used == total (MetaTrader's free margin is equity - margin)."""
        summary = expect(await self._gateway.read("/AccountSummary", {}), dict, "/AccountSummary")
        currency, balance = to_balance(summary)
        self._currency = currency
        return {currency: balance}

    async def read_balance(self) -> dict[str, BalanceEntry]:
        return await self.fetch_balance()  # nothing is kept: every read asks the gateway

    async def valuation(self, symbol: str) -> Valuation:
        """Lots: each a contract of `contract_size` units, its PnL in the symbol's quote
        currency turned into the account's."""
        market = await self.market(symbol)
        currency = await self.account_currency()
        rate = await self.quote_to_account_rate(symbol)
        return Valuation(currency, (market.contract_size or ONE) * rate, market.contract_size)

    async def account_currency(self) -> str:
        if self._currency is None:
            await self.fetch_balance()
        assert self._currency is not None
        return self._currency

    async def fetch_quote(self, symbol: str) -> Quote:
        body = expect(
            await self._gateway.read("/GetQuote", {"symbol": mt_symbol(symbol)}), dict, "quote"
        )
        bid, ask = to_decimal(body.get("bid")), to_decimal(body.get("ask"))
        if not bid or not ask or bid <= 0 or ask <= 0:
            raise NoPrice(f"mtapi has no quote for {symbol}")
        return Quote(symbol, bid, ask)

    async def fetch_ticker(self, symbol: str) -> Ticker:
        """The bid, MetaTrader's chart price. Stamped with the time of receipt: MetaTrader's own
        times are broker-server local time with no zone."""
        quote = await self.fetch_quote(symbol)
        return Ticker(symbol=symbol, price=quote.bid, timestamp=datetime.now(UTC))

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        """Tickers keyed by the symbols as asked; symbols the broker does not know are left out.
        The gateway quotes one symbol a call: up to QUOTE_CONCURRENCY calls run at once (a data
        connection's feed of a few dozen FX symbols takes a few round trips, not one each)."""
        bound = asyncio.Semaphore(QUOTE_CONCURRENCY)

        async def one(symbol: str) -> Ticker | None:
            async with bound:
                try:
                    return await self.fetch_ticker(symbol)
                except (InvalidOrder, NoPrice):
                    return None

        found = await asyncio.gather(*(one(s) for s in symbols))
        return {s: t for s, t in zip(symbols, found, strict=True) if t is not None}

    async def quote_to_account_rate(self, symbol: str) -> Decimal:
        """The rate turning an amount in `symbol`'s quote currency into the account currency
        (for `signals.fx.lots_for_risk`): 1 when they are the same, else from the mid quote of
        QUOTE+ACCOUNT, or 1 / the mid of ACCOUNT+QUOTE (USDJPY for yen on a USD account)."""
        market = await self.market(symbol)
        account = await self.account_currency()
        if market.quote == account:
            return ONE
        for pair, inverse in ((market.quote + account, False), (account + market.quote, True)):
            try:
                quote = await self.fetch_quote(pair)
            except InvalidOrder:  # the broker does not list this pair
                continue
            mid = (quote.bid + quote.ask) / 2
            return ONE / mid if inverse else mid
        raise NoPrice(f"no quote converts {market.quote} to {account}")

    # --- orders: reads ---------------------------------------------------------------------------

    async def fetch_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        trigger: bool = False,
    ) -> OrderResult:
        """By ticket, or by our client order id (the ticket whose magic it derives). A market
        ticket reports `filled` whether it is still open or closed since (its close is in
        `raw`: closePrice, closeTime, profit, comment)."""
        ticket, is_open = await self._tickets.lookup(symbol, order_id, client_order_id)
        return self._order(ticket, symbol, is_open=is_open, client_order_id=client_order_id)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        """Resting (pending) orders only; open positions are `fetch_position`'s."""
        opened = await self._tickets.opened()
        name = mt_symbol(symbol) if symbol else None
        return [
            self._order(t, symbol or str(t.get("symbol")), is_open=True)
            for t in opened
            if t.get("type") in PENDING_TYPES and (name is None or t.get("symbol") == name)
        ]

    async def fetch_position(self, symbol: str, order_id: str) -> OrderResult | None:
        """What is left open of the position entry ticket `order_id` opened (following MT4's
        partial-close chain): the live ticket, its lots in `amount`/`filled`, SL/TP and floating
        profit in `raw`. None once nothing is left: closed by us, or by the broker on SL/TP."""
        try:
            live = await self._tickets.live_ticket(order_id)
        except OrderNotFound:
            return None
        return self._order(live, symbol, is_open=True)

    # --- orders: writes --------------------------------------------------------------------------

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
        """OrderSend, never retried. `amount` in lots (rounded down to the volume step), SL/TP
        sent with the order so the broker holds them from the first tick."""
        operation = _OPERATIONS.get((side, type))
        if operation is None:
            raise InvalidOrder(f"unsupported order {side!r} {type!r}")
        if not client_order_id or len(client_order_id) > COMMENT_MAX:
            raise InvalidOrder(f"client order id must be 1..{COMMENT_MAX} characters")
        if not amount.is_finite() or amount <= 0:
            raise InvalidOrder(f"order amount must be positive, got {amount}")
        market = await self.market(symbol)
        lots = check_lots(market, round_down(amount, market.amount_step))
        params = {
            "symbol": market.symbol,
            "operation": operation,
            "volume": plain(lots),
            "slippage": self._slippage,
            "comment": client_order_id,
            "magic": str(magic_number(client_order_id)),
        }
        if type == OrderType.limit:
            if price is None or not price.is_finite() or price <= 0:
                raise InvalidOrder("a limit order needs a positive price")
            params["price"] = plain(round_to_tick(price, market.price_tick))
        if stops is not None and stops.sl is not None:
            params["stoploss"] = plain(round_to_tick(stops.sl, market.price_tick))
        if stops is not None and stops.tp is not None:
            params["takeprofit"] = plain(round_to_tick(stops.tp, market.price_tick))
        await self.account_currency()  # the fee currency, before the write rather than after
        ticket, is_open = await order_send(
            self._gateway, self._tickets, market.symbol, client_order_id, params
        )
        return self._order(ticket, symbol, is_open=is_open, client_order_id=client_order_id)

    async def place_protection(
        self, symbol: str, side: str, amount: Decimal, legs: list[ProtectiveLeg], list_id: str
    ) -> list[OrderResult]:
        raise NotSupported("mtapi: SL/TP travel with the position (amend_stops)")

    async def holds_alone(self, symbol: str, kind: OrderType) -> bool:
        return False

    async def amend_protection(
        self, symbol: str, side: str, leg: ProtectiveLeg, order_id: str | None
    ) -> OrderResult:
        raise NotSupported("mtapi: SL/TP travel with the position (amend_stops)")

    async def watch_order_changes(self) -> list[str]:
        raise NotSupported("mtapi: no order stream")

    async def watch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        raise NotSupported("mtapi: no ticker stream")

    async def amend_stops(
        self, symbol: str, position_ref: str, *, sl: Decimal | None, tp: Decimal | None
    ) -> OrderResult:
        """Set the broker-held SL and TP of a position (or pending order). MetaTrader replaces
        both at once: pass both current levels; None removes a level (sent as 0). Follows the
        partial-close chain, so `position_ref` may be the entry ticket."""
        market = await self.market(symbol)
        live = await self._tickets.live_ticket(position_ref)
        params = {
            "ticket": str(live.get("ticket")),
            "stoploss": plain(round_to_tick(sl, market.price_tick)) if sl else "0",
            "takeprofit": plain(round_to_tick(tp, market.price_tick)) if tp else "0",
        }
        if live.get("type") in PENDING_TYPES:  # MT4 wants a pending order's price restated
            params["price"] = plain(to_decimal(live.get("openPrice")) or Decimal(0))
        # Idempotent (the same levels twice are the same levels), so a reconnect may resend it.
        body = expect(await self._gateway.call("/OrderModify", params), dict, "/OrderModify")
        return self._order(body, symbol, is_open=True)

    async def set_leverage(self, symbol: str, leverage: Decimal) -> None:
        return None  # a broker ticket is the position; no funding or leverage per symbol here

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[VenuePosition]:
        return []  # a broker ticket is the position; no funding or leverage per symbol here

    async def fetch_funding(self, symbol: str, since: datetime) -> list[FundingPayment]:
        return []  # a broker ticket is the position; no funding or leverage per symbol here

    async def fetch_closes(self, symbol: str, since: datetime) -> list[VenueClose]:
        return []  # a broker ticket is the position; no funding or leverage per symbol here

    async def hedge_mode(self) -> bool:
        return False

    async def close_position(
        self, symbol: str, position_ref: str, amount: Decimal, client_order_id: str
    ) -> OrderResult:
        """Close `amount` lots of the position entry ticket `position_ref` opened (all that is
        left if `amount` is more). A `filled` order of the opposite side at the close price; `raw`
        holds the closed ticket with its `profit` in the account currency, and
        `remaining_ticket`. If the broker already closed it (its SL or TP, or a trader's
        terminal), the result is that close, with the broker's price, profit and reason.

        MetaTrader cannot carry `client_order_id` on a close (it is only echoed back), so a
        close whose reply was lost is reconciled by ticket: `fetch_position`/`fetch_order`."""
        if not amount.is_finite():
            raise InvalidOrder(f"lots must be a number, got {amount}")
        market = await self.market(symbol)
        try:
            live = await self._tickets.live_ticket(position_ref)
        except OrderNotFound:  # nothing of it is open any more: its close is in the history
            gone = await self.fetch_order(symbol, order_id=position_ref)
            return broker_close(gone, position_ref, amount)
        if live.get("type") not in POSITION_TYPES:
            raise InvalidOrder(f"ticket {position_ref} is a pending order: cancel it instead")
        open_lots = to_decimal(live.get("lots")) or Decimal(0)
        wanted = round_down(min(amount, open_lots), market.amount_step)
        if wanted <= 0:
            raise InvalidOrder(f"{amount} lots rounds down to nothing at step {market.amount_step}")
        await self.account_currency()
        closed = await order_close(
            self._gateway, self._tickets, position_ref, live, wanted, self._slippage
        )
        result = our_close(closed, symbol, wanted, client_order_id)
        remaining = None
        if result.filled < open_lots:
            try:
                remaining = str(
                    (await self._tickets.live_ticket(str(closed.get("ticket")))).get("ticket")
                )
            except ExchangeError:
                remaining = None  # the close itself succeeded; the heir is found again later
        result.raw["remaining_ticket"] = remaining
        return result

    async def cancel_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        trigger: bool = False,
    ) -> OrderResult:
        """Delete a pending order (OrderClose on a pending ticket). A position is not an order
        to cancel: InvalidOrder, use `close_position`."""
        ticket, is_open = await self._tickets.lookup(symbol, order_id, client_order_id)
        number = str(ticket.get("ticket"))
        if not is_open:
            raise OrderNotFound(f"ticket {number} is no longer open")
        if ticket.get("type") not in PENDING_TYPES:
            raise InvalidOrder(f"ticket {number} is an open position: close it instead")
        # Safe to resend after a reconnect: deleting an already deleted order is INVALID_TICKET.
        body = expect(
            await self._gateway.call("/OrderClose", {"ticket": number}), dict, "/OrderClose"
        )
        return self._order(body, symbol, is_open=False, client_order_id=client_order_id)

    async def close(self) -> None:
        await self._gateway.close()

    def _order(
        self, t: Ticket, symbol: str, *, is_open: bool, client_order_id: str | None = None
    ) -> OrderResult:
        return to_order(
            t, symbol, is_open=is_open, currency=self._currency, client_order_id=client_order_id
        )
