"""OCO order lists and stop orders on the fake Binance spot through raw ccxt 4.5.90, the way the
service sends them: `private_post_orderlist_oco` (`POST /api/v3/orderList/oco`) with a
LIMIT_MAKER take-profit above and a STOP_LOSS below for a bought position; the legs read back
with fetch_order(origClientOrderId) / fetch_open_orders / fetch_my_trades; the list with
`privateGetOrderList` / `privateGetOpenOrderList` / `privateDeleteOrderList`. Every figure by
hand: fee 0.1 % of what is received (the fake's rate), BTCUSDT starts at 50000."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import ccxt.async_support as ccxt
import pytest

from execution_service.exchanges.ccxt.client import rewrite_urls
from execution_service.exchanges.ccxt.venues import client_options, venue_of
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_limits import weight_of

SYMBOL = "BTC/USDT"
QTY = "0.0999"  # what 0.1 BTC bought at market leaves after its 0.0001 BTC fee


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance(api_key=secrets.token_hex(16), api_secret=secrets.token_hex(16)) as f:
        f.set_balances({"BTC": "0", "USDT": "10000"})
        yield f
    unexpected = [(r.method, r.path) for r in f.unexpected_requests]
    assert not unexpected, f"requests to paths the venue does not serve: {unexpected}"


def connect(fake: FakeBinance, secret: str) -> Any:
    ex = ccxt.binance(
        {
            "apiKey": fake.api_key,
            "secret": secret,
            "options": client_options(venue_of("binance"), "spot"),
        }
    )
    ex.has = {**ex.has, "fetchCurrencies": False}
    ex.urls["api"] = rewrite_urls(ex.urls["api"], fake.base_url)
    ex.timeout_on_exit = 0
    return ex


@pytest.fixture
async def client(fake: FakeBinance) -> AsyncIterator[Any]:
    ex = connect(fake, fake.api_secret)
    await ex.load_markets()
    yield ex
    await ex.close()


def oco_request(**overrides: str) -> dict[str, str]:
    """The protective pair of a long: take-profit LIMIT_MAKER 52000 above, STOP_LOSS 49000
    below (market on trigger), each leg and the list named by us."""
    return {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "quantity": QTY,
        "listClientOrderId": "list-1",
        "aboveType": "LIMIT_MAKER",
        "aboveClientOrderId": "tp-1",
        "abovePrice": "52000",
        "belowType": "STOP_LOSS",
        "belowClientOrderId": "sl-1",
        "belowStopPrice": "49000",
        "newOrderRespType": "FULL",
        **overrides,
    }


async def guarded_long(ex: Any, fake: FakeBinance) -> dict[str, Any]:
    """Buy 0.1 BTC at 50000 (5000 USDT, fee 0.0001 BTC), then guard the 0.0999 BTC with an OCO."""
    await ex.create_order(SYMBOL, "market", "buy", 0.1)
    assert fake.balance("BTC") == (D("0.0999"), D(0))
    answer: dict[str, Any] = await ex.private_post_orderlist_oco(oco_request())
    assert (answer["listStatusType"], answer["listOrderStatus"]) == ("EXEC_STARTED", "EXECUTING")
    assert answer["contingencyType"] == "OCO"
    assert answer["listClientOrderId"] == "list-1"
    # The stop leg first, as Binance lists them; each an order of the list.
    assert [o["clientOrderId"] for o in answer["orders"]] == ["sl-1", "tp-1"]
    sl, tp = answer["orderReports"]
    assert (sl["type"], sl["stopPrice"], sl["status"], sl["workingTime"]) == (
        "STOP_LOSS",
        "49000.00000000",
        "NEW",
        -1,
    )
    assert (tp["type"], tp["price"], tp["status"]) == ("LIMIT_MAKER", "52000.00000000", "NEW")
    assert sl["orderListId"] == tp["orderListId"] == answer["orderListId"]
    # One reservation of the base for both legs.
    assert fake.balance("BTC") == (D(0), D("0.0999"))
    return answer


async def test_both_legs_open_then_the_stop_fires(client: Any, fake: FakeBinance) -> None:
    ex = client
    await guarded_long(ex, fake)
    sl = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "sl-1"})
    tp = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "tp-1"})
    assert (sl["status"], sl["type"], sl["side"], sl["triggerPrice"]) == (
        "open",
        "market",
        "sell",
        49000,
    )
    assert (sl["price"], sl["filled"], sl["average"], sl["fee"]) == (None, 0, None, None)
    assert sl["info"]["isWorking"] is False
    assert (tp["status"], tp["type"], tp["price"], tp["triggerPrice"], tp["postOnly"]) == (
        "open",
        "limit",
        52000,
        None,
        True,
    )
    opened = await ex.fetch_open_orders(SYMBOL)
    assert sorted((o["clientOrderId"], o["info"]["type"]) for o in opened) == [
        ("sl-1", "STOP_LOSS"),
        ("tp-1", "LIMIT_MAKER"),
    ]
    [listed] = await ex.private_get_openorderlist()
    assert listed["listClientOrderId"] == "list-1"

    fake.set_price(SYMBOL, "49500")  # not yet
    assert fake.order_lists(open_only=True)[0].leg("sl-1").status == "NEW"
    fake.set_price(SYMBOL, "48900")  # through the stop: a market sell at 48900
    sl = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "sl-1"})
    tp = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "tp-1"})
    assert (sl["status"], sl["type"], sl["triggerPrice"]) == ("closed", "market", 49000)
    assert (sl["filled"], sl["remaining"], sl["average"], sl["cost"]) == (0.0999, 0, 48900, 4885.11)
    assert sl["fee"] is None  # GET /api/v3/order carries no fills: the fee is in myTrades
    assert (sl["info"]["status"], sl["info"]["isWorking"]) == ("FILLED", True)
    assert (tp["status"], tp["filled"], tp["info"]["status"]) == ("expired", 0, "EXPIRED")

    trades = await ex.fetch_my_trades(SYMBOL)
    [stop_trade] = [t for t in trades if t["order"] == sl["id"]]
    assert (stop_trade["price"], stop_trade["amount"], stop_trade["takerOrMaker"]) == (
        48900,
        0.0999,
        "taker",
    )
    # 0.0999 x 48900 = 4885.11; fee 0.1 % = 4.88511 USDT
    assert stop_trade["fee"] == {"currency": "USDT", "cost": 4.88511}
    assert stop_trade["info"]["orderListId"] == int(sl["info"]["orderListId"])

    done = await ex.private_get_orderlist({"origClientOrderId": "list-1"})
    assert (done["listStatusType"], done["listOrderStatus"]) == ("ALL_DONE", "ALL_DONE")
    assert await ex.private_get_openorderlist() == []
    assert await ex.fetch_open_orders(SYMBOL) == []
    assert fake.order_lists(open_only=True) == []
    [view] = fake.order_lists(symbol=SYMBOL)
    assert [(leg.client_order_id, leg.status) for leg in view.legs] == [
        ("sl-1", "FILLED"),
        ("tp-1", "EXPIRED"),
    ]
    # Nothing left locked: the base sold, 5000 + 4885.11 - 4.88511 USDT.
    assert fake.balance("BTC") == (D(0), D(0))
    assert fake.balance("USDT") == (D("9880.22489"), D(0))


async def test_the_take_profit_leg_fills_at_its_price(client: Any, fake: FakeBinance) -> None:
    ex = client
    await guarded_long(ex, fake)
    fake.set_price(SYMBOL, "51000")
    assert fake.order_lists(open_only=True)[0].status == "EXECUTING"
    fake.set_price(SYMBOL, "52300")  # through the limit: filled at 52000, maker
    tp = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "tp-1"})
    sl = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "sl-1"})
    assert (tp["status"], tp["type"], tp["filled"], tp["average"], tp["price"]) == (
        "closed",
        "limit",
        0.0999,
        52000,
        52000,
    )
    assert (sl["status"], sl["filled"], sl["triggerPrice"]) == ("expired", 0, 49000)
    [trade] = await ex.fetch_my_trades(SYMBOL, params={"orderId": tp["id"]})
    # 0.0999 x 52000 = 5194.8; fee 5.1948 USDT
    assert (trade["takerOrMaker"], trade["fee"]) == ("maker", {"currency": "USDT", "cost": 5.1948})
    [view] = fake.order_lists()
    assert (view.list_status_type, view.list_order_status) == ("ALL_DONE", "ALL_DONE")
    assert fake.balance("BTC") == (D(0), D(0))
    assert fake.balance("USDT") == (D("10189.6052"), D(0))
    fake.set_price(SYMBOL, "48000")  # the expired stop stays expired
    assert (await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "sl-1"}))["filled"] == 0


@pytest.mark.parametrize("how", ["list", "one leg"])
async def test_a_cancel_ends_the_whole_list_and_releases_the_base(
    client: Any, fake: FakeBinance, how: str
) -> None:
    ex = client
    answer = await guarded_long(ex, fake)
    if how == "list":
        done = await ex.private_delete_orderlist(
            {"symbol": "BTCUSDT", "listClientOrderId": "list-1"}
        )
        assert (done["listStatusType"], done["listOrderStatus"]) == ("ALL_DONE", "ALL_DONE")
        assert [r["status"] for r in done["orderReports"]] == ["CANCELED", "CANCELED"]
    else:  # Binance: cancelling one leg cancels the list
        leg = await ex.cancel_order(None, SYMBOL, {"origClientOrderId": "tp-1"})
        assert leg["status"] == "canceled"
    for cid in ("sl-1", "tp-1"):
        order = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": cid})
        assert (order["status"], order["filled"]) == ("canceled", 0)
    done = await ex.private_get_orderlist({"orderListId": answer["orderListId"]})
    assert done["listOrderStatus"] == "ALL_DONE"
    assert fake.balance("BTC") == (D("0.0999"), D(0))
    assert fake.order_lists(open_only=True) == []
    fake.set_price(SYMBOL, "48000")  # a cancelled stop does not fire
    assert fake.balance("BTC") == (D("0.0999"), D(0))
    with pytest.raises(ccxt.OrderNotFound, match='"code":-2011'):
        await ex.private_delete_orderlist({"symbol": "BTCUSDT", "listClientOrderId": "list-1"})


async def test_a_buy_oco_guards_a_short_the_other_way_round(client: Any, fake: FakeBinance) -> None:
    """BUY: take-profit LIMIT_MAKER 48000 below, STOP_LOSS_LIMIT 51000 (limit 51500) above;
    the quote is reserved once, at the highest leg price: 0.1 x 51500 = 5150."""
    ex = client
    request = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": "0.1",
        "listClientOrderId": "short-1",
        "aboveType": "STOP_LOSS_LIMIT",
        "aboveClientOrderId": "sl-2",
        "aboveStopPrice": "51000",
        "abovePrice": "51500",
        "aboveTimeInForce": "GTC",
        "belowType": "LIMIT_MAKER",
        "belowClientOrderId": "tp-2",
        "belowPrice": "48000",
    }
    await ex.private_post_orderlist_oco(request)
    assert fake.balance("USDT") == (D("4850"), D("5150"))
    fake.set_price(SYMBOL, "51200")  # triggers; marketable under 51500: bought at 51200
    sl = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "sl-2"})
    assert (sl["status"], sl["type"], sl["triggerPrice"], sl["price"]) == (
        "closed",
        "limit",
        51000,
        51500,
    )
    assert (sl["filled"], sl["average"]) == (0.1, 51200)
    tp = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "tp-2"})
    assert tp["status"] == "expired"
    # 10000 - 0.1 x 51200; 0.1 BTC less its 0.0001 BTC fee.
    assert fake.balance("USDT") == (D("4880"), D(0))
    assert fake.balance("BTC") == (D("0.0999"), D(0))


async def test_refusals_leave_nothing_booked(client: Any, fake: FakeBinance) -> None:
    ex = client
    await ex.create_order(SYMBOL, "market", "buy", 0.1)
    cases = [
        # take-profit below the last price
        ({"abovePrice": "49500"}, ccxt.InvalidOrder, '"code":-2010', "relationship of the prices"),
        # stop above the last price: it would fire at once
        ({"belowStopPrice": "50500"}, ccxt.InvalidOrder, '"code":-2010', "relationship"),
        # legs the wrong way round for a sell
        (
            {"aboveType": "STOP_LOSS", "aboveStopPrice": "52000", "abovePrice": ""},
            ccxt.ExchangeError,
            '"code":-1197',
            "stop loss order in a sell OCO must be below",
        ),
        (
            {"belowType": "LIMIT_MAKER", "belowPrice": "49000", "belowStopPrice": ""},
            ccxt.ExchangeError,
            '"code":-1168',
            "At least one OCO order must be contingent",
        ),
        (
            {
                **{"aboveType": "TAKE_PROFIT", "aboveStopPrice": "52000", "abovePrice": ""},
                **{"belowType": "LIMIT_MAKER", "belowPrice": "49000", "belowStopPrice": ""},
            },
            ccxt.ExchangeError,
            '"code":-1166',
            "limit order in a sell OCO must be above",
        ),
        # a STOP_LOSS takes no price; a STOP_LOSS_LIMIT needs one and a timeInForce
        ({"belowPrice": "48900"}, ccxt.BadRequest, '"code":-1106', "belowPrice"),
        ({"belowType": "STOP_LOSS_LIMIT"}, ccxt.ExchangeError, '"code":-1102', "belowPrice"),
        ({"aboveType": "LIMIT"}, ccxt.ExchangeError, '"code":-1158', "not supported in OCO"),
        ({"quantity": "5"}, ccxt.InsufficientFunds, "insufficient balance", ""),  # -2010
    ]
    for overrides, error, code, text in cases:
        with pytest.raises(error, match=code) as raised:
            await ex.private_post_orderlist_oco(oco_request(**overrides))
        assert text in str(raised.value), overrides
    assert fake.order_lists() == []
    assert await ex.fetch_open_orders(SYMBOL) == []
    assert fake.balance("BTC") == (D("0.0999"), D(0))


async def test_a_bad_signature_is_refused(fake: FakeBinance) -> None:
    ex = connect(fake, "not-" + fake.api_secret)
    try:
        await ex.load_markets()
        with pytest.raises(ccxt.AuthenticationError, match='"code":-1022'):
            await ex.private_post_orderlist_oco(oco_request())
        with pytest.raises(ccxt.AuthenticationError, match='"code":-1022'):
            await ex.private_get_openorderlist()
    finally:
        await ex.close()
    assert fake.order_lists() == []
    assert [r.status for r in fake.requests_to("POST", "/api/v3/orderList/oco")] == [400]


async def test_a_standalone_stop_loss_rests_at_the_venue(client: Any, fake: FakeBinance) -> None:
    """ccxt's create_order with stopLossPrice on spot sends type STOP_LOSS (market on trigger)."""
    ex = client
    await ex.create_order(SYMBOL, "market", "buy", 0.1)
    params = {"stopLossPrice": 49000, "clientOrderId": "sl-3"}
    # Not listed in the symbol's orderTypes (ccxt's 2024 markets): ccxt refuses it itself.
    with pytest.raises(ccxt.InvalidOrder, match="triggerPrice parameter is not allowed"):
        await ex.create_order(SYMBOL, "market", "sell", 0.0999, None, params)
    fake.enable_order_types("STOP_LOSS", "TAKE_PROFIT")
    await ex.load_markets(reload=True)
    placed = await ex.create_order(SYMBOL, "market", "sell", 0.0999, None, params)
    [sent] = fake.requests_to("POST", "/api/v3/order")[1:]
    assert (sent.params["type"], sent.params["stopPrice"]) == ("STOP_LOSS", "49000")
    assert (placed["status"], placed["triggerPrice"], placed["info"]["orderListId"]) == (
        "open",
        49000,
        -1,
    )
    assert fake.balance("BTC") == (D(0), D("0.0999"))
    fake.set_price(SYMBOL, "48000")
    order = await ex.fetch_order(placed["id"], SYMBOL)
    assert (order["status"], order["filled"], order["average"]) == ("closed", 0.0999, 48000)
    assert fake.balance("BTC") == (D(0), D(0))
    with pytest.raises(ccxt.OrderImmediatelyFillable, match="Order would trigger immediately"):
        await ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"stopLossPrice": 47000})


def test_order_list_weights_are_binances() -> None:
    assert weight_of("POST", "/api/v3/orderList/oco", {"symbol": "BTCUSDT"}) == 1
    assert weight_of("GET", "/api/v3/orderList", {}) == 4
    assert weight_of("DELETE", "/api/v3/orderList", {"symbol": "BTCUSDT"}) == 1
    assert weight_of("GET", "/api/v3/openOrderList", {}) == 6
    assert weight_of("GET", "/api/v3/allOrderList", {}) == 20
