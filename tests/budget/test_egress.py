"""Egress groups (issue #19): an operator's proxies, each its own source IP at the venue and its
own request budget. The fake Binance counts weight per client address; each `LoopbackProxy`
goes out from its own 127.0.0.N."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from execution_service.context import AppContext
from execution_service.exchanges.budget import Budgets, BudgetSpec, MemoryStore, VenueLimits, Window
from execution_service.exchanges.cache import SharedMarkets
from execution_service.exchanges.ccxt.adapter import CcxtAdapter
from execution_service.outbound.egress import Egress
from execution_service.outbound.policy import OutboundPolicy
from tests.factories import Actor
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_limits import BinanceLimits, weight_of
from tests.fakes.proxy import LoopbackProxy
from tests.signals.test_ccxt_flow import ccxt_connection, signal

LOOPBACK = OutboundPolicy(allow_private=True)
WINDOW = 60.0  # not money


async def test_each_egress_group_is_its_own_ip_and_its_own_budget() -> None:
    """Four balance reads (weight 20 each) and one markets load (20): 100 weight, more than one
    IP's 80 in a window. Over two egress groups each IP gets at most its budget's read share
    (80 % of 75), and the venue answers no 429."""
    limits = BinanceLimits(weight_limit=80, window_seconds=WINDOW)
    async with (
        FakeBinance(limits=limits) as fake,
        LoopbackProxy("127.0.0.2") as proxy_a,
        LoopbackProxy("127.0.0.3", "ops", "proxy-password-1") as proxy_b,
    ):
        fake.set_balances({"USDT": "1000"})
        groups = {"a": Egress("a", proxy_a.url), "b": Egress("b", proxy_b.url)}
        budgets, shared = Budgets(MemoryStore()), SharedMarkets()
        venue = VenueLimits(Window(75, WINDOW), weight_header="x-mbx-used-weight-1m")
        adapters = []
        for i in range(4):
            fake.more_keys[f"key-{i}"] = f"secret-{i}"
            name = "ab"[i % 2]
            adapters.append(
                CcxtAdapter(
                    "binance",
                    {"api_key": f"key-{i}", "api_secret": f"secret-{i}"},
                    api_base_url=fake.base_url,
                    timeout_ms=30_000,
                    outbound=LOOPBACK,
                    shared_markets=shared,
                    budget=BudgetSpec(budgets, name, limits=venue),
                    egress=groups[name],
                )
            )
        try:
            await asyncio.gather(*(a.load_markets() for a in adapters))  # one load, shared
            balances = await asyncio.gather(*(a.fetch_balance() for a in adapters))
        finally:
            await asyncio.gather(*(a.close() for a in adapters))
    assert all(b["USDT"].free == 1000 for b in balances)
    assert limits.refusals == 0, limits.refused
    weight = Counter[str]()
    for r in fake.requests:
        weight[r.client] += weight_of(r.method, r.path, r.params)
    assert set(weight) == {"127.0.0.2", "127.0.0.3"}  # nothing went out directly
    assert sum(weight.values()) == 100 and max(weight.values()) <= 60
    assert proxy_a.requests and proxy_b.requests and proxy_b.refused == 0  # b's login was sent
    assert sorted(b.egress for b in budgets.all()) == ["a", "b"]


@pytest.fixture
async def egress_proxy(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LoopbackProxy]:
    async with LoopbackProxy("127.0.0.4", "ops", "proxy-password-2") as proxy:
        monkeypatch.setattr(ctx.settings, "egress_proxies", {"eu-2": SecretStr(proxy.url)})
        yield proxy


async def test_a_connection_goes_out_by_the_egress_group_it_names(
    user: Actor, fake_binance: FakeBinance, egress_proxy: LoopbackProxy
) -> None:
    conn = await ccxt_connection(user, fake_binance, activate=False)
    moved = await user.ok("PATCH", f"/api/v1/connections/{conn['id']}", json={"egress": "eu-2"})
    assert moved["egress"] == "eu-2" and "proxy-password-2" not in str(moved)
    await user.ok("POST", f"/api/v1/connections/{conn['id']}/activate")
    assert (await signal(user, conn))["status"] == "filled"
    assert {r.client for r in fake_binance.requests} == {"127.0.0.4"}
    assert any("/api/v3/order" in r for r in egress_proxy.requests)
    metrics = (await user.request("GET", "/metrics")).text
    assert 'egress="eu-2"' in metrics and "proxy-password-2" not in metrics

    # Back to direct: the next request leaves from this machine's own address.
    await user.ok("PATCH", f"/api/v1/connections/{conn['id']}", json={"egress": None})
    before = len(fake_binance.requests)
    await user.ok("GET", f"/api/v1/connections/{conn['id']}/balance")
    assert {r.client for r in fake_binance.requests[before:]} == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"adapter": "ccxt", "exchange": "binance", "egress": "nowhere"}, "no egress group"),
        ({"adapter": "paper", "egress": "eu-2"}, "directly"),
        ({"adapter": "ccxt", "exchange": "binance", "egress": "EU 2"}, "egress"),
    ],
)
async def test_an_egress_the_operator_did_not_define_is_refused(
    user: Actor, egress_proxy: LoopbackProxy, body: dict[str, str], why: str
) -> None:
    if body["adapter"] == "ccxt":
        body = {**body, "credentials": {"api_key": "k" * 16, "api_secret": "s" * 16}}
    before = await user.ok("GET", "/api/v1/connections")
    answer = await user.request("POST", "/api/v1/connections", json={"name": "x", **body})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert why in answer.text
    assert (await user.ok("GET", "/api/v1/connections"))["total"] == before["total"]
