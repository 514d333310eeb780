"""docs/venues.md's claims that come from ccxt itself: the credentials each venue needs beyond
apiKey/secret and the `has` flags the table cites. Constructing a ccxt class opens nothing, so
this runs offline; a ccxt upgrade that changes any of them fails here, and the table must follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import ccxt.async_support as ccxt
import pytest

EXTRA_CREDENTIALS = ("password", "uid", "walletAddress", "privateKey")


@dataclass(frozen=True)
class Row:
    """One venue of docs/venues.md, as ccxt describes it. A flag is "yes" when ccxt's value is
    truthy (True or "emulated"); False and None (unknown to ccxt) are both "no"."""

    exchange_id: str
    credentials: frozenset[str]
    reduce_only: bool  # createReduceOnlyOrder
    stop: bool  # createStopMarketOrder or createStopLossOrder (what capabilities_of reads)
    trailing_percent: bool  # createTrailingPercentOrder
    fetch_order: bool
    fetch_positions: bool
    funding_history: bool  # fetchFundingHistory
    set_leverage: bool


def row(exchange_id: str, credentials: str, flags: str) -> Row:
    """`flags` spells the seven flags in Row's order, Y or '.', e.g. "YYYYYYY"."""
    assert len(flags) == 7 and set(flags) <= {"Y", "."}, flags
    values = [f == "Y" for f in flags]
    return Row(exchange_id, frozenset(credentials.split()), *values)


#         id             extra credentials          reduce stop trail fetch pos fund lev
TABLE = [
    row("binance", "", "YYYYYYY"),
    row("binanceusdm", "", "YYYYYYY"),
    row("okx", "password", "YYYYYYY"),
    row("bybit", "", "YY.YYYY"),
    row("kraken", "", ".YYYY.."),
    row("coinbase", "", "...YY.."),
    row("kucoin", "password", ".Y.YYYY"),
    row("gate", "", "YY.YYYY"),
    row("bitget", "password", ".YYYYYY"),
    row("mexc", "", "YY.YYYY"),
    row("htx", "", ".YYYYYY"),
    row("bitfinex", "", "YY.YY.."),
    row("hyperliquid", "walletAddress privateKey", "Y..YYYY"),
    row("deribit", "", "YY.YY.."),
]


def described(exchange_id: str) -> ccxt.Exchange:
    assert exchange_id in ccxt.exchanges, f"ccxt has no {exchange_id!r}"
    return getattr(ccxt, exchange_id)()


def test_the_table_covers_the_fourteen_venues_once() -> None:
    ids = [r.exchange_id for r in TABLE]
    assert len(ids) == len(set(ids)) == 14


@pytest.mark.parametrize("venue", TABLE, ids=lambda r: r.exchange_id)
def test_extra_credentials(venue: Row) -> None:
    required = described(venue.exchange_id).requiredCredentials
    assert {k for k in EXTRA_CREDENTIALS if required.get(k)} == venue.credentials


@pytest.mark.parametrize("venue", TABLE, ids=lambda r: r.exchange_id)
def test_has_flags(venue: Row) -> None:
    has = described(venue.exchange_id).has
    seen = {
        "reduce_only": bool(has.get("createReduceOnlyOrder")),
        "stop": bool(has.get("createStopMarketOrder") or has.get("createStopLossOrder")),
        "trailing_percent": bool(has.get("createTrailingPercentOrder")),
        "fetch_order": bool(has.get("fetchOrder")),
        "fetch_positions": bool(has.get("fetchPositions")),
        "funding_history": bool(has.get("fetchFundingHistory")),
        "set_leverage": bool(has.get("setLeverage")),
    }
    expected = {name: getattr(venue, name) for name in seen}
    assert seen == expected


def test_hyperliquid_signs_with_a_wallet_not_an_api_key() -> None:
    required = described("hyperliquid").requiredCredentials
    assert not required.get("apiKey") and not required.get("secret")


def test_coinbase_is_advanced_trade() -> None:
    # docs/venues.md's "Coinbase" is ccxt's `coinbase` (Advanced Trade), not `coinbaseexchange`.
    assert described("coinbase").describe()["name"] == "Coinbase Advanced"
