"""`GET /metrics`: every series is there and moves by exactly what happened.

The registry is process-wide and the suite shares it, so every assertion is on a delta between
two scrapes of the live endpoint, never on an absolute count."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from execution_service.context import AppContext
from execution_service.models import ExecutionConnection
from execution_service.workers.health import health_tick
from execution_service.workers.monitor import monitor_tick
from tests.factories import Actor, paper_setup

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SERIES = (
    "execution_orders",
    "execution_order_latency_seconds",
    "execution_exchange_errors",
    "execution_open_positions",
    "execution_monitor_tick_seconds",
    "execution_connections",
    "execution_connection_checks",
    "execution_http_requests",
    "execution_http_request_duration_seconds",
)


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")  # no API key: operators scrape it bare
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_every_series_is_exported(client: httpx.AsyncClient, ctx: AppContext) -> None:
    await monitor_tick(ctx)
    await health_tick(ctx)
    text = (await client.get("/metrics")).text
    for name in SERIES:
        assert f"# HELP {name}" in text, name


async def test_a_paper_fill_counts_one_filled_order_and_one_latency(
    client: httpx.AsyncClient, user: Actor
) -> None:
    acct = await paper_setup(user, position_size_mode="fixed_quantity", position_size_value="1")
    before = await scrape(client)
    result = await acct.signal(sl_price="90", tp_price="120")
    assert result["executions"][0]["status"] == "filled"
    after = await scrape(client)
    assert delta(before, after, "execution_orders_total", status="filled", adapter="paper") == 1
    assert delta(before, after, "execution_orders_total", status="rejected", adapter="paper") == 0
    count = "execution_order_latency_seconds_count"
    assert delta(before, after, count, purpose="entry") == 1
    assert delta(before, after, "execution_order_latency_seconds_sum", purpose="entry") >= 0


async def test_a_refusal_counts_a_rejected_order_and_the_exchange_error(
    client: httpx.AsyncClient, user: Actor
) -> None:
    acct = await paper_setup(
        user, price=None, position_size_mode="fixed_quantity", position_size_value="1"
    )
    before = await scrape(client)
    result = await acct.signal()  # no price anywhere: the paper adapter raises NoPrice
    assert result["executions"][0]["error_code"] == "no_price"
    after = await scrape(client)
    assert delta(before, after, "execution_orders_total", status="rejected", adapter="paper") == 1
    errors = "execution_exchange_errors_total"
    assert delta(before, after, errors, kind="no_price", operation="fetch_ticker") == 1


async def test_a_monitor_tick_observes_its_duration_and_sets_open_positions(
    client: httpx.AsyncClient, user: Actor, ctx: AppContext
) -> None:
    acct = await paper_setup(user, position_size_mode="fixed_quantity", position_size_value="1")
    await acct.signal(sl_price="90", tp_price="120")
    before = await scrape(client)
    report = await monitor_tick(ctx)
    after = await scrape(client)
    assert delta(before, after, "execution_monitor_tick_seconds_count") == 1
    assert report.positions >= 1
    assert value(after, "execution_open_positions") == report.positions


async def connections_by_status(ctx: AppContext) -> dict[str, int]:
    async with ctx.session_factory() as session:
        rows = await session.execute(
            select(ExecutionConnection.status, func.count()).group_by(ExecutionConnection.status)
        )
        return {status: count for status, count in rows.all()}


async def test_a_health_tick_sets_connections_by_status(
    client: httpx.AsyncClient, user: Actor, ctx: AppContext
) -> None:
    await paper_setup(user)
    active = (await connections_by_status(ctx))["active"]
    before = await scrape(client)
    await health_tick(ctx)
    after = await scrape(client)
    counts = await connections_by_status(ctx)
    for status in ("active", "inactive", "error"):
        assert value(after, "execution_connections", status=status) == counts.get(status, 0)
    checks = sum(
        delta(before, after, "execution_connection_checks_total", outcome=o)
        for o in ("ok", "failed", "fatal")
    )
    assert checks == active  # one check per connection that was active


async def test_http_requests_are_counted_by_route_template(
    client: httpx.AsyncClient, user: Actor
) -> None:
    before = await scrape(client)
    assert (await user.get("/api/v1/positions/987654")).status_code == 404
    assert (await client.get("/no/such/path/31337")).status_code == 404
    after = await scrape(client)
    route = "/api/v1/positions/{position_id}"
    counter = "execution_http_requests_total"
    assert delta(before, after, counter, method="GET", route=route, status="404") == 1
    assert delta(before, after, counter, method="GET", route="unmatched", status="404") == 1
    duration = "execution_http_request_duration_seconds_count"
    assert delta(before, after, duration, method="GET", route=route) == 1
    # Raw paths never become labels: the id and the scanned path mint no series.
    assert not [key for key in after if "987654" in str(key) or "31337" in str(key)]
