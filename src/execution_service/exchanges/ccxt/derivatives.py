"""A ccxt account's derivatives: leverage and margin mode per symbol, its positions, funding,
how positions went away without us, and its position mode. Each venue's differences come from
its row of `venues.py`; ccxt's answers are read here into base.py's values."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from execution_service.decimals import ratio
from execution_service.exchanges.base import (
    ExchangeError,
    FundingPayment,
    LeverageNotSet,
    VenueClose,
    VenuePosition,
)
from execution_service.exchanges.capabilities import VenueCapabilities
from execution_service.exchanges.ccxt.parsing import info_of
from execution_service.exchanges.ccxt.venues import CcxtVenue
from execution_service.exchanges.values import to_decimal

Read = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]
# OKX positions-history `type`: 3 liquidation, 4 partial liquidation, 5 auto-deleveraging.
# Bybit closed-pnl `execType`: BustTrade (liquidation), AdlTrade.
_OKX_LIQUIDATIONS = {"3", "4", "5"}
_BYBIT_LIQUIDATIONS = {"BustTrade", "AdlTrade"}


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _at(ms: Any) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC) if ms else datetime.now(UTC)


class Account(Protocol):
    """What the derivatives side needs of its adapter."""

    _ex: Any

    @property
    def capabilities(self) -> VenueCapabilities: ...

    async def load_markets(self, reload: bool = False) -> dict[str, Any]: ...

    async def venue_symbol(self, symbol: str) -> str: ...


class Derivatives:
    """The derivatives side of one ccxt client, for our symbols (`account.venue_symbol` names them
    as the venue does). `read` calls ccxt with read retries and error translation; `write`
    without retries (leverage and margin mode are idempotent, but a refusal must not be retried
    into a different answer). On a spot account each is a no-op."""

    def __init__(self, account: Account, venue: CcxtVenue, read: Read, write: Read) -> None:
        self._account, self._venue, self._read, self._write = account, venue, read, write
        self._leverage: dict[str, Decimal] = {}
        self._lock = asyncio.Lock()

    @property
    def _ex(self) -> Any:
        return self._account._ex

    async def set_leverage(self, ours: str, leverage: Decimal) -> None:
        """Once per (symbol, leverage) for this client: the margin mode the venue row says, then
        the leverage. "Already so" answers count as done."""
        if not self._account.capabilities.venue_positions:
            return
        symbol = await self._account.venue_symbol(ours)
        if self._leverage.get(symbol) == leverage:
            return
        async with self._lock:
            if self._leverage.get(symbol) == leverage:
                return
            whole = leverage == leverage.to_integral_value()
            value: Any = int(leverage) if whole else float(leverage)  # not money
            venue = self._venue
            params: dict[str, Any] = {}
            if venue.margin_mode is not None and venue.margin_mode_with_leverage:
                params["marginMode"] = venue.margin_mode
            elif venue.margin_mode is not None:
                await self._unless_unchanged(
                    lambda: self._ex.set_margin_mode(venue.margin_mode, symbol)
                )
            await self._unless_unchanged(lambda: self._ex.set_leverage(value, symbol, params))
            self._leverage[symbol] = leverage

    async def _unless_unchanged(self, call: Callable[[], Awaitable[Any]]) -> None:
        try:
            await self._write(call)
        except ExchangeError as exc:
            if "MarginModeAlreadySet" in exc.message or any(
                marker in exc.message for marker in self._venue.unchanged
            ):
                return
            raise LeverageNotSet(exc.message) from None

    async def positions(self, symbols: list[str] | None) -> list[VenuePosition]:
        """The account's positions (in `symbols`, named as asked), in one request."""
        if not self._account.capabilities.venue_positions:
            return []
        await self._account.load_markets()  # the venue's shared copy, not ccxt's own load
        ours = {}
        for symbol in symbols or []:
            try:
                ours[await self._account.venue_symbol(symbol)] = symbol
            except ExchangeError:
                continue
        held = await self._held()
        if symbols is None:
            return [position for _, position in held]
        return [replace(p, symbol=ours[v]) for v, p in held if v in ours]

    async def _held(self) -> list[tuple[str, VenuePosition]]:
        await self._account.load_markets()
        raw = await self._read(lambda: self._ex.fetch_positions())
        out = []
        for p in raw:
            amount = to_decimal(p.get("contracts"))
            side = {"long": "buy", "short": "sell"}.get(str(p.get("side")))
            if not amount or side is None:
                continue
            position = VenuePosition(
                symbol=p["symbol"],
                side=side,
                amount=amount,
                entry_price=to_decimal(p.get("entryPrice")),
                liquidation_price=to_decimal(p.get("liquidationPrice")) or None,
                leverage=to_decimal(p.get("leverage")),
                unrealized_pnl=to_decimal(p.get("unrealizedPnl")),
                raw=info_of(p),
            )
            out.append((p["symbol"], position))
        return out

    async def hedge_mode(self) -> bool:
        if not self._account.capabilities.venue_positions:
            return False
        await self._account.load_markets()
        if self._venue.position_mode_from_positions:
            raw = await self._read(lambda: self._ex.fetch_positions())
            return any(str(info_of(p).get("positionIdx", "0")) != "0" for p in raw)
        if not self._ex.has.get("fetchPositionMode"):
            return False
        mode = await self._read(lambda: self._ex.fetch_position_mode())
        return bool(mode.get("hedged"))

    async def funding(self, ours: str, since: datetime) -> list[FundingPayment]:
        if not self._account.capabilities.funding:
            return []
        symbol = await self._account.venue_symbol(ours)
        raw = await self._read(lambda: self._ex.fetch_funding_history(symbol, _ms(since)))
        sign = Decimal(self._venue.funding_sign)
        out = []
        for f in raw:
            amount = to_decimal(f.get("amount"))
            if amount is None or not f.get("id"):
                continue
            at = _at(f.get("timestamp"))
            if at < since:
                continue
            code = f.get("code") or ""
            out.append(FundingPayment(str(f["id"]), ours, amount * sign, code, at))
        return sorted(out, key=lambda f: (f.at, f.id))

    async def closes(self, ours: str, since: datetime) -> list[VenueClose]:
        if not self._account.capabilities.venue_positions:
            return []
        symbol = await self._account.venue_symbol(ours)
        if self._venue.closes_from_history:
            raw = await self._read(lambda: self._ex.fetch_positions_history([symbol], _ms(since)))
            found = [_history_close(info_of(p), ours) for p in raw]
        else:
            found = await self._liquidations_and_trades(symbol, ours, since)
        return sorted((c for c in found if c is not None and c.at >= since), key=lambda c: c.at)

    async def _liquidations_and_trades(
        self, symbol: str, ours: str, since: datetime
    ) -> list[VenueClose | None]:
        """Binance keeps no positions history: a liquidation is a `forceOrders` entry, a close
        by hand the account's trades that realised PnL."""
        liquidations = await self._read(lambda: self._ex.fetch_my_liquidations(symbol, _ms(since)))
        trades = await self._read(lambda: self._ex.fetch_my_trades(symbol, _ms(since)))
        by_order: dict[str, list[dict[str, Any]]] = {}
        for t in trades:
            if to_decimal(info_of(t).get("realizedPnl")):
                by_order.setdefault(str(t.get("order")), []).append(t)
        forced = {str(info_of(x).get("orderId")) for x in liquidations}
        return [_trades_close(ts, ours, order in forced) for order, ts in by_order.items()]


def _history_close(info: dict[str, Any], ours: str) -> VenueClose | None:
    """One record of a venue's positions history (OKX `positions-history`, Bybit
    `closed-pnl`)."""
    if "closeAvgPx" in info:  # OKX: fee and liqPenalty negative (charged), pnl gross
        price, amount = to_decimal(info.get("closeAvgPx")), to_decimal(info.get("closeTotalPos"))
        fees = -(to_decimal(info.get("fee")) or Decimal(0))
        fees -= to_decimal(info.get("liqPenalty")) or Decimal(0)
        side = "buy" if info.get("direction") == "long" else "sell"
        if price is None or not amount:
            return None
        return VenueClose(
            ours,
            side,
            amount,
            price,
            str(info.get("type")) in _OKX_LIQUIDATIONS,
            _at(info.get("uTime")),
            pnl=to_decimal(info.get("pnl")),
            fees_total=fees,
            raw=info,
        )
    price, amount = to_decimal(info.get("avgExitPrice")), to_decimal(info.get("closedSize"))
    if price is None or not amount:  # Bybit: closedPnl is net of openFee and closeFee
        return None
    open_fee = to_decimal(info.get("openFee")) or Decimal(0)
    close_fee = to_decimal(info.get("closeFee")) or Decimal(0)
    net = to_decimal(info.get("closedPnl"))
    return VenueClose(
        ours,
        "buy" if info.get("side") == "Sell" else "sell",  # the closing order's side
        amount,
        price,
        info.get("execType") in _BYBIT_LIQUIDATIONS,
        _at(info.get("updatedTime")),
        pnl=None if net is None else net + open_fee + close_fee,
        fee=close_fee,
        order_id=str(info.get("orderId") or ""),
        raw=info,
    )


def _trades_close(trades: list[dict[str, Any]], ours: str, liquidation: bool) -> VenueClose | None:
    """One closing order's trades (Binance futures `userTrades`: qty, price, realizedPnl and
    commission as strings)."""

    def total(name: str, times: str | None = None) -> Decimal:
        out = Decimal(0)
        for t in trades:
            value = to_decimal(info_of(t).get(name)) or Decimal(0)
            out += value * (to_decimal(info_of(t).get(times)) or Decimal(0)) if times else value
        return out

    amount = total("qty")
    if not amount:
        return None
    last = trades[-1]
    return VenueClose(
        ours,
        "sell" if last.get("side") == "buy" else "buy",  # a buy closes a short
        amount,
        ratio(total("qty", "price"), amount),
        liquidation,
        _at(last.get("timestamp")),
        pnl=total("realizedPnl"),
        fee=total("commission"),
        order_id=str(last.get("order") or ""),
        raw={"trades": [info_of(t) for t in trades]},
    )
