"""The crash test of venue-held protection: positions with SL and TP on a perpetuals venue (the
fake Binance USDⓈ-M, in this process), every service process SIGKILLed, the price moved through
the stops on the venue. The venue closes every position by itself; on restart the service books
each close from the venue's fill before it reports ready, and cancels the targets left behind.
A watcher samples the venue's book throughout: once a position's stop rests there, it never has
a moment without one while the position is open."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import BOOTSTRAP_KEY, fresh_database
from tests.fakes.binance import FakeBinance
from tests.fakes.binanceusdm import FakeBinanceUsdm
from tests.reliability.procs import free_port
from tests.reliability.test_crash import Api, Service, service_env

# (symbol, direction, sl, tp, where the price goes after the kill: through the sl)
POSITIONS = [
    ("BTC/USDT", "BTCUSDT", "buy", "49000", "52000", "48900"),
    ("ETH/USDT", "ETHUSDT", "sell", "3100", "2800", "3150"),
]


class Watcher:
    """Samples the fake's book: per open position, whether a reduce-only stop rests for it."""

    def __init__(self, fake: FakeBinanceUsdm) -> None:
        self.fake = fake
        self.protected_once: set[str] = set()
        self.lapses: list[str] = []
        self.opened_at: dict[str, float] = {}
        self.first_protected_after: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.005)

    def sample(self) -> None:
        stops = {
            o.symbol for o in self.fake.algo_orders(open_only=True) if o.order_type == "STOP_MARKET"
        }
        now = time.monotonic()
        for inst_id, position in self.fake.book.positions.items():
            if position.qty == 0:
                self.protected_once.discard(inst_id)
                self.opened_at.pop(inst_id, None)
                continue
            self.opened_at.setdefault(inst_id, now)
            if inst_id in stops:
                if inst_id not in self.protected_once:
                    self.first_protected_after[inst_id] = now - self.opened_at[inst_id]
                self.protected_once.add(inst_id)
            elif inst_id in self.protected_once:
                self.lapses.append(f"{inst_id} open without a stop at the venue")


async def _setup(
    api: Api,
    fake: FakeBinanceUsdm | FakeBinance,
    exchange: str = "binanceusdm",
    market_type: str = "swap",
) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
    body = {"name": "protect", "role": "user", "user_id": 4343}
    key = await api.ok("POST", "/api/v1/api-keys", 201, headers=admin, json=body)
    user = {"Authorization": f"Bearer {key['key']}"}
    preset = {"name": "p", "position_size_mode": "fixed_notional", "position_size_value": "1000"}
    preset = await api.ok("POST", "/api/v1/presets", 201, headers=user, json=preset | {})
    body = {
        "name": exchange,
        "adapter": "ccxt",
        "exchange": exchange,
        "market_type": market_type,
        "api_base_url": fake.base_url,
        "credentials": {"api_key": fake.api_key, "api_secret": fake.api_secret},
        "preset_id": preset["id"],
    }
    conn = await api.ok("POST", "/api/v1/connections", 201, headers=user, json=body)
    await api.ok("POST", f"/api/v1/connections/{conn['id']}/activate", headers=user)
    user["conn"] = str(conn["id"])
    return user


async def _ready(http: httpx.AsyncClient, seconds: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = await http.get("/health/ready")
        if response.status_code == 200:
            return response.json()  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"not ready: {response.text}")


async def test_the_venue_closes_while_the_service_is_dead(tmp_path: Path) -> None:
    database_url = await fresh_database(tmp_path, "protection_crash")
    port = free_port()
    env = service_env(database_url, port) | {"EXEC_PENDING_GRACE_SECONDS": "10"}
    service = Service(env, port, tmp_path)
    fake = FakeBinanceUsdm(api_key="k" * 16, api_secret="s" * 32)
    watcher = Watcher(fake)
    passed = False
    async with fake, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as http:
        try:
            api = Api(http)
            await service.start()
            await _ready(http)
            user = await _setup(api, fake)
            conn_id = int(user.pop("conn"))
            watcher.start()
            ids = []
            for symbol, _, direction, sl, tp, _ in POSITIONS:
                body = {
                    "symbol": symbol,
                    "direction": direction,
                    "sl_price": sl,
                    "tp_price": tp,
                    "connection_ids": [conn_id],
                }
                result = await api.ok("POST", "/api/v1/signals", 201, headers=user, json=body)
                [execution] = result["executions"]
                assert execution["status"] == "filled", (execution, service.outputs()[-3000:])
                ids.append(execution["position_id"])
            deadline = time.monotonic() + 10
            while len(fake.algo_orders(open_only=True)) < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert len(fake.algo_orders(open_only=True)) == 4, fake.algo_orders()

            await service.kill()  # SIGKILL: no shutdown code runs
            for _, inst_id, _, _, _, through in POSITIONS:
                fake.set_price(inst_id, through)
            assert all(p.qty == 0 for p in fake.book.positions.values())  # the venue closed them

            await service.start()
            checks = await _ready(http)
            assert checks["checks"]["protection"] == {"ok": True, "unprotected": 0}, checks
            # Ready means the first tracker pass ran: every close is booked from the venue's fill.
            for position_id, (*_, through) in zip(ids, POSITIONS, strict=True):
                p = await api.ok("GET", f"/api/v1/positions/{position_id}", headers=user)
                assert p["status"] == "closed" and p["closed_reason"] == "sl", p
                assert p["close_price"] == through and D(p["fees"]) > 0, p
            # The targets the stops' fills left behind: cancelled by the pass the fill started.
            deadline = time.monotonic() + 5
            while fake.algo_orders(open_only=True) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert fake.algo_orders(open_only=True) == []
            statuses = sorted((o.order_type, o.algo_status) for o in fake.algo_orders())
            assert statuses == [
                ("STOP_MARKET", "FINISHED"),
                ("STOP_MARKET", "FINISHED"),
                ("TAKE_PROFIT_MARKET", "CANCELED"),
                ("TAKE_PROFIT_MARKET", "CANCELED"),
            ]
            await watcher.stop()
            watcher.sample()
            assert watcher.lapses == []
            assert set(watcher.first_protected_after) == {"BTCUSDT", "ETHUSDT"}
            print(
                "venue protection: stop resting "
                + ", ".join(
                    f"{k} {v * 1000:.0f} ms" for k, v in watcher.first_protected_after.items()
                )
                + " after the entry's fill"
            )
            assert max(watcher.first_protected_after.values()) < 2
            passed = True
        finally:
            await service.kill()
            if not passed:
                print(service.outputs()[-6000:])


async def test_the_spot_oco_closes_while_the_service_is_dead(tmp_path: Path) -> None:
    """Binance spot: the SL and TP rest as one OCO list. Killed, the price falls through the
    stop; the venue sells and expires the target; the restart books the close before ready."""
    database_url = await fresh_database(tmp_path, "protection_crash_spot")
    port = free_port()
    env = service_env(database_url, port) | {"EXEC_PENDING_GRACE_SECONDS": "10"}
    service = Service(env, port, tmp_path)
    fake = FakeBinance(api_key="k" * 16, api_secret="s" * 32)
    passed = False
    async with fake, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as http:
        try:
            api = Api(http)
            await service.start()
            await _ready(http)
            user = await _setup(api, fake, "binance", "spot")
            conn_id = int(user.pop("conn"))
            body = {
                "symbol": "BTC/USDT",
                "direction": "buy",
                "sl_price": "49000",
                "tp_price": "52000",
                "connection_ids": [conn_id],
            }
            result = await api.ok("POST", "/api/v1/signals", 201, headers=user, json=body)
            [execution] = result["executions"]
            assert execution["status"] == "filled", execution
            deadline = time.monotonic() + 10
            while not fake.order_lists(open_only=True) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            [oco] = fake.order_lists(open_only=True)
            held = fake.balance("BTC")[1]
            assert held > 0  # the coins bought are reserved by the list

            await service.kill()  # SIGKILL: no shutdown code runs
            fake.set_price("BTC/USDT", "48900")
            [oco] = fake.order_lists()
            assert {leg.type: leg.status for leg in oco.legs} == {
                "STOP_LOSS": "FILLED",
                "LIMIT_MAKER": "EXPIRED",
            }

            await service.start()
            checks = await _ready(http)
            assert checks["checks"]["protection"] == {"ok": True, "unprotected": 0}, checks
            path = f"/api/v1/positions/{execution['position_id']}"
            position = await api.ok("GET", path, headers=user)
            assert position["status"] == "closed" and position["closed_reason"] == "sl", position
            assert position["close_price"] == "48900" and D(position["fees"]) > 0, position
            logs = await api.ok("GET", "/api/v1/logs", headers=user, params={"purpose": "protect"})
            statuses = sorted((log["order_type"], log["status"]) for log in logs["items"])
            assert statuses == [("stop", "filled"), ("target", "cancelled")], statuses
            assert fake.order_lists(open_only=True) == [] and fake.balance("BTC")[1] == 0
            passed = True
        finally:
            await service.kill()
            if not passed:
                print(service.outputs()[-6000:])
