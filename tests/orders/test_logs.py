"""Execution logs: filters, detail, resting limit orders and their cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from execution_service.context import AppContext
from execution_service.orders.outcomes import LAST_USED_PRECISION, stale_last_used
from tests.factories import Actor, paper_setup
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection, signal as ccxt_signal

FQ1 = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}


async def test_a_resting_limit_order_fills_when_the_price_crosses_or_is_cancelled(
    user: Actor,
) -> None:
    acct = await paper_setup(user, price="100", **FQ1)
    resting = await acct.signal(order_type="limit", entry_price="95")
    [execution] = resting["executions"]
    assert execution["status"] == "open" and execution["position_id"] is None
    cancelled = await user.ok("POST", f"/api/v1/logs/{execution['execution_log_id']}/cancel")
    assert cancelled["status"] == "cancelled" and cancelled["filled_quantity"] == "0"
    again = await user.post(f"/api/v1/logs/{execution['execution_log_id']}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "not_cancellable"
    balance = await user.ok("GET", f"/api/v1/connections/{acct.conn_id}/balance")
    assert balance["USDT"]["free"] == "10000"


async def test_a_marketable_limit_fills_at_once(user: Actor) -> None:
    acct = await paper_setup(user, price="100", **FQ1)
    signal = await acct.signal(order_type="limit", entry_price="101")
    [execution] = signal["executions"]
    assert (
        execution["status"] == "filled" and execution["price"] == "100" and execution["position_id"]
    )


async def test_filters_and_detail(user: Actor, other_user: Actor) -> None:
    acct = await paper_setup(user, price="100", **FQ1)
    await acct.price("10", symbol="ETH/USDT")
    first = await acct.signal()
    await acct.signal(symbol="ETH/USDT")
    await acct.signal(quantity="0.000000001")
    base = {"connection_id": acct.conn_id}
    assert (await user.ok("GET", "/api/v1/logs", params=base))["total"] == 3
    assert (await user.ok("GET", "/api/v1/logs", params={**base, "symbol": "ETH/USDT"}))[
        "total"
    ] == 1
    assert (await user.ok("GET", "/api/v1/logs", params={**base, "status": "filled"}))["total"] == 2
    assert (await user.ok("GET", "/api/v1/logs", params={"signal_id": first["id"]}))["total"] == 1
    assert (await user.ok("GET", "/api/v1/logs", params={**base, "since": "2999-01-01T00:00:00Z"}))[
        "total"
    ] == 0
    assert (await user.ok("GET", "/api/v1/logs", params={**base, "until": "2000-01-01T00:00:00Z"}))[
        "total"
    ] == 0
    assert (await user.get("/api/v1/logs", params={"status": "weird"})).status_code == 422
    detail = await user.ok("GET", f"/api/v1/logs/{first['executions'][0]['execution_log_id']}")
    assert (
        detail["quantity"] == "1"
        and detail["filled_quantity"] == "1"
        and detail["average_price"] == "100"
    )
    assert detail["purpose"] == "entry" and detail["order_id"] and detail["executed_at"]
    assert "response_data" in detail
    assert (await other_user.get(f"/api/v1/logs/{detail['id']}")).status_code == 404
    assert (await other_user.post(f"/api/v1/logs/{detail['id']}/cancel")).status_code == 404
    assert (await other_user.ok("GET", "/api/v1/logs", params=base))["total"] == 0


T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("used", "written", "due"),
    [
        ([(1, T0)], {}, {T0: {1}}),  # never written by this process: written
        ([(1, T0)], {1: T0 - timedelta(seconds=59)}, {}),  # written recently: skipped
        ([(1, T0)], {1: T0 - LAST_USED_PRECISION}, {T0: {1}}),  # old enough: written again
        ([(1, T0)], {1: T0 + timedelta(seconds=1)}, {}),  # a later use is already written
        # A batch: each connection's latest use, grouped by value (one UPDATE per value).
        (
            [(1, T0), (2, T0), (1, T0 + timedelta(seconds=1))],
            {},
            {T0: {2}, T0 + timedelta(seconds=1): {1}},
        ),
        ([(1, T0), (2, T0)], {2: T0}, {T0: {1}}),
    ],
)
def test_last_used_at_is_written_once_per_precision_interval(
    used: list[tuple[int, datetime]],
    written: dict[int, datetime],
    due: dict[datetime, set[int]],
) -> None:
    assert stale_last_used(used, written) == due


async def test_last_used_at_follows_orders_within_its_precision(
    user: Actor, ctx: AppContext
) -> None:
    acct = await paper_setup(user, price="100", **FQ1)

    async def last_used() -> datetime:
        conn = await user.ok("GET", f"/api/v1/connections/{acct.conn_id}")
        return datetime.fromisoformat(conn["last_used_at"])

    await acct.signal()
    first = await last_used()
    await acct.signal()
    assert await last_used() == first  # within the interval: no write
    # The interval has passed (as far as this process knows): the next order writes it again.
    ctx.last_used_written[acct.conn_id] = first - LAST_USED_PRECISION
    await acct.signal()
    assert await last_used() > first


async def test_cancel_of_an_order_the_venue_no_longer_knows_is_reconciled(
    user: Actor, fake_binance: FakeBinance
) -> None:
    """The venue purged the order (Binance forgets old cancelled orders): the cancel is a 200
    and the log ends `cancelled` with what had filled, not a 500 and `open` for good."""
    conn = await ccxt_connection(user, fake_binance)
    fake_binance.set_price("BTC/USDT", "65000")
    resting = await ccxt_signal(user, conn, order_type="limit", entry_price="60000")
    log_id = resting["execution_log_id"]
    assert resting["status"] == "open"
    fake_binance.orders.clear()  # gone from the venue, as if it had been purged
    cancelled = await user.ok("POST", f"/api/v1/logs/{log_id}/cancel")
    assert (cancelled["status"], cancelled["filled_quantity"]) == ("cancelled", "0")


async def test_cancel_of_an_order_that_filled_meanwhile_records_the_fill(
    user: Actor, fake_binance: FakeBinance
) -> None:
    conn = await ccxt_connection(user, fake_binance)
    fake_binance.set_price("BTC/USDT", "65000")
    resting = await ccxt_signal(user, conn, order_type="limit", entry_price="60000")
    log_id = resting["execution_log_id"]
    fake_binance.set_price("BTC/USDT", "59000")  # the limit buy fills at the venue
    filled = await user.ok("POST", f"/api/v1/logs/{log_id}/cancel")
    assert filled["status"] == "filled" and filled["position_id"] is not None
