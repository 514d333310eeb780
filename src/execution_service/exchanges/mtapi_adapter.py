"""`ExchangeAdapter` for MetaTrader 4/5 accounts behind an mtapi.io-style REST gateway.

The gateway takes plain GETs with query parameters. `Connect` (user, password, host, port)
answers a session token that every later call carries as `id`; errors are JSON
`{message, code}`. httpx stays inside this module, and JSON numbers are parsed straight into
Decimal (never through float) so no binary noise reaches the service's money columns.

MetaTrader's model, and how it maps onto the service's:
- `amount` is in lots. A market order opens a *ticket* (a position) and is `filled` at once; a
  limit order is a pending ticket (`open`) until the broker fills it.
- There is no client order id. Ours goes in the ticket's `comment` (31 characters at most) and a
  `magic` number derived from it: brokers rewrite comments (an SL close appends "[sl]", an MT4
  partial close turns it into "to #<ticket>") but keep the magic, so reconciliation after a lost
  reply finds the ticket by magic in OpenedOrders/OrderHistory.
- Closing is not an opposite order (on a hedging account a Sell opens a second ticket): it is
  `close_position()`, by ticket. An MT4 partial close moves the rest to a new ticket commented
  "from #<old>"; `close_position`/`modify_order`/`fetch_position` follow that chain, so callers
  keep using the entry ticket.
- The broker holds SL/TP server-side: they go with the order and `modify_order` keeps them in
  sync. The broker may then close a ticket on its own (`fetch_position` answers None).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx

from execution_service.decimals import ONE, round_down, round_to_tick
from execution_service.enums import CloseReason, Direction, OrderStatus, OrderType
from execution_service.exchanges.base import (
    AuthFailed,
    BalanceEntry,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    Market,
    NoPrice,
    OrderNotFound,
    OrderResult,
    Stops,
    TemporaryError,
    Ticker,
    Valuation,
)
from execution_service.exchanges.capabilities import ClientIdFormat, VenueCapabilities
from execution_service.exchanges.retry import retry_read
from execution_service.exchanges.values import first, plain, retry_after_seconds, to_decimal

T = TypeVar("T")
Ticket = dict[str, Any]  # one order as the gateway sends it (see tests/fakes/mtapi.py)

COMMENT_MAX = 31  # MetaTrader truncates longer comments, which would break the lookup
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
_POSITION_TYPES = frozenset({"Buy", "Sell"})
_PENDING_TYPES = frozenset({"BuyLimit", "SellLimit", "BuyStop", "SellStop"})
_FROM = re.compile(r"^from #(\d+)")
_TO = re.compile(r"^to #(\d+)")

# Gateway error codes by what they mean for the service. Anything else named INVALID_* is an
# invalid order; anything else at all a plain ExchangeError.
_NOT_FOUND = frozenset({"INVALID_TICKET", "TICKET_NOT_FOUND", "ORDER_NOT_FOUND"})
_NO_MONEY = frozenset({"NO_MONEY", "NOT_ENOUGH_MONEY"})
_AUTH = frozenset(
    {"INVALID_ACCOUNT", "INVALID_PASSWORD", "AUTH_FAILED", "ACCOUNT_DISABLED", "CONNECT_FAILED"}
)
_TEMPORARY = frozenset(
    {"SERVER_BUSY", "NO_CONNECTION", "NOT_CONNECTED", "TIMEOUT", "TRADE_TIMEOUT"}
    | {"TOO_MANY_REQUESTS", "BROKER_BUSY", "TRADE_CONTEXT_BUSY"}
)
# A requote or off-quotes answer is a definite "not placed", so it is an invalid order (the
# service records it rejected) rather than a temporary error (which means "outcome unknown").
_INVALID_ORDER = frozenset(
    {"MARKET_CLOSED", "TRADE_DISABLED", "REQUOTE", "OFF_QUOTES", "PRICE_CHANGED", "TOO_MANY_ORDERS"}
)


def mt_symbol(symbol: str) -> str:
    """MetaTrader's name for a symbol: "EUR/USD" -> "EURUSD" (suffixes such as ".r" kept)."""
    return symbol.replace("/", "")


def magic_number(client_order_id: str) -> int:
    """A stable magic number for a client order id, in 1..2**31-1 (MetaTrader's int, and never
    0, which marks manual trades)."""
    return zlib.crc32(client_order_id.encode()) % (2**31 - 1) + 1


class _TokenExpired(ExchangeError):
    """INVALID_TOKEN: handled inside the adapter by reconnecting; never leaves it."""


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal


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
    ) -> None:
        missing = [k for k in ("user", "password", "host") if not credentials.get(k)]
        if missing:
            raise AuthFailed(f"mtapi credentials lack {', '.join(missing)}")
        self._login = {k: str(credentials[k]) for k in ("user", "password", "host")}
        if credentials.get("port"):
            self._login["port"] = str(credentials["port"])
        # Never echoed in messages (and the Connect URL, which carries them, never is either).
        self._secrets = [v for v in credentials.values() if v and len(v) >= 4]
        self._read_retries = read_retries
        self._retry_base_delay = retry_base_delay
        self._markets_ttl = markets_ttl_seconds
        self._slippage = str(slippage_points)
        self._history_days = history_days
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_ms / 1000)
        self._token: str | None = None
        self._connect_lock = asyncio.Lock()
        self._markets: dict[str, tuple[float, Market]] = {}
        self._currency: str | None = None

    # --- markets ---------------------------------------------------------------------------------

    async def market(self, symbol: str) -> Market:
        """One symbol's lots and prices, from SymbolParams (cached for `markets_ttl_seconds`;
        a failed refresh keeps serving the cached copy)."""
        name = mt_symbol(symbol)
        cached = self._markets.get(name)
        if cached is not None and time.monotonic() - cached[0] < self._markets_ttl:
            return cached[1]
        try:
            body = await self._read("/SymbolParams", {"symbol": name})
        except TemporaryError:
            if cached is None:
                raise
            return cached[1]
        market = _to_market(name, _expect(body, dict, "/SymbolParams"))
        self._markets[name] = (time.monotonic(), market)
        return market

    async def load_markets(self, reload: bool = False) -> dict[str, Market]:
        """Every symbol of the account: one Symbols call, then one SymbolParams per symbol not
        cached (lot limits are per account group, so they are not in the list). On a broker
        with hundreds of symbols this is slow; the service only ever needs `market()`."""
        names = _expect(await self._read("/Symbols", {}), list, "/Symbols")
        if reload:
            self._markets.clear()
        markets: dict[str, Market] = {}
        for item in names:
            name = item if isinstance(item, str) else str(item.get("symbol") or item.get("name"))
            markets[name] = await self.market(name)
        return markets

    # --- account and prices ----------------------------------------------------------------------

    async def fetch_balance(self) -> dict[str, BalanceEntry]:
        """`{account currency: free = free margin, used = margin, total = equity}`.

        `total` is equity (balance + floating profit of open tickets), not balance: it is what
        the account is worth now, what risk sizing takes a percent of, and it keeps
        free + used == total (MetaTrader's free margin is equity - margin)."""
        summary = _expect(await self._read("/AccountSummary", {}), dict, "/AccountSummary")
        currency = str(summary.get("currency") or "")
        if not currency:
            raise ExchangeError("mtapi AccountSummary has no currency")
        self._currency = currency
        zero = Decimal(0)
        return {
            currency: BalanceEntry(
                free=to_decimal(summary.get("freeMargin")) or zero,
                used=to_decimal(summary.get("margin")) or zero,
                total=first(to_decimal(summary.get("equity")), to_decimal(summary.get("balance")))
                or zero,
            )
        }

    def forget_balance(self) -> None:
        return None  # nothing is kept: every fetch_balance asks the gateway

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
        body = _expect(await self._read("/GetQuote", {"symbol": mt_symbol(symbol)}), dict, "quote")
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
        """Tickers keyed by the symbols as asked; symbols the broker does not know are left out."""
        out: dict[str, Ticker] = {}
        for symbol in symbols:
            try:
                out[symbol] = await self.fetch_ticker(symbol)
            except (InvalidOrder, NoPrice):
                continue
        return out

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
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderResult:
        """By ticket, or by our client order id (the ticket whose magic it derives). A market
        ticket reports `filled` whether it is still open or closed since (its close is in
        `raw`: closePrice, closeTime, profit, comment)."""
        ticket, is_open = await self._lookup(symbol, order_id, client_order_id)
        return self._to_order(ticket, symbol, is_open=is_open, client_order_id=client_order_id)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        """Resting (pending) orders only; open positions are `fetch_position`'s."""
        opened = await self._opened()
        name = mt_symbol(symbol) if symbol else None
        return [
            self._to_order(t, symbol or str(t.get("symbol")), is_open=True)
            for t in opened
            if t.get("type") in _PENDING_TYPES and (name is None or t.get("symbol") == name)
        ]

    async def fetch_position(self, symbol: str, order_id: str) -> OrderResult | None:
        """What is left open of the position entry ticket `order_id` opened (following MT4's
        partial-close chain): the live ticket, its lots in `amount`/`filled`, SL/TP and floating
        profit in `raw`. None once nothing is left: closed by us, or by the broker on SL/TP."""
        try:
            live = await self._live_ticket(order_id)
        except OrderNotFound:
            return None
        return self._to_order(live, symbol, is_open=True)

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
        lots = _check_lots(market, round_down(amount, market.amount_step))
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
        ticket, is_open = await self._order_send(market.symbol, client_order_id, params)
        return self._to_order(ticket, symbol, is_open=is_open, client_order_id=client_order_id)

    async def amend_stops(
        self, symbol: str, position_ref: str, *, sl: Decimal | None, tp: Decimal | None
    ) -> OrderResult:
        """Set the broker-held SL and TP of a position (or pending order). MetaTrader replaces
        both at once: pass both current levels; None removes a level (sent as 0). Follows the
        partial-close chain, so `position_ref` may be the entry ticket."""
        market = await self.market(symbol)
        live = await self._live_ticket(position_ref)
        params = {
            "ticket": str(live.get("ticket")),
            "stoploss": plain(round_to_tick(sl, market.price_tick)) if sl else "0",
            "takeprofit": plain(round_to_tick(tp, market.price_tick)) if tp else "0",
        }
        if live.get("type") in _PENDING_TYPES:  # MT4 wants a pending order's price restated
            params["price"] = plain(to_decimal(live.get("openPrice")) or Decimal(0))
        # Idempotent (the same levels twice are the same levels), so a reconnect may resend it.
        body = _expect(await self._call("/OrderModify", params), dict, "/OrderModify")
        return self._to_order(body, symbol, is_open=True)

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
            live = await self._live_ticket(position_ref)
        except OrderNotFound:
            return await self._closed_by_broker(symbol, position_ref, amount, client_order_id)
        if live.get("type") not in _POSITION_TYPES:
            raise InvalidOrder(f"ticket {position_ref} is a pending order: cancel it instead")
        open_lots = to_decimal(live.get("lots")) or Decimal(0)
        wanted = round_down(min(amount, open_lots), market.amount_step)
        if wanted <= 0:
            raise InvalidOrder(f"{amount} lots rounds down to nothing at step {market.amount_step}")
        await self.account_currency()
        closed = await self._order_close(position_ref, live, wanted)
        result = self._to_order(closed, symbol, is_open=False, client_order_id=client_order_id)
        result.side = _opposite(result.side)
        result.amount, result.filled = wanted, to_decimal(closed.get("lots")) or wanted
        result.average = to_decimal(closed.get("closePrice"))
        result.fee, result.fee_currency = Decimal(0), None  # MT charges commission on open
        remaining = None
        if result.filled < open_lots:
            try:
                remaining = str((await self._live_ticket(str(closed.get("ticket")))).get("ticket"))
            except ExchangeError:
                remaining = None  # the close itself succeeded; the heir is found again later
        result.raw["remaining_ticket"] = remaining
        return result

    async def _closed_by_broker(
        self, symbol: str, position_ref: str, amount: Decimal, client_order_id: str
    ) -> OrderResult:
        """Nothing of the position is open any more: its close in the history, as the fill of
        our exit, with the reason the broker's comment gives ("[sl]", "[tp]")."""
        closed = await self.fetch_order(symbol, order_id=position_ref)
        price = to_decimal(closed.raw.get("closePrice"))
        if price is None:
            raise OrderNotFound(f"ticket {position_ref} has nothing left open")
        comment = _comment(closed.raw).lower()
        closed.close_reason = (
            CloseReason.sl
            if "[sl" in comment
            else CloseReason.tp
            if "[tp" in comment
            else CloseReason.external
        )
        closed.side = _opposite(closed.side)
        closed.status = OrderStatus.filled
        closed.amount = closed.filled = amount
        closed.average = price
        return closed

    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderResult:
        """Delete a pending order (OrderClose on a pending ticket). A position is not an order
        to cancel: InvalidOrder, use `close_position`."""
        ticket, is_open = await self._lookup(symbol, order_id, client_order_id)
        number = str(ticket.get("ticket"))
        if not is_open:
            raise OrderNotFound(f"ticket {number} is no longer open")
        if ticket.get("type") not in _PENDING_TYPES:
            raise InvalidOrder(f"ticket {number} is an open position: close it instead")
        # Safe to resend after a reconnect: deleting an already deleted order is INVALID_TICKET.
        body = _expect(await self._call("/OrderClose", {"ticket": number}), dict, "/OrderClose")
        return self._to_order(body, symbol, is_open=False, client_order_id=client_order_id)

    async def close(self) -> None:
        await self._client.aclose()

    # --- the write paths that must not double-trade ----------------------------------------------

    async def _order_send(
        self, name: str, client_order_id: str, params: dict[str, str]
    ) -> tuple[Ticket, bool]:
        token = await self._session()
        try:
            body = await self._get("/OrderSend", {"id": token, **params})
            return _expect(body, dict, "/OrderSend"), True
        except _TokenExpired:
            pass
        # INVALID_TOKEN is the gateway refusing the session before it forwards anything to the
        # broker, so the order was not placed and sending it again is safe. Belt and braces, it
        # is first looked up by magic/comment after reconnecting: if a gateway ever answered
        # INVALID_TOKEN having forwarded the order, the lookup finds it and nothing is resent.
        await self._reconnect(token)
        found = await self._find_by_client_id(name, client_order_id)
        if found is not None:
            return found
        try:
            body = await self._get("/OrderSend", {"id": await self._session(), **params})
        except _TokenExpired:
            raise TemporaryError("mtapi refused a fresh session token on OrderSend") from None
        return _expect(body, dict, "/OrderSend"), True

    async def _order_close(self, order_id: str, live: Ticket, lots: Decimal) -> Ticket:
        params = {"ticket": str(live.get("ticket")), "lots": plain(lots)}
        params["slippage"] = self._slippage
        token = await self._session()
        try:
            return _expect(await self._get("/OrderClose", {"id": token, **params}), dict, "close")
        except _TokenExpired:
            pass
        # As for OrderSend the close was not forwarded; but a partial close sent twice closes
        # twice, so it is resent only if the position is exactly as it was before.
        await self._reconnect(token)
        now = await self._live_ticket(order_id)
        if now.get("ticket") != live.get("ticket") or now.get("lots") != live.get("lots"):
            raise TemporaryError(f"ticket {order_id} changed while reconnecting: outcome unknown")
        body = await self._call("/OrderClose", params)
        return _expect(body, dict, "/OrderClose")

    # --- finding tickets -------------------------------------------------------------------------

    async def _opened(self) -> list[Ticket]:
        return _tickets(await self._read("/OpenedOrders", {}), "/OpenedOrders")

    async def _history(self) -> list[Ticket]:
        # Broker server time runs up to a few hours ahead of UTC: a day of margin on `to`.
        now = datetime.now(UTC).replace(tzinfo=None)
        window = {
            "from": (now - timedelta(days=self._history_days)).strftime("%Y-%m-%dT%H:%M:%S"),
            "to": (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        }
        return _tickets(await self._read("/OrderHistory", window), "/OrderHistory")

    async def _lookup(
        self, symbol: str, order_id: str | None, client_order_id: str | None
    ) -> tuple[Ticket, bool]:
        if order_id:
            opened = await self._opened()
            found = next((t for t in opened if str(t.get("ticket")) == str(order_id)), None)
            if found is not None:
                return found, True
            history = await self._history()
            found = next((t for t in history if str(t.get("ticket")) == str(order_id)), None)
            if found is not None:
                return found, False
            raise OrderNotFound(f"mtapi has no ticket {order_id}")
        if client_order_id:
            hit = await self._find_by_client_id(mt_symbol(symbol), client_order_id)
            if hit is None:
                raise OrderNotFound(f"mtapi has no ticket for client order id {client_order_id}")
            return hit
        raise InvalidOrder("order_id or client_order_id is required")

    async def _find_by_client_id(
        self, name: str, client_order_id: str
    ) -> tuple[Ticket, bool] | None:
        """The ticket our order opened: same symbol and magic, preferring one whose comment
        still starts with the id; else the lowest such ticket, the original (an MT4 partial
        close leaves the original "to #N" in history and an heir "from #M" with our magic)."""
        magic = magic_number(client_order_id)

        def ours(t: Ticket) -> bool:
            return _int(t.get("magicNumber")) == magic and t.get("symbol") == name

        def named(t: Ticket) -> bool:
            return str(t.get("comment") or "").startswith(client_order_id)

        opened = [(t, True) for t in await self._opened() if ours(t)]
        if any(named(t) for t, _ in opened):
            return next((t, o) for t, o in opened if named(t))
        found = opened + [(t, False) for t in await self._history() if ours(t)]
        pool = [(t, o) for t, o in found if named(t)] or found
        return min(pool, key=lambda c: _int(c[0].get("ticket"))) if pool else None

    async def _live_ticket(self, order_id: str) -> Ticket:
        """The open ticket now carrying what ticket `order_id` opened: itself, or its heir after
        MT4 partial closes (heirs say "from #<old>"; the closed parts say "to #<heir>")."""
        opened = {str(t.get("ticket")): t for t in await self._opened()}
        heirs = {m.group(1): t for t in opened.values() if (m := _FROM.match(_comment(t)))}
        history: dict[str, Ticket] | None = None
        current = str(order_id)
        for _ in range(100):  # a chain is one link per partial close
            if current in opened:
                return opened[current]
            if current in heirs:
                return heirs[current]
            if history is None:
                history = {str(t.get("ticket")): t for t in await self._history()}
            link = _TO.match(_comment(history.get(current, {})))
            if link is None:
                break
            current = link.group(1)
        raise OrderNotFound(f"ticket {order_id} has nothing left open")

    # --- calling the gateway ---------------------------------------------------------------------

    async def _read(self, path: str, params: dict[str, str]) -> Any:
        return await retry_read(
            lambda: self._call(path, params),
            retries=self._read_retries,
            base_delay=self._retry_base_delay,
        )

    async def _call(self, path: str, params: dict[str, str]) -> Any:
        """One authenticated call; on an expired token, reconnect and call once more. Only for
        reads and idempotent writes: OrderSend and partial closes have their own paths."""
        token = await self._session()
        try:
            return await self._get(path, {"id": token, **params})
        except _TokenExpired:
            token = await self._reconnect(token)
        try:
            return await self._get(path, {"id": token, **params})
        except _TokenExpired:
            raise TemporaryError(f"mtapi refused a fresh session token on {path}") from None

    async def _session(self) -> str:
        return self._token if self._token is not None else await self._reconnect(None)

    async def _reconnect(self, stale: str | None) -> str:
        """Connect for a new token, once for all the tasks that found `stale` expired."""
        async with self._connect_lock:
            if self._token is not None and self._token != stale:
                return self._token  # another task reconnected while this one waited
            self._token = None
            body = await self._get("/Connect", self._login)
            token = str(body).strip() if isinstance(body, str | int) else ""  # "1234" parses
            if not token:
                raise ExchangeError("mtapi Connect answered without a session token")
            self._token = token
            return token

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        """One GET. Messages name the call, never the URL: Connect's carries the password."""
        failure = None
        try:
            response = await self._client.get(path, params=params)
        except httpx.TimeoutException:
            failure = f"mtapi {path} timed out"
        except httpx.HTTPError as e:  # refused, reset, protocol errors
            failure = f"mtapi {path}: {type(e).__name__}"
        if failure is not None:  # raised out here: no chained httpx error holding the URL
            raise TemporaryError(failure)
        status = response.status_code
        try:
            body: Any = json.loads(response.text, parse_float=Decimal)
        except ValueError:
            body = response.text  # Connect answers its token as plain text
        if status >= 500 or status == 429:
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            raise TemporaryError(f"mtapi {path} answered HTTP {status}", retry_after=retry_after)
        if isinstance(body, dict) and isinstance(body.get("code"), str) and "message" in body:
            raise self._translate(path, body)
        if status in (401, 403):
            raise AuthFailed(f"mtapi {path} answered HTTP {status}")
        if status >= 400:
            raise ExchangeError(f"mtapi {path} answered HTTP {status}")
        return body

    def _translate(self, path: str, body: dict[str, Any]) -> ExchangeError:
        code = str(body["code"]).upper()
        message = self._scrub(f"{code}: {body.get('message') or ''}")
        if code == "INVALID_TOKEN":
            return _TokenExpired(message)
        if code in _TEMPORARY:
            return TemporaryError(message)
        if path == "/Connect" or code in _AUTH:
            return AuthFailed(message)  # whatever else stops a login is the login's problem
        if code in _NOT_FOUND:
            return OrderNotFound(message)
        if code in _NO_MONEY or "not enough money" in message.lower():
            return InsufficientFunds(message)
        if code in _INVALID_ORDER or code.startswith("INVALID_"):
            return InvalidOrder(message)
        return ExchangeError(message)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:200]

    # --- parsing ---------------------------------------------------------------------------------

    def _to_order(
        self,
        t: Ticket,
        symbol: str,
        *,
        is_open: bool,
        client_order_id: str | None = None,
    ) -> OrderResult:
        kind = str(t.get("type") or "")
        lots = to_decimal(t.get("lots")) or Decimal(0)
        open_price = to_decimal(t.get("openPrice"))
        commission = to_decimal(t.get("commission")) or Decimal(0)
        fee = -commission if commission < 0 else Decimal(0)  # MT books charges as negatives
        position = kind in _POSITION_TYPES
        return OrderResult(
            order_id=str(t.get("ticket") or ""),
            client_order_id=client_order_id or _comment(t) or None,
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
            fee_currency=self._currency if fee else None,
            raw=dict(t),
            # A closed ticket's profit, in the account currency: the broker's own figure.
            realized_pnl=None if is_open else to_decimal(t.get("profit")),
        )


def _to_market(name: str, body: dict[str, Any]) -> Market:
    info = body.get("symbolInfo") if isinstance(body.get("symbolInfo"), dict) else body
    group = body.get("groupParams") if isinstance(body.get("groupParams"), dict) else body
    assert isinstance(info, dict) and isinstance(group, dict)
    digits = _int(info.get("digits"), -1)
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


def _check_lots(market: Market, lots: Decimal) -> Decimal:
    if lots <= 0 or (market.min_amount is not None and lots < market.min_amount):
        raise InvalidOrder(f"{lots} lots is under {market.symbol}'s minimum {market.min_amount}")
    if market.max_amount is not None and lots > market.max_amount:
        raise InvalidOrder(f"{lots} lots is over {market.symbol}'s maximum {market.max_amount}")
    return lots


def _expect(body: Any, kind: type[T], what: str) -> T:
    if not isinstance(body, kind):
        raise ExchangeError(f"mtapi {what} answered an unexpected {type(body).__name__}")
    return body


def _tickets(body: Any, what: str) -> list[Ticket]:
    """Trade tickets only: history also lists balance and credit operations."""
    rows = _expect(body, list, what)
    return [t for t in rows if isinstance(t, dict) and t.get("type") not in ("Balance", "Credit")]


def _opposite(side: str) -> str:
    return Direction.sell if side == Direction.buy else Direction.buy


def _comment(t: Ticket) -> str:
    return str(t.get("comment") or "")


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, ArithmeticError):
        return default
