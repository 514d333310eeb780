"""A signal's symbol as the connection's venue names its market: as given where the venue has it
in the connection's market type; on a swap account `BTC/USDT` is the linear perpetual
`BTC/USDT:USDT`. Nothing else is guessed: an unknown symbol is refused, and so is an inverse
(coin-margined) contract."""

from __future__ import annotations

from collections.abc import Mapping

from execution_service.enums import MarketType
from execution_service.exchanges.base import InverseNotSupported, Market, UnknownSymbol


def resolve(symbol: str, markets: Mapping[str, Market], market_type: str, venue: str) -> str:
    """The venue's symbol for `symbol` (a pure lookup in the loaded markets)."""
    found = symbol if symbol in markets else None
    if found is None and market_type == MarketType.swap and ":" not in symbol:
        quote = symbol.partition("/")[2]
        perpetual = f"{symbol}:{quote}"
        found = perpetual if perpetual in markets else None
    if found is None:
        raise UnknownSymbol(f"{venue} has no {market_type} market for {symbol!r}")
    if markets[found].inverse:
        raise InverseNotSupported(
            f"{found} on {venue} is an inverse (coin-margined) contract: only linear ones are "
            "traded"
        )
    return found
