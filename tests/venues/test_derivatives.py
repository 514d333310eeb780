"""Derivatives accounts as the venue holds them: positions it closed without us (liquidated, or
by hand) are closed here with the venue's figures and no order sent; funding is booked once; the
liquidation price is shown; leverage is set on the venue once per value; symbols map to the
linear perpetual or are refused; inverse-only venues and hedge-mode accounts are refused."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from execution_service.context import AppContext
from execution_service.orders.venue_sync import sync_venues
from tests.factories import Actor
from tests.fakes.binanceusdm import FakeBinanceUsdm
from tests.fakes.bybit import FakeBybit
from tests.fakes.okx import FakeOkx
from tests.venues.flow import connect, signal, tick_on_venue_prices

OKX_ORDERS = ("POST", "/api/v5/trade/batch-orders")


async def open_long(user: Actor, conn: dict[str, Any], sl: str = "39000") -> dict[str, Any]:
    execution = await signal(user, conn, sl_price=sl, tp_price="60000")
    assert execution["status"] == "filled", execution
    return await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")  # type: ignore[no-any-return]


async def test_a_liquidation_on_okx_is_closed_here_with_the_venue_s_figures(
    user: Actor, ctx: AppContext, okx: FakeOkx
) -> None:
    conn = await connect(user, okx, "okx", market_type="swap", leverage="5")
    position = await open_long(user, conn)  # 2 contracts of 0.01 BTC at 50000, fee 0.5
    report = await sync_venues(ctx)
    shown = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    # isolated 5x: 50000 x (1 - 1/5 + 0.4 % maintenance) = 40200, as the venue shows it
    assert shown["status"] == "open" and shown["liquidation_price"] == "40200"
    assert position["id"] not in report.closed

    liquidated = okx.book.liquidate("BTC-USDT-SWAP")
    assert liquidated.close_price == D(40200)
    # Past the liquidation price, short of the stop loss: the monitor leaves liquidation to the
    # venue (it sends nothing), and the venue has liquidated.
    okx.set_price("BTC-USDT-SWAP", "40100")
    await tick_on_venue_prices(ctx)
    assert len(okx.requests_to(*OKX_ORDERS)) == 1
    report = await sync_venues(ctx)
    assert position["id"] in report.closed
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "liquidation"
    assert closed["close_price"] == "40200"
    # The venue's record: pnl (40200 - 50000) x 2 x 0.01 = -196; fees 0.5 and a liquidation
    # penalty of what margin was left, 200 - 196 = 4. Net: -196 - 0.5 - 4 = -200.5, the
    # margin posted and the entry fee: all an isolated position can lose.
    assert D(closed["pnl"]) == D(-196) - D("0.5") - D(4) == D("-200.5")
    assert closed["fees"] == "4.5"
    assert len(okx.requests_to(*OKX_ORDERS)) == 1  # only the entry: nothing was sent to close
    logs = await user.ok("GET", "/api/v1/logs", params={"connection_id": conn["id"]})
    [exit_log] = [e for e in logs["items"] if e["purpose"] == "exit"]
    assert exit_log["status"] == "filled" and exit_log["filled_quantity"] == "2"

    # Never closed again: later ticks and syncs send nothing and change nothing.
    await tick_on_venue_prices(ctx)
    await sync_venues(ctx)
    assert len(okx.requests_to(*OKX_ORDERS)) == 1
    again = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert again["pnl"] == closed["pnl"] and again["closed_at"] == closed["closed_at"]


async def test_a_close_by_hand_on_bybit_is_external_and_never_reversed(
    user: Actor, ctx: AppContext, bybit: FakeBybit
) -> None:
    conn = await connect(user, bybit, "bybit", market_type="swap", leverage="5")
    position = await open_long(user, conn)  # 0.02 BTC at 50000, fee 0.55
    bybit.set_price("BTCUSDT", "51000")
    bybit.books.linear.close_by_hand("BTCUSDT")  # on Bybit's site: sold at 51000
    report = await sync_venues(ctx)
    assert position["id"] in report.closed
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "external"
    # closed-pnl: closedPnl 18.889 + openFee 0.55 + closeFee 0.561 = gross 20
    # (51000 - 50000) x 0.02); net: 20 - 0.55 - 0.561 = 18.889
    assert D(closed["pnl"]) == D(20) - D("0.55") - D("0.561") == D("18.889")
    assert closed["close_price"] == "51000"
    # The SL/TP watch is over: a later tick through the TP sends no order that would open a
    # short, and the venue holds nothing.
    bybit.set_price("BTCUSDT", "61000")
    await tick_on_venue_prices(ctx)
    assert [o.source for o in bybit.books.linear.orders] == ["api", "hand"]
    assert "BTCUSDT" not in bybit.books.linear.positions


async def test_a_liquidation_on_binance_futures(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm
) -> None:
    conn = await connect(user, usdm, "binanceusdm", market_type="swap", leverage="5")
    position = await open_long(user, conn)  # 0.02 BTC at 50000, fee 0.5
    usdm.book.liquidate("BTCUSDT")
    await sync_venues(ctx)
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "liquidation"
    # forceOrders says liquidated; userTrades: realizedPnl (40200 - 50000) x 0.02 = -196,
    # commission 4 (the margin left). Net: -196 - 0.5 - 4 = -200.5
    assert D(closed["pnl"]) == D("-200.5") and closed["close_price"] == "40200"
    assert len(usdm.requests_to("POST", "/fapi/v1/order")) == 1


async def test_part_of_a_short_closed_by_hand_is_reduced_here_and_our_close_stays_flat(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm
) -> None:
    conn = await connect(user, usdm, "binanceusdm", market_type="swap", leverage="5")
    short = await signal(user, conn, direction="sell", sl_price="60000", tp_price="30000")
    assert short["status"] == "filled" and short["quantity"] == "0.02"  # fee 0.5
    usdm.set_price("BTCUSDT", "49000")
    usdm.book.close_by_hand("BTCUSDT", "0.01")  # half of it, bought back at 49000 by hand
    await sync_venues(ctx)
    position = await user.ok("GET", f"/api/v1/positions/{short['position_id']}")
    assert position["status"] == "open" and position["quantity"] == "0.01"
    # the venue's trade: realizedPnl (50000 - 49000) x 0.01 = 10, commission
    # 0.01 x 49000 x 0.0005 = 0.245; realised so far: -0.5 + 10 - 0.245 = 9.255
    assert position["realized_pnl"] == "9.255"
    closed = await user.ok("POST", f"/api/v1/positions/{position['id']}/close")
    assert closed["execution"]["quantity"] == "0.01"  # what is left, reduce-only
    # the rest bought back at 49000: + 10 - 0.245; net 9.255 + 9.755 = 19.01
    assert closed["position"]["pnl"] == "19.01"
    assert "BTCUSDT" not in usdm.book.positions  # flat, not long


async def test_our_own_partial_exit_is_not_taken_for_the_venue_s_close(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm
) -> None:
    conn = await connect(user, usdm, "binanceusdm", market_type="swap")
    position = await open_long(user, conn)  # 0.02 at 50000, fee 0.5
    usdm.set_price("BTCUSDT", "50500")
    half = await user.ok(
        "POST", f"/api/v1/positions/{position['id']}/close", json={"quantity": "0.01"}
    )
    # ours: (50500 - 50000) x 0.01 = 5, fee 0.01 x 50500 x 0.0005 = 0.2525: -0.5 + 5 - 0.2525
    assert half["position"]["realized_pnl"] == "4.2475"
    usdm.set_price("BTCUSDT", "51000")
    usdm.book.close_by_hand("BTCUSDT")  # the rest, 0.01, sold by hand at 51000
    await sync_venues(ctx)
    closed = await user.ok("GET", f"/api/v1/positions/{position['id']}")
    assert closed["status"] == "closed" and closed["closed_reason"] == "external"
    # the venue's trades since the open are ours at 50500 and the hand's at 51000: only the
    # latter is news. (51000 - 50000) x 0.01 = 10, fee 0.255: 4.2475 + 10 - 0.255 = 13.9925
    assert closed["close_price"] == "51000" and closed["pnl"] == "13.9925"


async def test_funding_is_booked_once_as_the_venue_reports_it(
    user: Actor, ctx: AppContext, okx: FakeOkx, bybit: FakeBybit
) -> None:
    on_okx = await connect(user, okx, "okx", market_type="swap")
    on_bybit = await connect(user, bybit, "bybit", market_type="swap")
    okx_position, bybit_position = await open_long(user, on_okx), await open_long(user, on_bybit)
    # A long pays a positive rate: 0.01 % of 2 x 0.01 x 50000 = 0.1 USDT on OKX (a bill of
    # -0.1), and of 0.02 x 50000 = 0.1 USDT on Bybit (reported as a fee of +0.1).
    okx.book.pay_funding("BTC-USDT-SWAP", "0.0001")
    bybit.books.linear.pay_funding("BTCUSDT", "0.0001")
    await sync_venues(ctx)
    await sync_venues(ctx)  # booked once
    for position in (okx_position, bybit_position):
        after = await user.ok("GET", f"/api/v1/positions/{position['id']}")
        assert after["funding_fees"] == "-0.1", after
        assert D(after["realized_pnl"]) == D(position["realized_pnl"]) - D("0.1")
    okx.book.pay_funding("BTC-USDT-SWAP", "-0.0002")  # then received: +0.2
    await sync_venues(ctx)
    after = await user.ok("GET", f"/api/v1/positions/{okx_position['id']}")
    assert after["funding_fees"] == "0.1"
    # The close counts it: exit at 50000, fees 0.5 + 0.5, funding +0.1: net -0.9
    closed = await user.ok("POST", f"/api/v1/positions/{okx_position['id']}/close")
    assert D(closed["position"]["pnl"]) == D("-0.5") - D("0.5") + D("0.1") == D("-0.9")


async def test_leverage_is_set_once_per_value_and_again_after_a_preset_change(
    user: Actor, okx: FakeOkx
) -> None:
    conn = await connect(user, okx, "okx", market_type="swap", leverage="5")
    for _ in range(2):
        assert (await signal(user, conn))["status"] == "filled"
    levers = okx.requests_to("POST", "/api/v5/account/set-leverage")
    assert [r.params["lever"] for r in levers] == [5]
    await user.ok("PATCH", f"/api/v1/presets/{conn['preset_id']}", json={"leverage": "3"})
    execution = await signal(user, conn)
    assert execution["status"] == "filled"
    levers = okx.requests_to("POST", "/api/v5/account/set-leverage")
    assert [r.params["lever"] for r in levers] == [5, 3]
    assert okx.orders[-1].leverage == 3
    position = await user.ok("GET", f"/api/v1/positions/{execution['position_id']}")
    assert position["leverage"] == "3"


async def test_a_leverage_the_venue_refuses_sends_no_order(
    user: Actor, usdm: FakeBinanceUsdm
) -> None:
    conn = await connect(user, usdm, "binanceusdm", market_type="swap", leverage="200")
    execution = await signal(user, conn)  # Binance takes at most 125x
    assert execution["status"] == "rejected" and execution["error_code"] == "leverage_not_set"
    assert "leverage 200 not set" in execution["error_message"]
    assert "125" in execution["error_message"]
    assert usdm.requests_to("POST", "/fapi/v1/order") == []


async def test_symbols_map_to_the_linear_perpetual_or_are_refused(
    user: Actor, okx: FakeOkx
) -> None:
    conn = await connect(user, okx, "okx", market_type="swap")
    assert (await signal(user, conn, symbol="ETH/USDT"))["status"] == "filled"
    assert okx.orders[-1].inst.id == "ETH-USDT-SWAP"  # 1000 / (3000 x 0.1) = 3.3 contracts
    assert okx.orders[-1].qty == D("3.3")
    assert (await signal(user, conn, symbol="ETH/USDT:USDT"))["status"] == "filled"
    unknown = await signal(user, conn, symbol="DOGE/USDT")
    assert unknown["status"] == "rejected" and unknown["error_code"] == "unknown_symbol"
    inverse = await signal(user, conn, symbol="BTC/USD:BTC")
    assert inverse["status"] == "rejected" and inverse["error_code"] == "inverse_not_supported"
    assert len(okx.orders) == 2


async def test_inverse_only_venues_and_missing_market_types_are_refused_at_create(
    user: Actor,
) -> None:
    p = await user.preset()
    base = {"name": "x", "adapter": "ccxt", "preset_id": p["id"]}
    base["credentials"] = {"api_key": "k" * 16, "api_secret": "s" * 16}
    inverse = await user.post(
        "/api/v1/connections", {**base, "exchange": "binancecoinm", "market_type": "swap"}
    )
    assert inverse.status_code == 422 and inverse.json()["code"] == "inverse_not_supported"
    spot = await user.post(
        "/api/v1/connections", {**base, "exchange": "binanceusdm", "market_type": "spot"}
    )
    assert spot.status_code == 422 and spot.json()["code"] == "market_type_not_supported"


async def test_a_hedge_mode_account_is_refused_at_activation(
    user: Actor, usdm: FakeBinanceUsdm, bybit: FakeBybit
) -> None:
    usdm.book.hedge_mode = True
    conn = await connect(user, usdm, "binanceusdm", market_type="swap", activate=False)
    refused = await user.post(f"/api/v1/connections/{conn['id']}/activate")
    assert refused.status_code == 409 and refused.json()["code"] == "hedge_mode_not_supported"
    after = await user.ok("GET", f"/api/v1/connections/{conn['id']}")
    assert after["is_active"] is False and after["last_error"].startswith("hedge_mode")
    usdm.book.hedge_mode = False
    assert (await user.ok("POST", f"/api/v1/connections/{conn['id']}/activate"))["is_active"]
