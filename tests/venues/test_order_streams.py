"""Order updates pushed by Binance USDⓈ-M (the fake's user data stream, through real ccxt.pro):
a venue-held stop that fires is booked within milliseconds, without waiting for a tracker pass;
a dropped stream reconnects, the tracker's passes covering the gap."""

from __future__ import annotations

from execution_service import metrics
from execution_service.context import AppContext
from execution_service.orders.protection import settled
from execution_service.workers.order_streams import OrderStreams
from tests.factories import Actor
from tests.fakes.binanceusdm import FakeBinanceUsdm
from tests.venues.flow import connect, signal, until


async def _streaming(usdm: FakeBinanceUsdm, streams: OrderStreams, ctx: AppContext) -> None:
    await streams.tick(ctx)

    async def connected() -> bool:
        return any(usdm.stream.sockets.values())

    await until(connected)


async def test_a_fired_stop_is_booked_from_the_pushed_update(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm, streams: OrderStreams
) -> None:
    conn = await connect(user, usdm, "binanceusdm", market_type="swap", leverage="5")
    execution = await signal(user, conn, sl_price="49000", tp_price="52000")
    await settled(ctx)
    await _streaming(usdm, streams, ctx)
    assert usdm.requests_to("POST", "/fapi/v1/listenKey")

    path = f"/api/v1/positions/{execution['position_id']}"

    async def closed() -> bool:
        return bool((await user.ok("GET", path))["status"] == "closed")

    usdm.set_price("BTCUSDT", "48900")  # the venue fires the stop and pushes ALGO_UPDATE
    took = await until(closed)  # no tracker pass: the pushed update did it
    assert took < 1.0
    position = await user.ok("GET", path)
    assert position["closed_reason"] == "sl" and position["close_price"] == "48900"
    assert any(e["e"] == "ALGO_UPDATE" and e["o"]["X"] == "FINISHED" for e in usdm.stream.sent)
    await settled(ctx)  # the protection pass the fill started cancels the target
    assert usdm.algo_orders(open_only=True) == []


async def test_a_dropped_stream_reconnects(
    user: Actor, ctx: AppContext, usdm: FakeBinanceUsdm, streams: OrderStreams
) -> None:
    conn = await connect(user, usdm, "binanceusdm", market_type="swap", leverage="5")
    execution = await signal(user, conn, sl_price="49000")
    await settled(ctx)
    await _streaming(usdm, streams, ctx)
    keys = len(usdm.requests_to("POST", "/fapi/v1/listenKey"))
    usdm.stream.drop_all()

    async def dropped() -> bool:
        return not any(usdm.stream.sockets.values())

    await until(dropped)

    async def back() -> bool:
        return any(usdm.stream.sockets.values())

    await until(back, 10)  # ccxt.pro reconnects on the next watch
    assert len(usdm.requests_to("POST", "/fapi/v1/listenKey")) >= keys
    usdm.set_price("BTCUSDT", "48900")
    path = f"/api/v1/positions/{execution['position_id']}"

    async def closed() -> bool:
        return bool((await user.ok("GET", path))["status"] == "closed")

    await until(closed)
    # Streaming again (earlier tests' accounts, their venues gone, may still be retrying).
    assert conn["id"] not in streams.retrying
    assert metrics.ORDER_STREAMS.labels("retrying")._value.get() == len(streams.retrying)
