"""8. Protection on a real venue's wire (the fake Binance USDⓈ-M, in this process; the service
with its workers at their default settings, talking to it through real ccxt):

- **fill → closed**: a position's SL rests at the venue (a reduce-only algo order). The price
  moves through it on the venue, which fills it at once; measured until GET /positions/{id}
  reads `closed` (`closed_reason: sl`, the venue's price and fees).
- **tick → exit on the wire**: a position whose SL the monitor emulates (`stops_on_venue:
  false`); the price moves through it on the venue; measured until the service's reduce-only
  exit order reaches the venue. Streamed: the account's prices come from a `ccxt` data
  connection on the same venue, which the service streams (ccxt.pro watch_tickers on the fake's
  market stream: the move is pushed as the venue's 24hrMiniTicker). Polled: the account has no
  data connection, and the monitor reads the venue's public tickers once a tick.

The fill path twice in one run: with the venue's order stream (ccxt.pro watch_orders on the
fake's user data stream: the service looks the order up as the update lands), and with it off
(EXEC_ORDER_STREAMS=false: the order tracker polls every EXEC_ORDER_TRACKER_INTERVAL_SECONDS,
2 s); the price path too, streamed and polled (EXEC_MONITOR_INTERVAL_SECONDS, 1 s). Baseline:
the polling interval (a poller reacts half an interval after an event on average, a whole one
at worst). The issue's goal: p99 ≤ 100 ms, for the streamed paths.
"""

from __future__ import annotations

import asyncio
import random
import time
from decimal import Decimal
from typing import Any

from tests.fakes.binanceusdm import FakeBinanceUsdm

from benchmarks.harness import Api, Database, Env, admin_api, log, new_user_id, pct, start_service
from benchmarks.report import Figure, Result

TRACKER, MONITOR = 2.0, 1.0  # the service's default intervals
BASE = Decimal(50000)
TICKER_TTL = 1.2  # EXEC_TICKER_CACHE_SECONDS (1) and a margin


async def _until(check: Any, limit: float, poll: float = 0.005) -> float:
    t0 = time.time()
    while time.time() - t0 < limit:
        if await check():
            return time.time()
        await asyncio.sleep(poll)
    raise TimeoutError(f"not seen within {limit} s")


async def _prices(user: Api, fake: FakeBinanceUsdm, limit: float) -> int:
    """A data connection streaming the venue's BTC/USDT, once it reads `streaming`."""
    body = {
        "name": "usdm prices",
        "type": "ccxt",
        "exchange": "binanceusdm",
        "market_type": "swap",
        "api_base_url": fake.base_url,
        "symbols": ["BTC/USDT"],
    }
    dc = await user.ok("POST", "/api/v1/data-connections", 201, json=body)

    async def streaming() -> bool:
        read = await user.ok("GET", f"/api/v1/data-connections/{dc['id']}")
        return read["mode"] == "streaming"  # type: ignore[no-any-return]

    await _until(streaming, limit, poll=0.05)
    return int(dc["id"])


async def _connection(
    user: Api, fake: FakeBinanceUsdm, *, on_venue: bool, data_connection_id: int | None = None
) -> int:
    preset = await user.preset(
        default_sl_percent=None,
        default_tp_percent=None,
        position_size_mode="fixed_quantity",
        position_size_value="0.01",  # 500 USDT: over the minimum notional
        stops_on_venue=on_venue,
    )
    conn = await user.connection(
        {
            "name": "usdm",
            "adapter": "ccxt",
            "exchange": "binanceusdm",
            "market_type": "swap",
            "api_base_url": fake.base_url,
            "credentials": fake.credentials,
            "preset_id": preset["id"],
            "data_connection_id": data_connection_id,
        }
    )
    return int(conn["id"])


async def _open(user: Api, fake: FakeBinanceUsdm, conn_id: int) -> int:
    if fake.book.prices["BTCUSDT"] != BASE:
        fake.set_price("BTCUSDT", BASE)
        await asyncio.sleep(TICKER_TTL)  # the service's copy of the last price follows
    body = await user.signal(
        symbol="BTC/USDT", direction="buy", sl_price=str(BASE - 500), connection_ids=[conn_id]
    )
    [execution] = body["executions"]
    if execution["status"] != "filled":
        raise RuntimeError(f"the entry did not fill: {execution}")
    return int(execution["position_id"])


async def _fills(user: Api, fake: FakeBinanceUsdm, rounds: int, limit: float) -> list[float]:
    conn_id = await _connection(user, fake, on_venue=True)
    times = []
    for _ in range(rounds):
        pid = await _open(user, fake, conn_id)

        async def held() -> bool:
            return any(o.order_type == "STOP_MARKET" for o in fake.algo_orders(open_only=True))

        await _until(held, limit)
        await asyncio.sleep(random.uniform(0, TRACKER))

        async def closed(p: int = pid) -> bool:
            return (await user.ok("GET", f"/api/v1/positions/{p}"))["status"] == "closed"

        t0 = time.time()
        fake.set_price("BTCUSDT", BASE - 600)  # the venue fills the stop now
        times.append(await _until(closed, limit) - t0)
    return times


async def _ticks(
    user: Api, fake: FakeBinanceUsdm, rounds: int, limit: float, *, streamed: bool
) -> list[float]:
    prices = await _prices(user, fake, limit) if streamed else None
    conn_id = await _connection(user, fake, on_venue=False, data_connection_id=prices)
    times = []
    for _ in range(rounds):
        pid = await _open(user, fake, conn_id)
        await asyncio.sleep(random.uniform(0, MONITOR))
        sent = len(fake.requests_to("POST", "/fapi/v1/order"))
        t0 = time.time()
        fake.set_price("BTCUSDT", BASE - 600)

        async def exit_sent(n: int = sent) -> bool:
            return len(fake.requests_to("POST", "/fapi/v1/order")) > n

        await _until(exit_sent, limit)
        times.append(fake.requests_to("POST", "/fapi/v1/order")[sent].at - t0)

        async def closed(p: int = pid) -> bool:
            return (await user.ok("GET", f"/api/v1/positions/{p}"))["status"] == "closed"

        await _until(closed, limit)
    return times


def _figures(
    name: str, times: list[float], interval: float, what: str, goal: bool = True
) -> list[Figure]:
    """`goal`: the issue's p99 ≤ 100 ms applies (the streamed path; the polled ones are the
    figures it is compared with)."""
    p50, p99 = pct(times, 50), pct(times, 99)
    target = "≤ 0.1 s" if goal else ""
    return [
        Figure(
            f"{name}: p50",
            p50,
            "s",
            interval / 2,
            f"½ {what}",
            target,
            p50 <= 0.1 if goal else None,
        ),
        Figure(f"{name}: p99", p99, "s", interval, what, target, p99 <= 0.1 if goal else None),
    ]


async def _measure(
    db: Database, env: Env, fake: FakeBinanceUsdm, rounds: int, *, streams: bool
) -> tuple[list[float], list[float]]:
    """Both paths through one service, with the venue's order stream on or off."""
    mode = "true" if streams else "false"
    service = start_service(
        db, env.ring, env.workdir, workers=True, name=f"protection-{mode}",
        env={"EXEC_ORDER_STREAMS": mode, "EXEC_MARKET_DATA_STREAMS": mode},
    )  # fmt: skip
    apis: list[Api] = []
    try:
        admin = admin_api(service)
        apis.append(admin)
        user = await admin.new_user(new_user_id())
        apis.append(user)
        limit = env.limit(30.0)
        how = "streamed" if streams else "polled by the order tracker"
        log(f"protection: {rounds} venue fills, {how}")
        fills = await _fills(user, fake, rounds, limit)
        how = "streamed (watch_tickers)" if streams else "polled by the monitor"
        log(f"protection: {rounds} price moves, {how}")
        ticks = await _ticks(user, fake, rounds, limit, streamed=streams)
        return fills, ticks
    finally:
        for api in apis:
            await api.aclose()
        service.stop()


async def run(db: Database, env: Env) -> Result:
    result = Result("protection", db.label)
    rounds = env.size(20, 5)
    fake = FakeBinanceUsdm(api_key="k" * 16, api_secret="s" * 32)
    await fake.start()
    try:
        polled, ticks = await _measure(db, env, fake, rounds, streams=False)
        streamed, pushed = await _measure(db, env, fake, rounds, streams=True)
    finally:
        await fake.stop()
    result.add(
        *_figures("venue fill → closed (order stream)", streamed, TRACKER, "tracker interval"),
        *_figures("venue fill → closed (REST polling)", polled, TRACKER, "tracker interval", False),
        *_figures("price move → exit sent (price stream)", pushed, MONITOR, "monitor interval"),
        *_figures(
            "price move → exit sent (REST polling)", ticks, MONITOR, "monitor interval", False
        ),
    )
    result.notes.append(
        "fill → closed, streamed: "
        + ", ".join(f"{s * 1000:.0f}" for s in sorted(streamed))
        + " ms; polled: "
        + ", ".join(f"{s:.2f}" for s in sorted(polled))
        + " s; price → exit, streamed: "
        + ", ".join(f"{s * 1000:.0f}" for s in sorted(pushed))
        + " ms; polled: "
        + ", ".join(f"{s:.2f}" for s in sorted(ticks))
        + " s. Streamed: a ccxt data connection on the venue, watch_tickers on its market "
        "stream; polled: the venue's public tickers, once a monitor tick."
    )
    return result
