"""Conditional orders on the fake Binance USDⓈ-M through raw ccxt, the way ccxt 4.5.90 sends them:
the Algo Order API (`/fapi/v1/algoOrder`). A stop and a take-profit guard a long; the price moves
through the stop, which becomes a market order that closes the position; the take-profit then
has nothing left to reduce. Every figure by hand."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import ccxt.async_support as ccxt
import pytest

from execution_service.exchanges.ccxt.client import rewrite_urls
from tests.fakes.binanceusdm import FakeBinanceUsdm

SYMBOL = "BTC/USDT:USDT"
TRIGGER = {"trigger": True}


@pytest.fixture
async def usdm() -> AsyncIterator[FakeBinanceUsdm]:
    async with FakeBinanceUsdm(
        api_key=secrets.token_hex(16), api_secret=secrets.token_hex(16)
    ) as f:
        yield f
    unexpected = [(r.method, r.path) for r in f.unexpected_requests]
    assert not unexpected, f"requests to paths the venue does not serve: {unexpected}"


@pytest.fixture
async def client(usdm: FakeBinanceUsdm) -> AsyncIterator[Any]:
    ex = connect(usdm, usdm.api_secret)
    await ex.load_markets()
    yield ex
    await ex.close()


def connect(fake: FakeBinanceUsdm, secret: str) -> Any:
    ex = ccxt.binanceusdm({"apiKey": fake.api_key, "secret": secret})
    ex.has = {**ex.has, "fetchCurrencies": False}
    ex.urls["api"] = rewrite_urls(ex.urls["api"], fake.base_url)
    ex.timeout_on_exit = 0
    # ccxt picks its error table by host (fapi.binance.com is futures): keep the futures one.
    pick = ex.get_exceptions_by_url
    ex.get_exceptions_by_url = lambda url, kind: pick("https://fapi.binance.com/fapi/v1/", kind)
    return ex


async def guarded_long(ex: Any, fake: FakeBinanceUsdm) -> None:
    """0.02 BTC long at 50000 (margin 1000 / 20 = 50, fee 0.5), a reduce-only stop at 49000
    ("sl-1") and a reduce-only take-profit at 52000 ("tp-1"), each for the whole 0.02."""
    await ex.create_order(SYMBOL, "market", "buy", 0.02)
    params = {"reduceOnly": True}
    sl = await ex.create_order(
        SYMBOL,
        "market",
        "sell",
        0.02,
        None,
        {**params, "stopLossPrice": 49000, "clientOrderId": "sl-1"},
    )
    tp = await ex.create_order(
        SYMBOL,
        "market",
        "sell",
        0.02,
        None,
        {**params, "takeProfitPrice": 52000, "clientOrderId": "tp-1"},
    )
    assert (sl["status"], sl["clientOrderId"], sl["triggerPrice"]) == ("open", "sl-1", 49000)
    assert (tp["status"], tp["takeProfitPrice"]) == ("open", 52000)
    [sent_sl, sent_tp] = fake.requests_to("POST", "/fapi/v1/algoOrder")
    assert {k: sent_sl.params[k] for k in ("algoType", "type", "triggerPrice", "clientAlgoId")} == {
        "algoType": "CONDITIONAL",
        "type": "STOP_MARKET",
        "triggerPrice": "49000",
        "clientAlgoId": "sl-1",
    }
    assert (sent_sl.params["quantity"], sent_sl.params["reduceOnly"]) == ("0.02", "true")
    assert sent_tp.params["type"] == "TAKE_PROFIT_MARKET"
    assert not fake.requests_to("POST", "/fapi/v1/order")[1:]  # only the entry went there


async def test_a_stop_fires_into_a_market_order_and_the_take_profit_expires(
    usdm: FakeBinanceUsdm, client: Any
) -> None:
    await guarded_long(client, usdm)
    # Trigger orders hold no margin: free is 10000 - 50 - 0.5 with or without them.
    assert usdm.book.balance("USDT") == (D("9949.5"), D(0))

    sl = await client.fetch_order("", SYMBOL, {**TRIGGER, "origClientOrderId": "sl-1"})
    assert usdm.requests_to("GET", "/fapi/v1/algoOrder")[-1].params["clientAlgoId"] == "sl-1"
    assert (sl["status"], sl["type"], sl["side"], sl["reduceOnly"]) == (
        "open",
        "market",
        "sell",
        True,
    )
    assert (sl["amount"], sl["triggerPrice"], sl["info"]["orderType"]) == (
        0.02,
        49000,
        "STOP_MARKET",
    )
    assert (sl["info"]["algoStatus"], sl["info"]["actualOrderId"]) == ("NEW", "")
    by_id = await client.fetch_order(sl["id"], SYMBOL, TRIGGER)
    assert by_id["clientOrderId"] == "sl-1"
    listed = await client.fetch_open_orders(SYMBOL, params=TRIGGER)
    assert [o["clientOrderId"] for o in listed] == ["sl-1", "tp-1"]
    assert [a.client_algo_id for a in usdm.algo_orders(open_only=True, symbol="BTCUSDT")] == [
        "sl-1",
        "tp-1",
    ]

    usdm.set_price("BTCUSDT", "49000.1")  # not yet
    assert [a.algo_status for a in usdm.algo_orders()] == ["NEW", "NEW"]
    usdm.set_price("BTCUSDT", "48900")  # through the stop: it sells at 48900
    sl = await client.fetch_order("", SYMBOL, {**TRIGGER, "origClientOrderId": "sl-1"})
    assert (sl["status"], sl["info"]["algoStatus"]) == ("closed", "FINISHED")
    # An algo order tells no execution: that is its actual order's.
    assert (sl["filled"], sl["average"], sl["cost"]) == (0, None, None)
    actual_id = sl["info"]["actualOrderId"]
    assert actual_id and sl["info"]["triggerTime"] > 0

    actual = await client.fetch_order(actual_id, SYMBOL)
    assert (actual["status"], actual["type"], actual["side"]) == ("closed", "market", "sell")
    assert (actual["filled"], actual["average"], actual["reduceOnly"]) == (0.02, 48900, True)
    [trade] = await client.fetch_my_trades(SYMBOL, params={"orderId": actual_id})
    # fee 0.02 x 48900 x 0.0005 = 0.489; realised (48900 - 50000) x 0.02 = -22
    assert trade["fee"] == {"currency": "USDT", "cost": 0.489}
    assert trade["info"]["realizedPnl"] == "-22"
    assert [p for p in await client.fetch_positions([SYMBOL]) if p["contracts"]] == []
    assert usdm.book.balance("USDT")[0] == D(10000) - D(22) - D("0.5") - D("0.489")

    [tp] = await client.fetch_open_orders(SYMBOL, params=TRIGGER)
    assert tp["clientOrderId"] == "tp-1"
    trades = len(usdm.book.orders)
    usdm.set_price("BTCUSDT", "52100")  # through the take-profit: nothing left to reduce
    tp = await client.fetch_order("", SYMBOL, {**TRIGGER, "origClientOrderId": "tp-1"})
    assert (tp["status"], tp["info"]["actualOrderId"]) == ("expired", "")
    assert len(usdm.book.orders) == trades and not usdm.book.positions
    assert await client.fetch_open_orders(SYMBOL, params=TRIGGER) == []
    assert usdm.algo_orders(open_only=True) == []

    with pytest.raises(ccxt.OrderNotFound, match="-2011"):  # it is done: nothing to cancel
        await client.cancel_order("", SYMBOL, {**TRIGGER, "origClientOrderId": "sl-1"})


async def test_the_take_profit_fires_and_the_stop_is_cancelled(
    usdm: FakeBinanceUsdm, client: Any
) -> None:
    await guarded_long(client, usdm)
    usdm.set_price("BTCUSDT", "52000")  # at the take-profit: it sells at 52000
    [tp] = usdm.algo_orders(symbol="BTCUSDT")[1:]
    assert (tp.order_type, tp.algo_status, tp.trigger_price) == (
        "TAKE_PROFIT_MARKET",
        "FINISHED",
        D(52000),
    )
    actual = await client.fetch_order(tp.actual_order_id, SYMBOL)
    assert (actual["filled"], actual["average"]) == (0.02, 52000)
    # (52000 - 50000) x 0.02 = 40; fees 0.5 + 0.02 x 52000 x 0.0005 = 0.52
    assert usdm.book.balance("USDT")[0] == D(10000) + D(40) - D("0.5") - D("0.52")

    cancelled = await client.cancel_order("", SYMBOL, {**TRIGGER, "origClientOrderId": "sl-1"})
    assert cancelled["id"] == usdm.algo_orders()[0].algo_id
    assert cancelled["info"] == {
        "algoId": int(cancelled["id"]),
        "clientAlgoId": "sl-1",
        "code": "200",
        "msg": "success",
    }
    sl = await client.fetch_order(cancelled["id"], SYMBOL, TRIGGER)
    assert (sl["status"], sl["info"]["algoStatus"]) == ("canceled", "CANCELED")
    usdm.set_price("BTCUSDT", "48000")  # a cancelled stop never fires
    assert usdm.algo_orders()[0].actual_order_id == ""
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        await client.cancel_order(cancelled["id"], SYMBOL, TRIGGER)
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        await client.fetch_order("", SYMBOL, {**TRIGGER, "origClientOrderId": "nope"})


async def test_a_trailing_stop_follows_the_price(usdm: FakeBinanceUsdm, client: Any) -> None:
    await client.create_order(SYMBOL, "market", "buy", 0.02)
    params = {"trailingPercent": 1, "trailingTriggerPrice": 51000, "reduceOnly": True}
    trail = await client.create_order(SYMBOL, "market", "sell", 0.02, None, params)
    [sent] = usdm.requests_to("POST", "/fapi/v1/algoOrder")
    assert (sent.params["type"], sent.params["callbackRate"], sent.params["activatePrice"]) == (
        "TRAILING_STOP_MARKET",
        "1",
        "51000",
    )
    assert trail["status"] == "open"
    for price in ("50500", "49000", "51500", "52000", "51490"):  # active from 51000, best 52000
        usdm.set_price("BTCUSDT", price)
    assert usdm.algo_orders(open_only=True) != []
    usdm.set_price("BTCUSDT", "51480")  # 1 % under 52000
    [algo] = usdm.algo_orders()
    actual = await client.fetch_order(algo.actual_order_id, SYMBOL)
    assert (algo.algo_status, actual["average"], actual["filled"]) == ("FINISHED", 51480, 0.02)


async def test_the_venue_refuses(usdm: FakeBinanceUsdm, client: Any) -> None:
    stop = {"stopLossPrice": 49000, "reduceOnly": True}
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):  # no position to reduce
        await client.create_order(SYMBOL, "market", "sell", 0.02, None, stop)
    await client.create_order(SYMBOL, "market", "buy", 0.02)
    with pytest.raises(ccxt.OrderImmediatelyFillable, match="-2021"):  # a sell stop over the price
        await client.create_order(SYMBOL, "market", "sell", 0.02, None, {"stopLossPrice": 50100})
    raw = {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.02", "reduceOnly": "true"}
    off_tick = {**raw, "algoType": "CONDITIONAL", "type": "STOP_MARKET", "triggerPrice": "49000.05"}
    with pytest.raises(ccxt.BadRequest, match="-4014"):  # the tick is 0.10
        await client.fapiPrivatePostAlgoOrder(off_tick)
    old_way = {**raw, "type": "STOP_MARKET", "stopPrice": "49000"}
    with pytest.raises(ccxt.InvalidOrder, match="-4120"):  # not on the plain order endpoint
        await client.fapiPrivatePostOrder(old_way)
    forged = connect(usdm, "not-the-secret")
    try:
        forged.markets, forged.markets_by_id = client.markets, client.markets_by_id
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await forged.create_order(SYMBOL, "market", "sell", 0.02, None, stop)
    finally:
        await forged.close()
    assert usdm.algo_orders() == [] and len(usdm.book.orders) == 1
