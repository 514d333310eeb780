"""The symbols of one MetaTrader account, from SymbolParams, each cached for a while."""

from __future__ import annotations

import time

from execution_service.exchanges.base import Market, TemporaryError
from execution_service.exchanges.mtapi.gateway import Gateway, expect
from execution_service.exchanges.mtapi.parsing import mt_symbol, to_market


class Markets:
    def __init__(self, gateway: Gateway, *, ttl_seconds: float) -> None:
        self._gateway = gateway
        self._ttl = ttl_seconds
        self._markets: dict[str, tuple[float, Market]] = {}

    async def get(self, symbol: str) -> Market:
        """One symbol's lots and prices, from SymbolParams (cached for `ttl_seconds`; a failed
        refresh keeps serving the cached copy)."""
        name = mt_symbol(symbol)
        cached = self._markets.get(name)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        try:
            body = await self._gateway.read("/SymbolParams", {"symbol": name})
        except TemporaryError:
            if cached is None:
                raise
            return cached[1]
        market = to_market(name, expect(body, dict, "/SymbolParams"))
        self._markets[name] = (time.monotonic(), market)
        return market

    async def load(self, reload: bool = False) -> dict[str, Market]:
        """Every symbol of the account: one Symbols call, then one SymbolParams per symbol not
        cached (lot limits are per account group, so they are not in the list). On a broker
        with hundreds of symbols this is slow; the service only ever needs `get()`."""
        names = expect(await self._gateway.read("/Symbols", {}), list, "/Symbols")
        if reload:
            self._markets.clear()
        markets: dict[str, Market] = {}
        for item in names:
            name = item if isinstance(item, str) else str(item.get("symbol") or item.get("name"))
            markets[name] = await self.get(name)
        return markets
