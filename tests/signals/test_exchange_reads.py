"""Through the API: a signal sizes on the account's cached balance (our own fills booked in) and
the venue's cached price, instead of asking the exchange for both before every order; a check of
the account always asks."""

from __future__ import annotations

from tests.factories import Actor
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection, signal

ACCOUNT = ("GET", "/api/v3/account")
TICKER = ("GET", "/api/v3/ticker/24hr")
ORDER = ("POST", "/api/v3/order")


def count(fake: FakeBinance, request: tuple[str, str]) -> int:
    return len(fake.requests_to(*request))


async def test_signals_size_on_the_booked_balance_without_reading_it(
    user: Actor, fake_binance: FakeBinance
) -> None:
    fake_binance.set_balance("USDT", "1500")
    conn = await ccxt_connection(user, fake_binance)  # activation reads the balance once
    reads = count(fake_binance, ACCOUNT)
    first = await signal(user, conn)  # 1000 USDT of BTC
    assert first["status"] == "filled"
    # 500 USDT left by our own books: refused before sending, not by the exchange.
    second = await signal(user, conn)
    assert second["status"] == "rejected" and second["error_code"] == "insufficient_funds"
    assert count(fake_binance, ORDER) == 1
    assert count(fake_binance, ACCOUNT) == reads  # neither signal asked for the balance
    assert count(fake_binance, TICKER) == 1  # one price for both


async def test_a_balance_check_always_asks_the_exchange(
    user: Actor, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance)
    await signal(user, conn)
    reads = count(fake_binance, ACCOUNT)
    fake_binance.set_balance("USDT", "777")  # a deposit or a trade made elsewhere
    balance = await user.ok("GET", f"/api/v1/connections/{conn['id']}/balance")
    assert balance["USDT"]["free"] == "777"
    assert count(fake_binance, ACCOUNT) == reads + 1


async def test_after_the_exchange_refuses_an_order_the_next_signal_reads_the_balance(
    user: Actor, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance)
    fake_binance.reject_next_orders(1, code=-2010)
    assert (await signal(user, conn))["error_code"] == "insufficient_funds"
    reads = count(fake_binance, ACCOUNT)
    assert (await signal(user, conn))["status"] == "filled"
    assert count(fake_binance, ACCOUNT) == reads + 1
