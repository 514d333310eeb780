"""MtapiAdapter over loopback against the fake mtapi gateway (tests/fakes/mtapi.py).

Default quotes: EURUSD 1.10000/1.10010, USDJPY 150.000/150.010; the account is 10000 USD at
1:100. Tickets are numbered from 50001002.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable
from decimal import Decimal as D
from typing import Any

import pytest

from execution_service.exchanges.base import (
    AuthFailed,
    BalanceEntry,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    OrderResult,
    Stops,
    TemporaryError,
)
from execution_service.exchanges.mtapi.adapter import MtapiAdapter
from execution_service.exchanges.mtapi.parsing import magic_number
from execution_service.signals.fx import lots_for_risk, pip_value
from tests.exchanges.conftest import LOOPBACK
from tests.fakes.mtapi import FakeMtapi

CREDENTIALS = {"user": "7001234", "password": "mt-Passw0rd!", "host": "mt4.test", "port": "443"}
AdapterFactory = Callable[..., MtapiAdapter]


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[FakeMtapi]:
    user, password, host, port = CREDENTIALS.values()
    async with FakeMtapi(user=user, password=password, host=host, port=port) as fake:
        yield fake


@pytest.fixture
async def fake(gateway: FakeMtapi) -> AsyncIterator[FakeMtapi]:
    if gateway.down == "refuse":
        await gateway.come_up()
    gateway.reset()
    yield gateway
    assert gateway.unexpected_requests == []


@pytest.fixture
async def make_adapter(fake: FakeMtapi) -> AsyncIterator[AdapterFactory]:
    made: list[MtapiAdapter] = []

    def make(**overrides: Any) -> MtapiAdapter:
        credentials = overrides.pop("credentials", CREDENTIALS)
        options = {"timeout_ms": 3000, "retry_base_delay": 0.01, "outbound": LOOPBACK, **overrides}
        made.append(MtapiAdapter(fake.base_url, credentials, **options))
        return made[-1]

    yield make
    for adapter in made:
        await adapter.close()


@pytest.fixture
def adapter(make_adapter: AdapterFactory) -> MtapiAdapter:
    return make_adapter()


async def buy(
    adapter: MtapiAdapter,
    cid: str,
    lots: str = "0.1",
    symbol: str = "EURUSD",
    sl: D | None = None,
    tp: D | None = None,
) -> OrderResult:
    """A market buy of `lots`, with the broker-held stops given."""
    stops = Stops(sl, tp) if sl is not None or tp is not None else None
    return await adapter.create_order(symbol, "buy", "market", D(lots), None, cid, stops)


# --- session and account -------------------------------------------------------------------------


async def test_connect_then_balance(adapter: MtapiAdapter, fake: FakeMtapi) -> None:
    assert await adapter.fetch_balance() == {"USD": BalanceEntry(D(10000), D(0), D(10000))}
    connect, summary = fake.requests
    assert (connect.path, summary.path) == ("/Connect", "/AccountSummary")
    assert connect.params == CREDENTIALS
    assert summary.params["id"] in fake.tokens
    # 0.2 lots bought at the ask 1.10010, valued at the bid 1.10000: floating -0.0001 x 20000
    # = -2 USD, equity 9998; margin 0.2 x 100000 x 1.1 / 100 = 220; free 9998 - 220 = 9778.
    await buy(adapter, "es-1-1-e", "0.2")
    assert await adapter.fetch_balance() == {"USD": BalanceEntry(D(9778), D(220), D(9998))}


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [("password", "wrong-pass", "INVALID_ACCOUNT"), ("host", "elsewhere.test", "CONNECT_FAILED")],
)
async def test_bad_login_is_auth_failed_without_the_password(
    make_adapter: AdapterFactory, field: str, value: str, code: str
) -> None:
    credentials = {**CREDENTIALS, field: value}
    with pytest.raises(AuthFailed) as caught:
        await make_adapter(credentials=credentials).fetch_balance()
    assert caught.value.message.startswith(code)
    assert "Passw0rd" not in caught.value.message and "wrong-pass" not in caught.value.message


def test_missing_credentials_are_refused_up_front() -> None:
    with pytest.raises(AuthFailed):
        MtapiAdapter("http://127.0.0.1:9", {"user": "1", "host": "h"})


async def test_expired_token_reconnects_transparently(
    adapter: MtapiAdapter, fake: FakeMtapi
) -> None:
    await adapter.fetch_balance()
    fake.expire_tokens()
    assert "USD" in await adapter.fetch_balance()
    assert fake.paths == [
        "/Connect",
        "/AccountSummary",
        "/AccountSummary",
        "/Connect",
        "/AccountSummary",
    ]
    assert [r.status for r in fake.requests] == [200, 200, 400, 200, 200]


# --- markets and prices --------------------------------------------------------------------------


async def test_market_precision_from_symbol_params(adapter: MtapiAdapter, fake: FakeMtapi) -> None:
    eurusd = await adapter.market("EURUSD")
    assert (eurusd.symbol, eurusd.base, eurusd.quote) == ("EURUSD", "EUR", "USD")
    assert (eurusd.amount_step, eurusd.min_amount, eurusd.max_amount) == (
        D("0.01"),
        D("0.01"),
        D(100),
    )
    assert (eurusd.price_tick, eurusd.pip_size, eurusd.contract_size) == (
        D("0.00001"),
        D("0.0001"),
        D(100000),
    )
    usdjpy = await adapter.market("USD/JPY")  # the slash is stripped
    assert (usdjpy.quote, usdjpy.price_tick, usdjpy.pip_size) == ("JPY", D("0.001"), D("0.01"))
    gold = await adapter.market("XAUUSD")  # 2 digits: a pip is a point
    assert (gold.contract_size, gold.price_tick, gold.pip_size, gold.max_amount) == (
        D(100),
        D("0.01"),
        D("0.01"),
        D(50),
    )
    assert await adapter.market("EUR/USD") is eurusd  # cached: one SymbolParams per symbol
    assert len(fake.requests_to("/SymbolParams")) == 3
    assert pip_value(eurusd.contract_size, eurusd.pip_size, D(1), D(1)) == D(10)  # type: ignore[arg-type]
    with pytest.raises(InvalidOrder):
        await adapter.market("NOPE")
    assert set(await adapter.load_markets()) == {"EURUSD", "USDJPY", "XAUUSD"}


async def test_tickers_are_the_bid(adapter: MtapiAdapter, fake: FakeMtapi) -> None:
    fake.set_quote("EURUSD", "1.23456", "1.23466")
    assert (await adapter.fetch_ticker("EUR/USD")).price == D("1.23456")
    tickers = await adapter.fetch_tickers(["EUR/USD", "USDJPY", "NOPE"])
    assert {s: t.price for s, t in tickers.items()} == {"EUR/USD": D("1.23456"), "USDJPY": D(150)}


async def test_risk_sizing_in_lots_from_the_gateway(adapter: MtapiAdapter, fake: FakeMtapi) -> None:
    fake.set_quote("USDJPY", "149.995", "150.005")  # mid 150.000
    assert await adapter.quote_to_account_rate("EURUSD") == 1
    rate = await adapter.quote_to_account_rate("USDJPY")
    assert rate == D(1) / D(150)
    m = await adapter.market("USDJPY")
    equity = (await adapter.fetch_balance())["USD"].total
    # 1% of 10000 = 100 USD; 0.5 yen x 100000 = 50000 JPY = 333.33 USD a lot -> 0.3 lots.
    assert m.contract_size is not None
    lots = lots_for_risk(
        equity, D(1), D("150.000"), D("149.500"), m.contract_size, rate,
        m.amount_step, m.min_amount, m.max_amount,
    )  # fmt: skip
    assert lots == D("0.3")
    order = await buy(adapter, "es-2-1-e", str(lots), "USDJPY", sl=D("149.500"))
    assert (order.filled, fake.opened[0].sl) == (D("0.3"), D("149.5"))


# --- orders ---------------------------------------------------------------------------------------


async def test_market_buy_carries_sl_tp_comment_and_magic(
    adapter: MtapiAdapter, fake: FakeMtapi
) -> None:
    order = await adapter.create_order(
        "EUR/USD", "buy", "market", D("0.237"), None, "es-3-1-e", Stops(D("1.0950049"), D("1.11"))
    )
    assert (order.status, order.filled, order.average, order.side) == (
        "filled",
        D("0.23"),
        D("1.1001"),
        "buy",
    )
    assert (order.order_id, order.client_order_id, order.symbol) == (
        "50001002",
        "es-3-1-e",
        "EUR/USD",
    )
    (sent,) = fake.requests_to("/OrderSend")
    assert sent.params["volume"] == "0.23" and "price" not in sent.params  # rounded down
    assert D(sent.params["stoploss"]) == D("1.09500")  # rounded to the point
    (ticket,) = fake.opened
    assert (ticket.symbol, ticket.type, ticket.lots) == ("EURUSD", "Buy", D("0.23"))
    assert (ticket.sl, ticket.tp) == (D("1.095"), D("1.11"))  # held by the broker
    assert ticket.comment == "es-3-1-e" and ticket.magic == magic_number("es-3-1-e")


def test_magic_number_is_stable_and_positive() -> None:
    assert magic_number("es-3-1-e") == zlib.crc32(b"es-3-1-e") % (2**31 - 1) + 1
    assert 0 < magic_number("") < 2**31


async def test_orders_outside_the_lot_limits_are_refused_before_sending(
    adapter: MtapiAdapter, fake: FakeMtapi
) -> None:
    for lots in ("0.009", "100.01"):
        with pytest.raises(InvalidOrder):
            await buy(adapter, "es-4-1-e", lots)
    with pytest.raises(InvalidOrder):  # over MetaTrader's 31-character comment
        await buy(adapter, "x" * 32)
    assert fake.requests_to("/OrderSend") == []


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("MARKET_CLOSED", InvalidOrder),
        ("INVALID_VOLUME", InvalidOrder),
        ("REQUOTE", InvalidOrder),
        ("NOT_ENOUGH_MONEY", InsufficientFunds),
        ("NO_MONEY", InsufficientFunds),
        ("SERVER_BUSY", TemporaryError),
        ("SOMETHING_ODD", ExchangeError),
    ],
)
async def test_gateway_error_codes_are_translated(
    adapter: MtapiAdapter, fake: FakeMtapi, code: str, error: type[ExchangeError]
) -> None:
    await adapter.market("EURUSD")
    fake.reject_next(code)
    with pytest.raises(error) as caught:
        await buy(adapter, "es-5-1-e")
    assert type(caught.value) is error and caught.value.message.startswith(code)
    assert len(fake.requests_to("/OrderSend")) == 1 and fake.opened == []  # never retried


async def test_the_fake_broker_refusals(adapter: MtapiAdapter, fake: FakeMtapi) -> None:
    fake.close_market("EURUSD")
    with pytest.raises(InvalidOrder, match="MARKET_CLOSED"):
        await buy(adapter, "es-6-1-e")
    fake.open_market()
    with pytest.raises(InsufficientFunds):  # 50 lots need 50 x 100000 x 1.1 / 100 = 55000 USD
        await buy(adapter, "es-6-2-e", "50")
    with pytest.raises(InvalidOrder, match="INVALID_STOPS"):  # a buy's SL above the bid
        await buy(adapter, "es-6-3-e", sl=D("1.101"))
    assert fake.opened == []


async def test_modify_keeps_the_broker_stops_in_sync(
    adapter: MtapiAdapter, fake: FakeMtapi
) -> None:
    order = await buy(adapter, "es-7-1-e", sl=D("1.09"))
    modified = await adapter.amend_stops("EURUSD", order.order_id, sl=D("1.098"), tp=D("1.12"))
    assert (modified.raw["stopLoss"], modified.raw["takeProfit"]) == (D("1.098"), D("1.12"))
    assert (fake.opened[0].sl, fake.opened[0].tp) == (D("1.098"), D("1.12"))
    await adapter.amend_stops("EURUSD", order.order_id, sl=D("1.098"), tp=None)  # TP removed
    assert fake.opened[0].tp == 0
    with pytest.raises(InvalidOrder):
        await adapter.amend_stops("EURUSD", order.order_id, sl=D("1.2"), tp=None)
    fake.reject_next("INVALID_TICKET", path="/OrderModify")
    with pytest.raises(OrderNotFound):
        await adapter.amend_stops("EURUSD", order.order_id, sl=D("1.097"), tp=None)


async def test_partial_then_full_close_follows_the_mt4_ticket_chain(
    adapter: MtapiAdapter, fake: FakeMtapi
) -> None:
    entry = await buy(adapter, "es-8-1-e", "0.3", sl=D("1.09"), tp=D("1.12"))
    fake.set_quote("EURUSD", "1.10510", "1.10520")
    part = await adapter.close_position("EURUSD", entry.order_id, D("0.1"), "es-p8-x1")
    # closed at the bid 1.10510, opened at 1.10010: 0.005 x 0.1 lot x 100000 = 50 USD.
    assert (part.side, part.status, part.filled, part.average) == (
        "sell",
        "filled",
        D("0.1"),
        D("1.1051"),
    )
    assert (part.order_id, part.client_order_id, part.raw["profit"]) == (
        entry.order_id,
        "es-p8-x1",
        D(50),
    )
    heir = part.raw["remaining_ticket"]
    assert heir == "50001003" and fake.ticket(heir).comment == f"from #{entry.order_id}"  # type: ignore[union-attr]
    left = await adapter.fetch_position("EURUSD", entry.order_id)
    assert left is not None and (left.order_id, left.amount, left.raw["stopLoss"]) == (
        heir,
        D("0.2"),
        D("1.09"),
    )
    await adapter.amend_stops("EURUSD", entry.order_id, sl=D("1.1"), tp=D("1.12"))  # on the heir
    assert fake.ticket(heir).sl == D("1.1")  # type: ignore[union-attr]
    # the entry is still found by client order id, by magic: its comment is now "to #50001003".
    found = await adapter.fetch_order("EURUSD", client_order_id="es-8-1-e")
    assert found.order_id == entry.order_id and found.raw["comment"] == f"to #{heir}"
    rest = await adapter.close_position("EURUSD", entry.order_id, D("1"), "es-p8-x2")  # capped
    # 0.005 x 0.2 lot x 100000 = 100 USD; the account made 150.
    assert (rest.order_id, rest.amount, rest.filled, rest.raw["profit"]) == (
        heir,
        D("0.2"),
        D("0.2"),
        D(100),
    )
    assert rest.raw["remaining_ticket"] is None
    assert await adapter.fetch_position("EURUSD", entry.order_id) is None
    assert (await adapter.fetch_balance())["USD"] == BalanceEntry(D(10150), D(0), D(10150))


async def test_closed_ticket_pnl_is_in_the_account_currency(
    adapter: MtapiAdapter, fake: FakeMtapi
) -> None:
    fake.set_quote("USDJPY", "148.990", "149.000")
    entry = await buy(adapter, "es-9-1-e", "0.1", "USD/JPY")  # at the ask 149.000
    fake.set_quote("USDJPY", "150.000", "150.010")
    closed = await adapter.close_position("USD/JPY", entry.order_id, D("0.1"), "es-p9-x1")
    # (150.000 - 149.000) x 0.1 lot x 100000 = 10000 JPY; / 150.000 yen a dollar = 66.67 USD.
    assert (closed.average, closed.raw["profit"]) == (D(150), D("66.67"))
    again = await adapter.fetch_order("USD/JPY", order_id=entry.order_id)
    assert (again.status, again.raw["closePrice"], again.raw["profit"]) == (
        "filled",
        D(150),
        D("66.67"),
    )
    assert (await adapter.fetch_balance())["USD"].total == D("10066.67")


async def test_broker_side_stop_loss_closes_the_ticket(
    adapter: MtapiAdapter, fake: FakeMtapi
) -> None:
    entry = await buy(adapter, "es-10-1-e", sl=D("1.095"))
    fake.set_quote("EURUSD", "1.09490", "1.09500")  # the bid crosses the SL: the broker closes
    assert await adapter.fetch_position("EURUSD", entry.order_id) is None
    closed = await adapter.fetch_order("EURUSD", client_order_id="es-10-1-e")
    # (1.09490 - 1.10010) x 0.1 lot x 100000 = -52 USD.
    assert (closed.raw["comment"], closed.raw["closePrice"], closed.raw["profit"]) == (
        "es-10-1-e[sl]",
        D("1.0949"),
        D(-52),
    )
    # The monitor's own close comes too late: its answer is the broker's close, and why.
    late = await adapter.close_position("EURUSD", entry.order_id, D("0.1"), "es-p10-x1")
    assert (late.status, late.side, late.filled, late.average) == (
        "filled",
        "sell",
        D("0.1"),
        D("1.0949"),
    )
    assert (late.close_reason, late.realized_pnl) == ("sl", D(-52))
    assert fake.requests_to("/OrderClose") == []  # nothing was sent


async def test_limit_order_rests_fills_and_cancels(adapter: MtapiAdapter, fake: FakeMtapi) -> None:
    limit = await adapter.create_order("EURUSD", "buy", "limit", D("0.1"), D("1.09"), "es-11-1-e")
    assert (limit.status, limit.price, limit.filled, limit.type) == (
        "open",
        D("1.09"),
        D(0),
        "limit",
    )
    assert [o.order_id for o in await adapter.fetch_open_orders()] == [limit.order_id]
    assert await adapter.fetch_open_orders("USDJPY") == []
    fake.set_quote("EURUSD", "1.08990", "1.09000")  # the ask reaches the limit
    filled = await adapter.fetch_order("EURUSD", client_order_id="es-11-1-e")
    assert (filled.status, filled.filled, filled.average) == ("filled", D("0.1"), D("1.09"))
    assert await adapter.fetch_open_orders() == []
    with pytest.raises(InvalidOrder):  # a position is closed, not cancelled
        await adapter.cancel_order("EURUSD", order_id=filled.order_id)
    await adapter.create_order("EURUSD", "sell", "limit", D("0.1"), D("1.12"), "es-11-2-e")
    cancelled = await adapter.cancel_order("EURUSD", client_order_id="es-11-2-e")
    assert (cancelled.status, cancelled.client_order_id, cancelled.side) == (
        "cancelled",
        "es-11-2-e",
        "sell",
    )
    with pytest.raises(OrderNotFound):
        await adapter.cancel_order("EURUSD", client_order_id="es-11-2-e")


async def test_unknown_tickets_are_order_not_found(adapter: MtapiAdapter) -> None:
    with pytest.raises(OrderNotFound):
        await adapter.fetch_order("EURUSD", order_id="999")
    with pytest.raises(OrderNotFound):
        await adapter.fetch_order("EURUSD", client_order_id="never-sent")
    with pytest.raises(OrderNotFound):
        await adapter.close_position("EURUSD", "999", D("0.1"), "es-p1-x1")
    with pytest.raises(OrderNotFound):
        await adapter.amend_stops("EURUSD", "999", sl=None, tp=None)


# --- unknown outcomes: never a second order -------------------------------------------------------


async def test_expired_token_on_create_looks_up_then_sends_once(
    adapter: MtapiAdapter, fake: FakeMtapi
) -> None:
    await adapter.market("EURUSD")
    await adapter.fetch_balance()
    fake.requests.clear()
    fake.expire_tokens()
    order = await buy(adapter, "es-12-1-e")
    assert fake.paths == ["/OrderSend", "/Connect", "/OpenedOrders", "/OrderHistory", "/OrderSend"]
    assert order.status == "filled" and len(fake.opened) == 1


async def test_invalid_token_after_the_order_was_placed_is_not_resent(
    adapter: MtapiAdapter, fake: FakeMtapi
) -> None:
    await adapter.market("EURUSD")
    await adapter.fetch_balance()
    fake.reject_next("INVALID_TOKEN", after=True)  # booked, then answered INVALID_TOKEN
    order = await buy(adapter, "es-13-1-e")
    assert len(fake.requests_to("/OrderSend")) == 1 and len(fake.opened) == 1
    assert (order.order_id, order.status) == (str(fake.opened[0].ticket), "filled")


async def test_lost_order_send_reply_is_found_by_client_order_id(
    make_adapter: AdapterFactory, fake: FakeMtapi
) -> None:
    adapter = make_adapter(timeout_ms=300)
    await adapter.market("EURUSD")
    await adapter.fetch_balance()
    fake.hang_next("/OrderSend", seconds=1)
    with pytest.raises(TemporaryError, match="timed out") as caught:
        await buy(adapter, "es-14-1-e")
    assert "127.0.0.1" not in caught.value.message
    assert len(fake.requests_to("/OrderSend")) == 1 and len(fake.opened) == 1
    found = await adapter.fetch_order("EURUSD", client_order_id="es-14-1-e")
    assert (found.order_id, found.status, found.filled) == (
        str(fake.opened[0].ticket),
        "filled",
        D("0.1"),
    )


async def test_reads_are_retried(adapter: MtapiAdapter, fake: FakeMtapi) -> None:
    fake.reject_next("SERVER_BUSY", path="/AccountSummary", count=2)
    assert "USD" in await adapter.fetch_balance()
    assert [r.status for r in fake.requests_to("/AccountSummary")] == [400, 400, 200]


@pytest.mark.parametrize("mode", ["refuse", "503"])
async def test_gateway_down_is_temporary(
    make_adapter: AdapterFactory, fake: FakeMtapi, mode: str
) -> None:
    adapter = make_adapter(read_retries=1)
    await adapter.market("EURUSD")
    await fake.go_down(mode)
    with pytest.raises(TemporaryError):
        await adapter.fetch_balance()
    with pytest.raises(TemporaryError):
        await buy(adapter, "es-15-1-e")
    await fake.come_up()
    assert "USD" in await adapter.fetch_balance()
    assert fake.opened == []
