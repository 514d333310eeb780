"""Real ccxt (binance) through CcxtAdapter, over loopback, against the fake Binance."""

from __future__ import annotations

import asyncio
import sys
import time
from decimal import Decimal as D
from pathlib import Path

import httpx
import pytest

from execution_service.exchanges.base import (
    AuthFailed,
    BalanceEntry,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    TemporaryError,
)
from execution_service.exchanges.ccxt.adapter import CcxtAdapter
from execution_service.exchanges.ccxt.client import rewrite_urls
from tests.exchanges.conftest import AdapterFactory
from tests.fakes.binance import FakeBinance

ORDER = ("POST", "/api/v3/order")
ROOT = Path(__file__).resolve().parents[3]


# --- markets -------------------------------------------------------------------------------------


async def test_load_markets_is_one_request_and_cached(
    adapter: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    markets = await adapter.load_markets()
    await adapter.load_markets()
    await adapter.market("ETH/USDT")
    assert [(r.method, r.path) for r in fake_binance.requests] == [("GET", "/api/v3/exchangeInfo")]
    assert set(markets) == {"BTC/USDT", "ETH/USDT", "LTC/USDT", "XRP/USDT", "BNB/USDT"}


async def test_market_precision_and_limits_are_decimals(adapter: CcxtAdapter) -> None:
    btc = await adapter.market("BTC/USDT")
    assert (btc.base, btc.quote) == ("BTC", "USDT")
    assert btc.amount_step == D("0.00001")  # binance precisionMode is TICK_SIZE: a step
    assert btc.price_tick == D("0.01")
    assert btc.min_amount == D("0.00001")
    assert btc.min_cost == D("5")
    assert (await adapter.market("XRP/USDT")).amount_step == D("1")
    with pytest.raises(InvalidOrder):
        await adapter.market("NOPE/USDT")


async def test_markets_reload_after_ttl(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    adapter = make_adapter(markets_ttl_seconds=0)
    await adapter.load_markets()
    await adapter.load_markets()
    assert len(fake_binance.requests_to("GET", "/api/v3/exchangeInfo")) == 2


async def test_failed_refresh_keeps_serving_loaded_markets(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    adapter = make_adapter(markets_ttl_seconds=0, read_retries=0)
    await adapter.load_markets()
    fake_binance.throttle(count=2, retry_after=None, path="/api/v3/exchangeInfo")
    assert (await adapter.market("BTC/USDT")).price_tick == D("0.01")
    with pytest.raises(TemporaryError):  # an explicit reload does report the failure
        await adapter.load_markets(reload=True)


def test_api_base_url_rewrites_every_url_keeping_paths() -> None:
    urls = {"public": "https://api.binance.com/api/v3", "nested": {"x": "https://{hostname}/p?q=1"}}
    assert rewrite_urls(urls, "http://127.0.0.1:9/") == {
        "public": "http://127.0.0.1:9/api/v3",
        "nested": {"x": "http://127.0.0.1:9/p?q=1"},
    }


def test_unknown_exchange_id_is_refused() -> None:
    with pytest.raises(ExchangeError):
        CcxtAdapter("no-such-exchange", {})


# --- account and tickers -------------------------------------------------------------------------


async def test_balance_is_signed_and_exact(adapter: CcxtAdapter, fake_binance: FakeBinance) -> None:
    fake_binance.set_balances({"USDT": "1234.56789012", "BTC": {"free": "0.5", "locked": "0.25"}})
    balance = await adapter.fetch_balance()
    assert balance["USDT"] == BalanceEntry(D("1234.56789012"), D(0), D("1234.56789012"))
    assert balance["BTC"] == BalanceEntry(D("0.5"), D("0.25"), D("0.75"))
    assert "LTC" not in balance  # all-zero entries are skipped
    (call,) = fake_binance.requests_to("GET", "/api/v3/account")
    assert call.status == 200 and call.api_key == fake_binance.api_key  # signature verified


@pytest.mark.parametrize("wrong", ["api_secret", "api_key"])
async def test_wrong_credentials_are_auth_failed_without_leaking_them(
    make_adapter: AdapterFactory, fake_binance: FakeBinance, wrong: str
) -> None:
    credentials = {"api_key": fake_binance.api_key, "api_secret": fake_binance.api_secret}
    credentials[wrong] = "wrong-" + wrong
    adapter = make_adapter(credentials=credentials)
    with pytest.raises(AuthFailed) as caught:
        await adapter.fetch_balance()
    message = caught.value.message
    assert message.startswith("AuthenticationError: -")  # -1022 bad signature / -2015 bad key
    assert not any(secret in message for secret in credentials.values())


async def test_tickers_are_decimals(adapter: CcxtAdapter, fake_binance: FakeBinance) -> None:
    fake_binance.set_price("ETHUSDT", "3123.45")
    assert (await adapter.fetch_ticker("ETH/USDT")).price == D("3123.45")
    tickers = await adapter.fetch_tickers(["ETH/USDT", "BTC/USDT"])
    assert {s: t.price for s, t in tickers.items()} == {
        "ETH/USDT": D("3123.45"),
        "BTC/USDT": D("50000"),
    }


# --- orders --------------------------------------------------------------------------------------


async def test_market_buy_fills_with_our_client_order_id(
    adapter: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    order = await adapter.create_order("BTC/USDT", "buy", "market", D("0.002"), None, "sig-1-buy")
    assert (order.status, order.filled, order.average) == ("filled", D("0.002"), D("50000"))
    assert (order.fee, order.fee_currency) == (D("0.000002"), "BTC")
    assert order.client_order_id == "sig-1-buy" and order.order_id == "1"
    (booked,) = fake_binance.orders
    assert booked.client_order_id == "sig-1-buy" and booked.status == "FILLED"
    assert fake_binance.balance("USDT")[0] == D("9900")


async def test_market_sell_fills(adapter: CcxtAdapter, fake_binance: FakeBinance) -> None:
    order = await adapter.create_order("ETH/USDT", "sell", "market", D("1.5"), None, "sig-2-exit")
    assert (order.status, order.filled, order.side) == ("filled", D("1.5"), "sell")
    assert (order.fee, order.fee_currency) == (D("4.5"), "USDT")  # 0.1% of 4500, in quote
    assert fake_binance.balance("ETH")[0] == D("8.5")


async def test_amount_and_price_are_rounded_before_sending(
    adapter: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    order = await adapter.create_order("BTC/USDT", "buy", "market", D("0.0123456789"), None, "r-1")
    limit = await adapter.create_order(
        "BTC/USDT", "buy", "limit", D("0.001"), D("40000.004"), "r-2"
    )
    sent = [r.params for r in fake_binance.requests_to(*ORDER)]
    assert sent[0]["quantity"] == "0.01234" and "quoteOrderQty" not in sent[0]
    assert (sent[1]["quantity"], sent[1]["price"]) == ("0.001", "40000")
    assert order.amount == D("0.01234") and limit.price == D("40000")
    assert limit.status == "open"


async def test_amount_below_one_step_is_refused_before_sending(
    adapter: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    with pytest.raises(InvalidOrder):
        await adapter.create_order("BTC/USDT", "buy", "market", D("0.000001"), None, "tiny")
    assert fake_binance.requests_to(*ORDER) == []


async def test_insufficient_balance_is_insufficient_funds(
    adapter: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    with pytest.raises(InsufficientFunds):
        await adapter.create_order("BTC/USDT", "buy", "market", D("1"), None, "too-big")
    fake_binance.reject_next_orders(code=-2010)
    with pytest.raises(InsufficientFunds):
        await adapter.create_order("BTC/USDT", "buy", "market", D("0.001"), None, "rejected")
    assert fake_binance.orders == []


async def test_filter_failure_is_invalid_order(
    adapter: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    with pytest.raises(InvalidOrder) as caught:  # 0.00001 BTC x 50000 = 0.5 USDT < NOTIONAL 5
        await adapter.create_order("BTC/USDT", "buy", "market", D("0.00001"), None, "small")
    assert "NOTIONAL" in caught.value.message
    assert fake_binance.orders == []


async def test_fetch_order_by_client_order_id_and_by_id(
    adapter: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    placed = await adapter.create_order("BTC/USDT", "buy", "limit", D("0.001"), D("40000"), "c-1")
    by_cid = await adapter.fetch_order("BTC/USDT", client_order_id="c-1")
    by_id = await adapter.fetch_order("BTC/USDT", order_id=placed.order_id)
    assert by_cid.order_id == by_id.order_id == placed.order_id
    assert by_cid.client_order_id == "c-1" and by_cid.status == "open"
    lookup = fake_binance.requests_to("GET", "/api/v3/order")[0].params
    assert lookup["origClientOrderId"] == "c-1" and "orderId" not in lookup
    with pytest.raises(OrderNotFound):
        await adapter.fetch_order("BTC/USDT", client_order_id="never-sent")


async def test_cancel_by_client_order_id(adapter: CcxtAdapter, fake_binance: FakeBinance) -> None:
    await adapter.create_order("BTC/USDT", "buy", "limit", D("0.001"), D("40000"), "c-2")
    assert fake_binance.balance("USDT") == (D("9960"), D("40"))
    cancelled = await adapter.cancel_order("BTC/USDT", client_order_id="c-2")
    assert cancelled.status == "cancelled" and cancelled.filled == 0
    assert cancelled.client_order_id == "c-2"  # not the cancel request's own id
    assert fake_binance.balance("USDT") == (D("10000"), D("0"))
    with pytest.raises(OrderNotFound):  # Binance: -2011 Unknown order sent.
        await adapter.cancel_order("BTC/USDT", client_order_id="c-2")


async def test_open_orders(adapter: CcxtAdapter) -> None:
    await adapter.create_order("BTC/USDT", "buy", "limit", D("0.001"), D("40000"), "o-1")
    await adapter.create_order("ETH/USDT", "sell", "limit", D("1"), D("4000"), "o-2")
    await adapter.create_order("ETH/USDT", "buy", "market", D("0.01"), None, "o-3")
    everything = await adapter.fetch_open_orders()
    assert sorted(o.client_order_id or "" for o in everything) == ["o-1", "o-2"]
    (eth,) = await adapter.fetch_open_orders("ETH/USDT")
    assert (eth.client_order_id, eth.symbol, eth.price) == ("o-2", "ETH/USDT", D("4000"))


async def test_cancelled_with_partial_fill_keeps_the_fill(
    adapter: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    await adapter.create_order("BTC/USDT", "buy", "limit", D("0.001"), D("40000"), "p-1")
    fake_binance.cancel_with_fill(client_order_id="p-1", filled="0.0004")
    order = await adapter.fetch_order("BTC/USDT", client_order_id="p-1")
    assert (order.status, order.filled, order.amount) == ("cancelled", D("0.0004"), D("0.001"))
    assert order.average == D("40000")


async def test_market_order_expired_after_partial_fill(
    adapter: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    fake_binance.partial_fill_next_orders(fraction="0.5", final_status="EXPIRED")
    order = await adapter.create_order("BTC/USDT", "buy", "market", D("0.002"), None, "p-2")
    assert (order.status, order.filled, order.amount) == ("cancelled", D("0.001"), D("0.002"))


async def test_client_order_id_is_unique_only_among_open_orders(
    adapter: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    await adapter.create_order("BTC/USDT", "buy", "limit", D("0.001"), D("40000"), "dup")
    with pytest.raises(InvalidOrder):  # Binance: -2010 Duplicate order sent.
        await adapter.create_order("BTC/USDT", "buy", "limit", D("0.001"), D("40000"), "dup")
    await adapter.create_order("BTC/USDT", "buy", "market", D("0.001"), None, "twice")
    await adapter.create_order("BTC/USDT", "buy", "market", D("0.001"), None, "twice")
    # A resend after the fill trades again: why callers look an order up before resending.
    assert [o.status for o in fake_binance.orders if o.client_order_id == "twice"] == ["FILLED"] * 2


# --- failures: rate limits, timeouts, outages ----------------------------------------------------


@pytest.mark.parametrize("status", [429, 418])
async def test_throttled_read_is_retried_after_retry_after(
    adapter: CcxtAdapter, fake_binance: FakeBinance, status: int
) -> None:
    await adapter.load_markets()
    fake_binance.throttle(count=2, status=status, retry_after=0.1, path="/api/v3/account")
    started = time.monotonic()
    assert "USDT" in await adapter.fetch_balance()
    assert time.monotonic() - started >= 0.2  # waited as told, not base_delay
    assert [r.status for r in fake_binance.requests_to("GET", "/api/v3/account")] == [
        status
    ] * 2 + [200]


async def test_read_retries_are_bounded(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    adapter = make_adapter(read_retries=2)
    fake_binance.throttle(count=10, retry_after=0.01, path="/api/v3/ticker/24hr")
    with pytest.raises(TemporaryError):
        await adapter.fetch_ticker("BTC/USDT")
    assert len(fake_binance.requests_to("GET", "/api/v3/ticker/24hr")) == 3


async def test_throttled_create_is_not_retried(
    adapter: CcxtAdapter, fake_binance: FakeBinance
) -> None:
    await adapter.load_markets()
    fake_binance.throttle(count=1, retry_after=1, method="POST", path="/api/v3/order")
    with pytest.raises(TemporaryError) as caught:
        await adapter.create_order("BTC/USDT", "buy", "market", D("0.001"), None, "t-1")
    assert caught.value.retry_after == 1.0
    assert len(fake_binance.requests_to(*ORDER)) == 1 and fake_binance.orders == []


async def test_create_timeout_is_unknown_outcome_then_found_by_client_order_id(
    make_adapter: AdapterFactory, fake_binance: FakeBinance
) -> None:
    adapter = make_adapter(timeout_ms=1000)
    await adapter.load_markets()
    fake_binance.hang_next_orders()
    with pytest.raises(TemporaryError) as caught:
        await adapter.create_order("BTC/USDT", "buy", "market", D("0.001"), None, "h-1")
    assert "RequestTimeout" in caught.value.message and "http" not in caught.value.message
    assert len(fake_binance.requests_to(*ORDER)) == 1 and len(fake_binance.orders) == 1
    found = await adapter.fetch_order("BTC/USDT", client_order_id="h-1")
    assert (found.status, found.filled) == ("filled", D("0.001"))


@pytest.mark.parametrize("mode", ["refuse", "503"])
async def test_exchange_down_is_temporary(
    adapter: CcxtAdapter, fake_binance: FakeBinance, mode: str
) -> None:
    await adapter.load_markets()
    await fake_binance.go_down(mode)
    with pytest.raises(TemporaryError):
        await adapter.fetch_balance()
    with pytest.raises(TemporaryError):
        await adapter.create_order("BTC/USDT", "buy", "market", D("0.001"), None, "d-1")
    await fake_binance.come_up()
    assert "USDT" in await adapter.fetch_balance()
    assert fake_binance.orders == []


# --- the fake in another process, driven over /_fake ---------------------------------------------


async def test_standalone_fake_driven_over_http(make_adapter: AdapterFactory) -> None:
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "tests.fakes.binance", "--port", "0", "--api-key", "k-1234"],
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        base_url = (await proc.stdout.readline()).decode().strip()
        async with httpx.AsyncClient(base_url=base_url) as control:
            await control.post("/_fake/price", json={"symbol": "BTCUSDT", "price": "61000.5"})
            credentials = {"api_key": "k-1234", "api_secret": "fake-api-secret"}
            adapter = make_adapter(api_base_url=base_url, credentials=credentials)
            assert (await adapter.fetch_ticker("BTC/USDT")).price == D("61000.5")
            await adapter.create_order("BTC/USDT", "buy", "market", D("0.001"), None, "x-1")
            state = (await control.get("/_fake/state")).json()
            assert [o["clientOrderId"] for o in state["orders"]] == ["x-1"]
            assert state["unexpected"] == 0
    finally:
        proc.terminate()  # SIGTERM: the fake shuts down cleanly
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_every_client_shares_one_tls_context(make_adapter: AdapterFactory) -> None:
    """Building a TLS context loads the CA bundle (~15 ms of CPU): a fan-out to 1,000 accounts
    on new clients spent 30 s building 2,000 of them before its orders could go."""
    first, second = make_adapter(), make_adapter()
    await first.load_markets()
    await second.fetch_balance()
    contexts = {id(a._ex.ssl_context) for a in (first, second)}
    connectors = {id(a._ex.tcp_connector._ssl) for a in (first, second)}
    assert len(contexts) == 1 and connectors == contexts
