"""The venue table and what is read from each venue's answers, without a network: client ids
each venue accepts, the venue's own reason in an error (nested too), and how a close made
without us is figured from the venue's records."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D

import ccxt.async_support as ccxt
import pytest

from execution_service.enums import CloseReason, MarketType, Protection
from execution_service.exchanges.base import Market, VenueClose
from execution_service.exchanges.ccxt.capabilities import venue_capabilities
from execution_service.exchanges.ccxt.errors import scrub
from execution_service.exchanges.ccxt.parsing import to_balances
from execution_service.exchanges.ccxt.symbols import resolve
from execution_service.exchanges.ccxt.venues import client_options, venue_of
from execution_service.orders.ids import entry_client_order_id, exit_client_order_id
from execution_service.orders.venue_sync import split, venue_exit

AT = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("exchange", "entry", "exit_"),
    [
        ("okx", "es123456x789e", "esp4242x3"),  # clOrdId: letters and digits, at most 32
        ("bybit", "es-123456-789-e", "es-p4242-x3"),  # orderLinkId: at most 36, - and _
        ("binanceusdm", "es-123456-789-e", "es-p4242-x3"),
        ("binance", "es-123456-789-e", "es-p4242-x3"),
    ],
)
def test_each_venue_gets_client_ids_it_accepts(exchange: str, entry: str, exit_: str) -> None:
    fmt = venue_capabilities(exchange, MarketType.spot).client_ids
    assert entry_client_order_id("es", 123456, 789, fmt) == entry
    assert exit_client_order_id("es", 4242, 3, fmt) == exit_
    assert fmt.accepts(entry) and fmt.accepts(exit_)


def test_the_venue_table_asks_each_venue_for_one_market_type() -> None:
    assert client_options(venue_of("okx"), "swap")["fetchMarkets"] == {"types": ["swap"]}
    assert client_options(venue_of("bybit"), "swap")["fetchMarkets"] == {"types": ["linear"]}
    assert client_options(venue_of("bybit"), "spot")["fetchMarkets"] == {"types": ["spot"]}
    usdm = client_options(venue_of("binanceusdm"), "swap")
    assert usdm["fetchMarkets"] == {"types": ["linear"]} and usdm["fetchCurrencies"] is False
    assert type(client_options(venue_of("okx"), MarketType.swap)["defaultType"]) is str
    assert venue_of("binanceus") is venue_of("binance")  # a subclass takes Binance's row
    assert "fetchMarkets" not in client_options(venue_of("kraken"), "spot")


def test_capabilities_of_the_proven_venues() -> None:
    for exchange in ("okx", "bybit", "binanceusdm"):
        swap = venue_capabilities(exchange, MarketType.swap)
        assert swap.venue_positions and swap.funding and swap.reduce_only, exchange
        assert not venue_capabilities(exchange, MarketType.spot).reduce_only
    assert venue_capabilities("okx", MarketType.spot).ids_only_answers
    assert venue_capabilities("bybit", MarketType.swap).ids_only_answers
    assert not venue_capabilities("binanceusdm", MarketType.swap).ids_only_answers
    assert not venue_capabilities("binancecoinm", MarketType.swap).linear_swaps


def test_where_stops_are_held_and_amended_in_place() -> None:
    bybit, usdm = (
        venue_capabilities("bybit", MarketType.swap),
        venue_capabilities("binanceusdm", MarketType.swap),
    )
    assert bybit.protection == usdm.protection == Protection.trigger_orders
    # Bybit's conditional orders take a new triggerPrice in place; Binance's algo orders do not.
    assert bybit.amends_triggers and not usdm.amends_triggers
    assert venue_capabilities("bybit", MarketType.spot).protection == Protection.emulated
    assert not venue_capabilities("okx", MarketType.swap).amends_triggers


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            '{"code":"1","data":[{"clOrdId":"es1x2e","ordId":"","sCode":"51008","sMsg":'
            '"Order failed. Insufficient USDT margin in account","tag":""}],"msg":'
            '"All operations failed"}',
            "51008 Order failed. Insufficient USDT margin in account",
        ),
        (
            '{"retCode":110007,"retMsg":"ab not enough for new order","result":{}}',
            "110007 ab not enough for new order",
        ),
        ('{"code":-2019,"msg":"Margin is insufficient."}', "-2019 Margin is insufficient."),
    ],
)
def test_errors_keep_the_venue_s_own_reason(body: str, reason: str) -> None:
    error = ccxt.InsufficientFunds(f"okx {body}")
    assert scrub(error, []) == f"InsufficientFunds: {reason}"


def market(symbol: str, inverse: bool = False) -> Market:
    base, _, rest = symbol.partition("/")
    return Market(symbol, base, rest.split(":")[0], inverse=inverse)


def test_a_swap_account_maps_to_the_linear_perpetual_and_nothing_else() -> None:
    markets = {m.symbol: m for m in (market("BTC/USDT:USDT"), market("BTC/USD:BTC", True))}
    assert resolve("BTC/USDT", markets, "swap", "okx") == "BTC/USDT:USDT"
    assert resolve("BTC/USDT:USDT", markets, "swap", "okx") == "BTC/USDT:USDT"
    with pytest.raises(Exception, match="no swap market") as unknown:
        resolve("ETH/USDT", markets, "swap", "okx")
    assert getattr(unknown.value, "code", None) == "unknown_symbol"
    with pytest.raises(Exception, match="inverse") as inverse:
        resolve("BTC/USD:BTC", markets, "swap", "okx")
    assert getattr(inverse.value, "code", None) == "inverse_not_supported"
    with pytest.raises(Exception, match="no spot market"):
        resolve("BTC/USDT", markets, "spot", "okx")


def test_split_adds_up_exactly() -> None:
    parts = split(D("-0.1"), [D(1), D(1), D(1)])
    assert sum(parts) == D("-0.1") and parts[0] == parts[1]
    assert split(D(7), [D(2), D(5)]) == [D(2), D(5)]


def close(amount: str, price: str, liquidation: bool = False, **kw: D) -> VenueClose:
    return VenueClose("BTC/USDT", "buy", D(amount), D(price), liquidation, AT, **kw)


def test_a_close_without_us_is_figured_from_the_venue_s_records() -> None:
    # A record of exactly what we miss: its PnL, and its fees less what we booked at the open.
    found = venue_exit(
        [close("2", "40200", pnl=D(-196), fees_total=D("4.5"))], D(2), "buy", D("0.5"), D(40000)
    )
    assert (found.price, found.pnl, found.fee) == (D(40200), D(-196), D(4))
    assert found.reason == CloseReason.external
    # Two partial liquidations: one close at their average price, a liquidation.
    two = [
        close("1", "40000", pnl=D(-100), fee=D(1), liquidation=True),
        close("1", "41000", pnl=D(-90), fee=D(2)),
    ]
    both = venue_exit(two, D(2), "buy", D(0), D(0))
    assert (both.price, both.pnl, both.fee) == (D(40500), D(-190), D(3))
    assert both.reason == CloseReason.liquidation
    # A record of more than we miss (it counts an exit of ours too): its price, our arithmetic.
    more = venue_exit([close("3", "41000", pnl=D(-270))], D(2), "buy", D(0), D(0))
    assert more.price == D(41000) and more.pnl is None
    # The other side's records are not ours; no record at all: external, at our last price.
    none = venue_exit([replace(close("2", "41000"), side="sell")], D(2), "buy", D(0), D(45000))
    assert none.price == D(45000) and none.reason == CloseReason.external and none.pnl is None


def test_a_derivatives_balance_is_cash_without_open_pnl() -> None:
    """OKX's `eq` and Binance futures' `marginBalance` count the open positions' unrealised
    PnL, which sizing adds itself: the total is the cash balance, from the venue's strings."""
    okx = {"code": "0", "data": [{"details": [
        {"ccy": "USDT", "cashBal": "9999.5", "eq": "10019.5", "availBal": "9799.5", "upl": "20"}
    ]}]}  # fmt: skip
    usdm = {"assets": [
        {"asset": "USDT", "walletBalance": "9999.5", "marginBalance": "10019.5",
         "availableBalance": "9799.5", "updateTime": 1}
    ]}  # fmt: skip
    for info in (okx, usdm):
        [(currency, entry)] = to_balances({"info": info, "USDT": {"total": 10019.5}}).items()
        assert currency == "USDT"
        assert (entry.free, entry.used, entry.total) == (D("9799.5"), D(200), D("9999.5"))
