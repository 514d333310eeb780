"""7. Request budget (issue #19): one signal's orders to N ccxt accounts on one venue and one IP,
against the fake Binance enforcing its per-IP weight (scaled down: a 2 s window, so the budget,
not the machine, is what the fan-out waits on). Figures: the fan-out's wall time against the
minimum the budget allows for the weight it spent, computed in the same run from the windows it
needed; and the 429/418 answers (must be 0).

Adapter level (no database): the budget is the same object the service's registry builds."""

from __future__ import annotations

import asyncio
import math
import time
from decimal import Decimal

from tests.fakes.binance import FakeBinance
from tests.fakes.binance_limits import BinanceLimits, weight_of

from benchmarks.harness import Database, Env, pct
from benchmarks.report import Figure, Result
from execution_service.exchanges.bounded import BoundedAdapter
from execution_service.exchanges.budget import Budgets, BudgetSpec, MemoryStore, VenueLimits, Window
from execution_service.exchanges.cache import SharedMarkets
from execution_service.exchanges.ccxt.adapter import CcxtAdapter
from execution_service.outbound.policy import OutboundPolicy

WINDOW = 2.0  # seconds (not money)


async def run(db: Database, env: Env) -> Result:
    result = Result("budget", db.label)
    accounts = env.size(1000, 100)
    fake_limit = env.size(60, 30)  # weight per window: the fan-out needs many windows
    budget_limit = int(fake_limit * 0.9)
    limits = BinanceLimits(weight_limit=fake_limit, window_seconds=WINDOW, orders_per_10s=10_000)
    spec = BudgetSpec(
        Budgets(MemoryStore()),
        limits=VenueLimits(Window(budget_limit, WINDOW), weight_header="x-mbx-used-weight-1m"),
    )
    async with FakeBinance(limits=limits) as fake:
        fake.set_balances({"USDT": "1000000000"})
        shared = SharedMarkets()
        adapters = []
        for i in range(accounts):
            fake.more_keys[f"k{i}"] = f"s{i}"
            inner = CcxtAdapter(
                "binance",
                {"api_key": f"k{i}", "api_secret": f"s{i}"},
                api_base_url=fake.base_url,
                timeout_ms=120_000,
                outbound=OutboundPolicy(allow_private=True),
                shared_markets=shared,
                budget=spec,
            )
            adapters.append(BoundedAdapter(inner, asyncio.Semaphore(4), 600))
        try:
            started_at, started = time.time(), time.monotonic()
            await asyncio.gather(
                *(
                    a.create_order("BTC/USDT", "buy", "market", Decimal("0.001"), None, f"b{i}")
                    for i, a in enumerate(adapters)
                )
            )
            wall = time.monotonic() - started
        finally:
            await asyncio.gather(*(a.close() for a in adapters))
        weight = sum(weight_of(r.method, r.path, r.params) for r in fake.requests)
    # The windows the weight needs: the first (partly gone: windows start on multiples of
    # WINDOW) and as many whole ones after it as the rest of the weight fills.
    needed = math.ceil(weight / budget_limit) - 1
    first_end = (math.floor(started_at / WINDOW) + 1) * WINDOW - started_at
    floor = first_end + (needed - 1) * WINDOW if needed > 0 else 0.0
    result.figures += [
        Figure(
            f"fan-out to {accounts} accounts, {weight} weight",
            wall,
            "s",
            baseline=floor,
            baseline_name="the budget's minimum",
            target="<= 1.2 x the minimum",
            ok=wall <= 1.2 * floor if floor else None,
        ),
        Figure(
            "429/418 answers", float(limits.refusals), "count", target="0", ok=not limits.refusals
        ),
    ]
    result.notes.append(
        f"fake: {fake_limit} weight per {WINDOW:g} s window per IP; budget: {budget_limit}"
    )
    result.figures.append(await idle_order(env))
    return result


async def idle_order(env: Env) -> Figure:
    """One account's orders one after another with room in the budget, against the same orders
    with no budget at all (samples alternate): an idle budget must add no wait."""
    samples = env.size(300, 60)
    async with FakeBinance() as fake:
        fake.set_balances({"USDT": "1000000000"})
        shared = SharedMarkets()
        spec = BudgetSpec(Budgets(MemoryStore()))  # Binance's published limits

        def adapter(budget: BudgetSpec | None) -> CcxtAdapter:
            return CcxtAdapter(
                "binance",
                {"api_key": fake.api_key, "api_secret": fake.api_secret},
                api_base_url=fake.base_url,
                outbound=OutboundPolicy(allow_private=True),
                shared_markets=shared,
                budget=budget,
                enable_rate_limit=False,
            )

        on, off = adapter(spec), adapter(None)
        times: dict[bool, list[float]] = {True: [], False: []}
        try:
            await on.load_markets()
            await off.load_markets()
            for i in range(samples * 2):
                budgeted = i % 2 == 0
                client = on if budgeted else off
                started = time.perf_counter()
                await client.create_order(
                    "BTC/USDT", "buy", "market", Decimal("0.001"), None, f"i{i}"
                )
                times[budgeted].append(time.perf_counter() - started)
        finally:
            await on.close()
            await off.close()
    with_budget, without = pct(times[True], 50), pct(times[False], 50)
    return Figure(
        "one order, idle budget (p50)",
        with_budget * 1000,
        "ms",
        baseline=without * 1000,
        baseline_name="no budget",
        target="within noise (<= 1.1x)",
        ok=with_budget <= 1.1 * without,
    )
