"""9. Head-of-line blocking (issue #20): 1,000 Binance accounts (an API key each) on the fake
Binance, none with a data connection (the monitor prices their positions from the venue's
public tickers), each holding open positions with stops; one of them answers everything after
2 s (the fake's per-key latency). Beside them a paper account fed by pushed prices. The service
runs with its workers at their defaults (monitor every 1 s, REST polling, health checks) and its
request budget on (Binance's published limits, which the fake enforces too).

Measured twice in one run, first with the one ccxt account that takes the signals and nothing
else (the baselines), then with the 1,000:

- paper stop reaction: open a paper position, push a price across its SL, until it reads
  `closed`. With the 1,000, each push comes a random part of a second after a price move on the
  venue that crosses ccxt stops, the slow account's among them.
- ccxt stops: the price moves on the fake through the SL of one position of each of 10 accounts
  and of the slow one; until each reads `closed` (REST polling: no streams). Baseline: the
  monitor interval (a poller reacts half an interval after a move on average, a whole one at
  worst).
- a signal to one ccxt account (market order, preset sizing), alternating with its floor as in
  bench 1: bare ccxt create_order to the same fake + two bare commits + GET /health.
- public ticker requests per monitor tick, over a quiet window: one per venue, not per account.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import bindparam, text
from tests.fakes.binance_limits import weight_of

from benchmarks.bench_order import bare_ccxt
from benchmarks.harness import (
    Api,
    BareDb,
    Database,
    Env,
    PositionSpec,
    Profiler,
    admin_api,
    insert_connections,
    insert_kept_balances,
    insert_open_positions,
    log,
    new_user_id,
    pct,
    start_fake,
    start_service,
)
from benchmarks.report import Figure, Result

INTERVAL = 1.0  # the service's default EXEC_MONITOR_INTERVAL_SECONDS
SLOW_MS = 2000
BASE = Decimal(50000)  # BTC/USDT on the fake; each round moves it one STEP down
STEP = Decimal(100)


def level_sl(r: int) -> Decimal:
    """The ladder's level r: the SL of one position of each probe account and the slow one."""
    return BASE - STEP * (r + 1)


def below(r: int) -> str:
    """A price through level r's stops and none further down."""
    return str(level_sl(r) - STEP / 2)


BALANCES = {
    "USDT": "1000000000",
    "BTC": "1000000",
    "ETH": "1000000",
    "LTC": "1000000",
    "BNB": "1000000",
}
# Every account's positions, far from their stops: marked every tick, never closed.
HELD = [("BTC/USDT", "50000", "20000", "0.001"), ("ETH/USDT", "3000", "1000", "0.01")]
TIMEOUT = 30.0
# REST polling: no venue streams, prices nor orders (the monitor reads public tickers each tick,
# the order tracker polls), as bench 8's polled paths.
POLLING = {"EXEC_ORDER_STREAMS": "false", "EXEC_MARKET_DATA_STREAMS": "false"}
STATES = text(
    "SELECT p.status, l.status, l.error_code, count(*) FROM execution_positions p "
    "LEFT JOIN execution_logs l ON l.position_id = p.id AND l.purpose = 'exit' "
    "WHERE p.id IN :ids GROUP BY 1, 2, 3"
).bindparams(bindparam("ids", expanding=True))
CLOSED = text(
    "SELECT id FROM execution_positions WHERE status = 'closed' AND id IN :ids"
).bindparams(bindparam("ids", expanding=True))


class Scene:
    """The service, the fake, the users and what the rounds need."""

    def __init__(self, db: Database, env: Env, fake: Any, service: Any) -> None:
        self.db, self.env, self.fake, self.service = db, env, fake, service
        self.engine = db.engine()
        self.http = httpx.AsyncClient(base_url=fake.url, timeout=60)
        self.apis: list[Api] = []
        self.round = 0
        self.refused: Counter[str] = Counter()  # signals not filled, by status and error code
        self.paper = self.trader = Api("", "")  # set by `start`
        self.preset_id = self.dc_id = self.paper_conn = 0

    @classmethod
    async def start(cls, db: Database, env: Env, fake: Any, service: Any) -> Scene:
        """Two users: one with a paper account on pushed prices, one whose ccxt accounts get
        the preset of bench 1 (100 USDT a trade; their stops are the monitor's)."""
        s = cls(db, env, fake, service)
        admin = admin_api(service)
        s.apis.append(admin)
        s.paper = await admin.new_user(new_user_id())
        s.trader = await admin.new_user(new_user_id())
        s.apis += [s.paper, s.trader]
        await s.fake_post("balances", BALANCES)
        s.preset_id = int((await s.trader.preset())["id"])
        s.dc_id, s.paper_conn = await _paper_account(s.paper)
        return s

    async def fake_post(self, action: str, body: dict[str, Any]) -> Any:
        r = await self.http.post(f"/_fake/{action}", json=body)
        r.raise_for_status()
        return r.json()

    async def closed(self, ids: list[int]) -> set[int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(CLOSED, {"ids": ids})
            return {int(r[0]) for r in rows}

    async def states(self, ids: list[int]) -> list[Any]:
        """What became of positions that did not close: status, and their exits' statuses."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(STATES, {"ids": ids})
            return [tuple(r) for r in rows]

    async def until_closed(self, ids: list[int], t0: float, limit: float) -> dict[int, float]:
        """Each position's close, in seconds after t0, as seen by polling every 10 ms."""
        seen: dict[int, float] = {}
        while len(seen) < len(ids):
            if time.perf_counter() - t0 > limit:
                late = [i for i in ids if i not in seen]
                raise TimeoutError(f"not closed in {limit:.0f} s: {await self.states(late)}")
            now = time.perf_counter()
            for pid in await self.closed([i for i in ids if i not in seen]):
                seen[pid] = now - t0
            await asyncio.sleep(0.01)
        return seen

    async def aclose(self) -> None:
        for api in self.apis:
            await api.aclose()
        await self.http.aclose()
        await self.engine.dispose()


async def _paper_account(paper: Api) -> tuple[int, int]:
    preset = await paper.preset(default_sl_percent=None, default_tp_percent=None)
    dc = await paper.data_connection()
    conn = await paper.connection(
        {
            "name": "paper",
            "adapter": "paper",
            "preset_id": preset["id"],
            "data_connection_id": dc["id"],
        }
    )
    return int(dc["id"]), int(conn["id"])


async def _open_paper(s: Scene) -> tuple[str, int]:
    s.round += 1
    symbol = f"P{s.round}/USDT"
    await s.paper.push_prices(s.dc_id, {symbol: "100"})
    body = await s.paper.signal(
        symbol=symbol, direction="buy", sl_price="95", tp_price="200", connection_ids=[s.paper_conn]
    )
    pid = body["executions"][0]["position_id"]
    if pid is None:
        raise RuntimeError(f"no paper position opened: {body['executions']}")
    return symbol, int(pid)


async def _paper_rounds(s: Scene, rounds: int) -> list[float]:
    """Paper stops alone (the baseline): as bench 5's single rounds."""
    out = []
    for _ in range(rounds):
        symbol, pid = await _open_paper(s)
        await asyncio.sleep(random.uniform(0, INTERVAL))
        t0 = time.perf_counter()
        await s.paper.push_prices(s.dc_id, {symbol: "94"})
        out.append((await s.until_closed([pid], t0, s.env.limit(TIMEOUT)))[pid])
    return out


async def _mixed_rounds(
    s: Scene, levels: list[list[int]], slow: list[int]
) -> tuple[list[float], list[float], list[float]]:
    """Round r moves BTC/USDT on the venue through the SL at level r (10 accounts' positions
    and the slow account's), then, a random part of a second later, pushes a paper price through
    a paper stop. Returns the paper reactions, the ccxt closes and the slow account's closes
    seen (it may still be closing when the next round starts)."""
    papers, ccxt, slow_seen = [], [], []
    pending: dict[int, float] = {}  # the slow account's positions still closing: id -> t0
    limit = s.env.limit(TIMEOUT)
    for r, ids in enumerate(levels, start=1):
        symbol, pid = await _open_paper(s)
        await asyncio.sleep(random.uniform(0, INTERVAL))
        t_move = time.perf_counter()
        await s.fake_post("price", {"symbol": "BTC/USDT", "price": below(r)})
        pending[slow[r]] = t_move
        await asyncio.sleep(random.uniform(0, INTERVAL))
        t_push = time.perf_counter()
        await s.paper.push_prices(s.dc_id, {symbol: "94"})
        paper_close, venue_closes = await asyncio.gather(
            s.until_closed([pid], t_push, limit), s.until_closed(ids, t_move, limit)
        )
        papers.append(paper_close[pid])
        ccxt += list(venue_closes.values())
        for done in await s.closed(list(pending)):
            slow_seen.append(time.perf_counter() - pending.pop(done))
    return papers, ccxt, slow_seen


async def _signals(
    s: Scene, conn_id: int, ex: Any, bare: BareDb, n: int, tag: str, warmup: int = 10
) -> tuple[list[float], list[float]]:
    """Signals to one ccxt account, each followed by its floor (as bench 1). A signal the
    service refuses (its order not sent: the request budget had no room) is counted in
    `s.refused`, not timed."""
    full, floor = [], []
    perf = time.perf_counter
    for i in range(warmup + n):
        side = "buy" if i % 2 == 0 else "sell"
        t0 = perf()
        r = await s.trader.http.post(
            "/api/v1/signals",
            json={"symbol": "BNB/USDT", "direction": side, "connection_ids": [conn_id]},
        )
        t1 = perf()
        if r.status_code != 201:
            raise RuntimeError(f"signal {i}: {r.status_code} {r.text[:300]}")
        [execution] = r.json()["executions"]
        if execution["status"] != "filled":
            s.refused[f"{execution['status']} {execution['error_code']}"] += 1
            continue
        t2 = perf()
        await ex.create_order(
            "BNB/USDT", "market", side, 0.02, None, {"clientOrderId": f"{tag}-{i}"}
        )
        await bare.commit_one(
            "INSERT INTO bench_floor (id, v) VALUES (?, ?)", s.round * 1000 + i, "p"
        )
        await bare.commit_one("UPDATE bench_floor SET v = ? WHERE id = ?", "f", s.round * 1000 + i)
        h = await s.trader.http.get("/health")
        t3 = perf()
        assert h.status_code == 200
        if i >= warmup:
            full.append((t1 - t0) * 1000)
            floor.append((t3 - t2) * 1000)
    s.round += 1
    return full, floor


async def _ticks_and_tickers(s: Scene, seconds: float) -> tuple[int, int]:
    """Over a quiet window (no signals, no pushed prices: every tick is a whole one): monitor
    ticks, and ticker requests on the venue (the accounts' positions are all it prices)."""

    async def ticks() -> int:
        body = (await s.http.get(f"{s.service.url}/metrics")).text
        found = re.search(r"^execution_monitor_tick_seconds_count (\S+)$", body, re.M)
        return int(float(found.group(1))) if found else 0

    since = len((await s.http.get("/_fake/requests")).json())
    t0 = await ticks()
    await asyncio.sleep(seconds)
    t1 = await ticks()
    sent = await s.fake_post("requests", {"since": since})
    return t1 - t0, sum(1 for r in sent if r["method"] == "GET" and "/ticker" in r["path"])


async def _venue_load(s: Scene, since: int) -> str:
    """The venue's requests from the `since`-th on: count by endpoint, weight (as the fake
    counts it) by minute."""
    sent = await s.fake_post("requests", {"since": since})
    paths = Counter(f"{r['method']} {r['path']}" for r in sent)
    minutes: Counter[int] = Counter()
    for r in sent:
        minutes[int(r["at"] // 60)] += weight_of(r["method"], r["path"], r["params"])
    return (
        ", ".join(f"{k} x{v}" for k, v in paths.most_common())
        + "; weight per minute: "
        + ", ".join(str(w) for _, w in sorted(minutes.items()))
    )


async def _accounts(s: Scene, preset_id: int, first: int, count: int) -> list[int]:
    keys = [(f"bench-key-{i:05d}", f"bench-secret-{i:05d}") for i in range(first, first + count)]
    await s.fake_post("keys", dict(keys))
    ids = await insert_connections(
        s.engine,
        count=count,
        user_id=s.trader.user_id or 0,
        adapter="ccxt",
        preset_id=preset_id,
        api_base_url=s.fake.url,
        ring=s.env.ring,
        keys=keys,
    )
    await insert_kept_balances(s.engine, ids, BALANCES)
    return ids


async def _positions(
    s: Scene, ids: list[int], probes: list[int], slow_id: int, levels: int
) -> tuple[list[list[int]], list[int]]:
    """Every account's far positions; the probes' and the slow account's ladder of BTC stops
    (`level_sl`). Returns the ladder's ids per level, and the slow one's."""
    specs = [
        PositionSpec(c, sym, Decimal(entry), Decimal(sl), None, Decimal(qty))
        for c in ids
        for sym, entry, sl, qty in HELD
    ]
    ladder = [
        PositionSpec(c, "BTC/USDT", BASE, level_sl(r), None, Decimal("0.001"))
        for r in range(levels)
        for c in [*probes, slow_id]
    ]
    user_id = s.trader.user_id or 0
    pids = (await insert_open_positions(s.engine, user_id, ladder + specs, "hol"))[: len(ladder)]
    # Settled, as in a deployment that grew to this (autovacuum analyzes what changed): the
    # planner's statistics count the new rows (right after a bulk insert they say "a few").
    async with s.engine.begin() as conn:
        for table in ("execution_connections", "execution_positions"):
            await conn.execute(text(f"ANALYZE {table}"))
    width = len(probes) + 1
    rows = [pids[r * width : (r + 1) * width] for r in range(levels)]
    return [row[:-1] for row in rows], [row[-1] for row in rows]


@dataclass
class Measured:
    """One run's samples (seconds, signals in ms), and the counts around them."""

    paper_alone: list[float] = field(default_factory=list)
    sig_alone: list[float] = field(default_factory=list)
    floor_alone: list[float] = field(default_factory=list)
    papers: list[float] = field(default_factory=list)
    ccxt: list[float] = field(default_factory=list)
    slow: list[float] = field(default_factory=list)
    sig: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    ticks: int = 0
    tickers: int = 0


async def _baselines(s: Scene, m: Measured, target: int, ex: Any, bare: BareDb) -> None:
    """Paper stops and signals with one ccxt account: the one the signals go to."""
    rounds, n = s.env.size(15, 4), s.env.size(60, 10)
    log(f"headofline: baselines ({rounds} paper stops, {n} signals alone)")
    m.paper_alone = await _paper_rounds(s, rounds)
    m.sig_alone, m.floor_alone = await _signals(s, target, ex, bare, n, "a")


async def _with_accounts(s: Scene, m: Measured, target: int, ex: Any, bare: BareDb) -> None:
    n_accounts, n_probes = s.env.size(1000, 50), s.env.size(10, 3)
    rounds, n = s.env.size(15, 4), s.env.size(60, 10)
    log(f"headofline: {n_accounts} ccxt accounts, one answering after {SLOW_MS} ms")
    others = await _accounts(s, s.preset_id, 1, n_accounts - 1)
    ids = [target, *others]
    slow_key = {"api_key": f"bench-key-{n_accounts - 1:05d}", "ms": SLOW_MS}
    await s.fake_post("key_latency", slow_key)
    probes = [ids[1 + k * (n_accounts - 2) // n_probes] for k in range(n_probes)]
    levels, slow = await _positions(s, ids, probes, ids[-1], rounds + 1)
    m.ticks, m.tickers = await _ticks_and_tickers(s, s.env.size(10, 4))
    log(f"headofline: {m.ticks} monitor ticks, {m.tickers} ticker requests")
    with Profiler(s.env, s.service.pid, f"headofline-{s.db.kind}"):
        # Level 0 warms the probes' clients up (built once, as the health checks would have).
        await s.fake_post("price", {"symbol": "BTC/USDT", "price": below(0)})
        await s.until_closed(levels[0], time.perf_counter(), s.env.limit(60.0))
        log(f"headofline: {rounds} rounds of a venue move and a paper push")
        m.papers, m.ccxt, m.slow = await _mixed_rounds(s, levels[1:], slow)
        m.sig, m.floor = await _signals(s, target, ex, bare, n, "b")


async def run(db: Database, env: Env) -> Result:
    result = Result("headofline", db.label)
    fake = start_fake(env.workdir, binance_limits=True)
    service = s = ex = bare = None
    since = 0
    try:
        service = start_service(
            db, env.ring, env.workdir, workers=True, name="headofline", env=POLLING
        )
        s = await Scene.start(db, env, fake, service)
        [target] = await _accounts(s, s.preset_id, 0, 1)
        ex = await bare_ccxt(fake.url)
        bare = await BareDb.open(db)
        await bare.commit_one("CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, v TEXT)")
        m = Measured()
        await _baselines(s, m, target, ex, bare)
        since = len((await s.http.get("/_fake/requests")).json())
        await _with_accounts(s, m, target, ex, bare)
        state = (await s.http.get("/_fake/state")).json()
        _report(result, m, sum(state["refused"].values()), s.refused, env)
        result.notes.append(f"venue requests with the accounts: {await _venue_load(s, since)}")
        return result
    except Exception:
        if s is not None and since:
            log(f"headofline: venue requests with the accounts: {await _venue_load(s, since)}")
        raise
    finally:
        if ex is not None:
            await ex.close()
        if bare is not None:
            await bare.close()
        if s is not None:
            await s.aclose()
        if service is not None:
            service.stop()
        fake.stop()


def _spread(values: list[float]) -> str:
    """p10, p50, p90, max."""
    return ", ".join(f"{pct(values, p):.2f}" for p in (10, 50, 90, 100))


def _report(
    result: Result, m: Measured, answered_429: int, refused: Counter[str], env: Env
) -> None:
    n_accounts = env.size(1000, 50)
    p50, worst = pct(m.papers, 50), max(m.papers)
    c50, cmax = pct(m.ccxt, 50), max(m.ccxt)
    s50, f50 = pct(m.sig, 50), pct(m.floor, 50)
    alone = pct(m.paper_alone, 50), max(m.paper_alone)
    half, whole = (INTERVAL / 2, "½ monitor interval"), (INTERVAL, "monitor interval")
    not_sent = sum(refused.values())
    result.add(
        Figure("paper stop: p50", p50, "s", alone[0], "alone", "≤ 0.5 s", p50 <= 0.5),
        Figure("paper stop: max", worst, "s", alone[1], "alone", "≤ 1.2 s", worst <= 1.2),
        Figure("ccxt stop closed: p50", c50, "s", *half, "≤ 1 s", c50 <= 1.0),
        Figure("ccxt stop closed: max", cmax, "s", *whole, "≤ 2 s", cmax <= 2.0),
        Figure(
            "signal to one account: p50", s50, "ms", f50, "floor p50", "≤ 1.5x floor",
            s50 <= 1.5 * f50,
        ),
        Figure(
            "signal, no other accounts: p50", pct(m.sig_alone, 50), "ms",
            pct(m.floor_alone, 50), "floor p50",
        ),
        Figure("signals refused (not sent)", not_sent, "count", target="0", ok=not_sent == 0),
        Figure(
            "ticker requests per monitor tick", m.tickers / max(m.ticks, 1), "per tick",
            target="≤ 1 (one venue)",
            # A tick's request may land in the window while the tick ends after it.
            ok=0 < m.tickers <= m.ticks + 1,
        ),
        Figure("429/418 answers from the venue", answered_429, "count", target="0",
               ok=answered_429 == 0),
    )  # fmt: skip
    result.notes += [
        f"{n_accounts:,} Binance accounts (an API key each, one answering after {SLOW_MS} ms) "
        f"with no data connection, {len(HELD)} far positions each; {env.size(10, 3)} of them "
        "and the slow one hold a ladder of BTC/USDT stops, one level crossed a round, "
        f"{len(m.papers)} rounds; the fake enforces Binance's limits; the request budget on; "
        "REST polling (no venue streams)",
        f"quiet window: {m.ticks} monitor ticks, {m.tickers} ticker requests to the venue "
        f"(one per account would be {n_accounts:,} a tick)",
        f"paper stops alone: {_list(m.paper_alone)} s; with the accounts: {_list(m.papers)} s",
        f"ccxt stops closed (p10, p50, p90, max): {_spread(m.ccxt)} s over {len(m.ccxt)}; "
        f"the slow account's, seen by the end of a round: {_spread(m.slow)} s",
        f"signals: p50 {s50:.2f} ms with the accounts (floor {f50:.2f} ms), "
        f"{pct(m.sig_alone, 50):.2f} ms alone (floor {pct(m.floor_alone, 50):.2f} ms); "
        f"refused: {dict(refused) or 'none'}",
    ]


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in sorted(values))
