"""The dashboard in headless Chromium (Playwright), on a week of real trading built through the
API (`scenario.py`): the page loads under its CSP, every figure on it is the API's, the charts are
drawn, live events arrive from the stream, and a position closes after a confirmation. The run
leaves screenshots in `screenshots/`."""

from __future__ import annotations

import json
import re
import tomllib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, Route, expect

from execution_service.context import AppContext
from execution_service.dashboard.router import LICENSES
from execution_service.decimals import to_str
from execution_service.events.repository import EventRepository
from tests.dashboard.browser import SCREENSHOTS, Watched, cut, hover_tooltip, percent_of, table
from tests.dashboard.png import colour_counts, read_pixels
from tests.dashboard.scenario import build_week, close, opened
from tests.factories import Actor

LINE = (0xFF, 0x9F, 0x1C)  # the first account's equity line
UP, DOWN = (0x3F, 0xB9, 0x50), (0xF8, 0x51, 0x49)  # the daily bars


def key_of(actor: Actor) -> str:
    return actor.headers["Authorization"].removeprefix("Bearer ")


async def open_dashboard(base_url: str, tab: Watched, actor: Actor) -> Page:
    page = tab.page
    await page.goto(f"{base_url}/dashboard#key={key_of(actor)}")
    await expect(page.locator("body")).to_have_attribute("data-state", "ready", timeout=15_000)
    await expect(page.locator("#live")).to_have_attribute("data-live", "on", timeout=15_000)
    assert page.url == f"{base_url}/dashboard"  # the key left the address bar
    return page


def near(colour: tuple[int, int, int], target: tuple[int, int, int], slack: int = 40) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(colour, target, strict=True))


async def pixels(page: Page, selector: str, target: tuple[int, int, int]) -> int:
    _, _, rows = read_pixels(await page.locator(selector).screenshot())
    return sum(n for colour, n in colour_counts(rows).items() if near(colour, target))


def since_30_days() -> str:
    return (datetime.now(UTC) - timedelta(days=30)).isoformat()


async def test_the_page_is_static_and_strict(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        page = await http.get("/dashboard")
        licences = await http.get("/dashboard/licenses")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "http" not in csp and "unsafe" not in csp  # nothing from elsewhere, no eval
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)  # no external resource
    assert "data-include" not in page.text and "uPlot" in page.text  # the chart library, inline
    assert licences.status_code == 200 and "Copyright (c) 2022 Leon Sorokin" in licences.text


def test_the_installed_package_carries_the_page() -> None:
    """Docker installs the package, not src/: every file the page is built from must be package
    data."""
    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["execution_service"]
    html = (root / "src/execution_service/dashboard/page/index.html").read_text()
    needed = ["page/index.html", *re.findall(r'data-include="([^"]+)"', html), *LICENSES]
    assert len(needed) > 8
    for name in needed:
        assert any(fnmatch(f"dashboard/{name}", g) for g in globs), name


async def test_every_figure_is_the_apis(
    base_url: str, user: Actor, other_user: Actor, ctx: AppContext, tab: Watched
) -> None:
    week = await build_week(ctx, user, other_user)
    page = await open_dashboard(base_url, tab, user)
    key = key_of(user)

    # Accounts, and the open positions with their stops, trailing level and distance to the stop.
    accounts = await table(page, "#connections")
    assert set(accounts) == {week.btc.conn_id, week.eth.conn_id}
    opened = (await user.ok("GET", "/api/v1/positions", params={"status": "open"}))["items"]
    shown = await table(page, "#positions")
    assert set(shown) == {p["id"] for p in opened} == set(week.open)
    assert week.theirs not in shown
    for p in opened:
        cells = shown[p["id"]]
        for field in ("sl_price", "tp_price", "trailing_stop_price", "current_price", "pnl"):
            assert cells[field]["value"] == p[field], (field, cells, p)
            assert cells[field]["text"] == cut(p[field], 2 if field == "pnl" else 6)
        price = Decimal(p["current_price"])
        stops = [Decimal(s) for s in (p["sl_price"], p["trailing_stop_price"]) if s is not None]
        if not stops:
            assert cells["stop_distance"]["value"] is None
            continue
        gap = price - max(stops) if p["direction"] == "buy" else min(stops) - price
        assert cells["stop_distance"]["value"] == percent_of(gap, price)
    trailing = next(p for p in opened if p["id"] == week.open[0])
    assert (trailing["best_price"], trailing["trailing_stop_price"]) == ("65800", "64813")
    assert shown[week.open[0]]["stop_distance"]["value"] == "1.5"

    # Closed trades: reason, PnL, fees.
    closed = (await user.ok("GET", "/api/v1/positions", params={"status": "closed"}))["items"]
    rows = await table(page, "#closed")
    assert set(rows) == {p["id"] for p in closed} == {*week.history, week.closed_today}
    for p in closed:
        for field in ("pnl", "pnl_percentage", "fees", "close_price"):
            assert rows[p["id"]][field]["value"] == p[field]
        assert rows[p["id"]]["closed_reason"]["text"] == p["closed_reason"]
    reasons = sorted(p["closed_reason"] for p in closed)
    assert reasons == ["manual"] * 4 + ["sl", "tp", "trailing_stop"]

    # The summary of the chosen range (the last 30 days), figure by figure.
    summary = await user.ok("GET", "/api/v1/analytics/summary", params={"since": since_30_days()})
    figures = dict(
        await page.eval_on_selector_all(
            "dd[data-figure]", "dds => dds.map(d => [d.dataset.figure, d.dataset.value])"
        )
    )
    assert summary["total_trades"] == 7 and summary["starting_equity"] == "70000"
    for name in ("net_pnl", "win_rate", "expectancy", "max_drawdown", "starting_equity"):
        assert figures[name] == summary[name], name
    assert figures["profit_factor"] == (summary["profit_factor"] or "")
    assert figures["won_lost"] == f"{summary['winning_trades']}/{summary['losing_trades']}"
    assert figures["open_positions"] == "3"
    assert Decimal(figures["unrealized_pnl"]) == sum(Decimal(p["pnl"]) for p in opened)
    # Balance (cash) and equity (cash plus open PnL): today's snapshots, summed over accounts.
    today = str(datetime.now(UTC).date())
    snapshots = await user.ok("GET", "/api/v1/analytics/daily", params={"since": today})
    rows_today = [r for r in snapshots["items"] if r["balance"] is not None]
    assert {r["connection_id"] for r in rows_today} == {week.btc.conn_id, week.eth.conn_id}
    balance = sum(Decimal(r["balance"]) for r in rows_today)
    equity = sum(Decimal(r["equity"]) for r in rows_today)
    assert equity - balance == sum(Decimal(p["pnl"]) for p in opened)  # paper: cash + open PnL
    assert (Decimal(figures["balance"]), Decimal(figures["equity"])) == (balance, equity)

    # Daily PnL bars: one per day, the day's net over both accounts in the tooltip.
    daily = await user.ok("GET", "/api/v1/analytics/daily", params={"since": since_30_days()})
    # A day's net is what every account realised that day (an open position's entry fee too);
    # a day is shown if it closed a trade or realised anything.
    days: dict[str, list[Any]] = {}
    for row in daily["items"]:
        day = days.setdefault(row["date"], [Decimal(0), 0])
        day[0] += Decimal(row["net_pnl"])
        day[1] += row["total_trades"]
    days = {d: v for d, v in days.items() if v[0] or v[1]}
    assert len(days) == 7
    await expect(page.locator("#daily-chart")).to_have_attribute("data-days", "7")
    span = len(days) - 1 + 1.4  # the x axis runs 0.7 of a day either side of the bars
    for n, (day, (net, count)) in enumerate(sorted(days.items())):
        tip = await hover_tooltip(page, "#daily-chart", (0.7 + n) / span)
        assert tip.startswith(f"{day} Net PnL {cut(str(net), 2)} Trades {count} ("), tip

    # Equity: one chart per account, the API's figures in the caption and the tooltips.
    await expect(page.locator("#equity-chart")).to_have_attribute("data-series", "2")
    for acct in (week.btc, week.eth):
        curve = await user.ok(
            "GET",
            "/api/v1/analytics/equity",
            params={"connection_id": acct.conn_id, "since": since_30_days()},
        )
        points = curve["points"]
        chart = f'#equity-chart figure[data-connection-id="{acct.conn_id}"]'
        await expect(page.locator(chart)).to_have_attribute("data-last", points[-1]["equity"])
        await expect(page.locator(chart)).to_have_attribute("data-points", str(len(points)))
        name = f"#{acct.conn_id} {acct.connection['name']}"
        first = await hover_tooltip(page, chart, 0.0)
        last = await hover_tooltip(page, chart, 1.0)
        # The curve starts at the range's start (the page asked a moment before the test).
        assert first.startswith(points[0]["timestamp"][:10]), first
        assert first.endswith(f" UTC {name} {cut(points[0]['equity'], 2)}"), first
        assert last.startswith(f"{points[-1]['timestamp'][:19].replace('T', ' ')} UTC"), last
        assert f"{name} {cut(points[-1]['equity'], 2)} realised {cut(points[-1]['pnl'], 2)}" in last
    await page.screenshot(path=SCREENSHOTS / "dashboard-equity-tooltip.png")
    await page.mouse.move(0, 0)

    # The recent orders, the refused one included.
    logs = (await user.ok("GET", "/api/v1/logs", params={"limit": 20}))["items"]
    assert set(await table(page, "#logs")) == {entry["id"] for entry in logs}

    # Drawn, not only in the DOM: the lines and bars have their colours on screen.
    assert await pixels(page, "#equity-chart figure:first-of-type canvas", LINE) > 300
    assert await pixels(page, "#daily-chart canvas", UP) > 300
    assert await pixels(page, "#daily-chart canvas", DOWN) > 100
    await page.screenshot(path=SCREENSHOTS / "dashboard.png", full_page=True)

    html = await page.content()
    assert key not in html  # the key is not written into the page
    assert not [u for u in tab.urls if key in u]  # nor into any URL
    assert all(u.startswith(base_url) for u in tab.urls)  # nothing asked of anyone else
    assert tab.errors == []  # no CSP refusal, no script error


async def test_live_events_and_a_confirmed_close(
    base_url: str, user: Actor, other_user: Actor, ctx: AppContext, tab: Watched
) -> None:
    week = await build_week(ctx, user, other_user)
    page = await open_dashboard(base_url, tab, user)

    # Changes made elsewhere arrive through the event stream. Closed trades are reloaded on an
    # event (or every 30 s): the closed row appearing within seconds is the stream's doing.
    await week.eth.price("0.4512", "ADA/USDT")
    elsewhere = await opened(week.eth, "ADA/USDT", "sell")
    await expect(page.locator('#events li[data-type="position.opened"]')).to_have_count(1)
    await expect(page.locator(f'#positions tr[data-position-id="{elsewhere}"]')).to_have_count(1)
    await close(week.eth, elsewhere)
    await expect(page.locator('#events li[data-type="position.closed"]')).to_have_count(1)
    closed_row = page.locator(f'#closed tr[data-position-id="{elsewhere}"]')
    await expect(closed_row).to_have_attribute("data-reason", "manual", timeout=5_000)
    # A fee-sized loss: shown with the places it needs, never as a bare 0.
    pnl = (await user.ok("GET", f"/api/v1/positions/{elsewhere}"))["pnl"]
    assert cut(pnl, 2) == "0" and Decimal(pnl) < 0, pnl
    pnl_cell = closed_row.locator('td[data-field="pnl"]')
    await expect(pnl_cell).to_have_attribute("data-value", pnl)
    await expect(pnl_cell).to_have_text(cut(pnl, 8))

    # One click opens a confirmation; cancelling it closes nothing.
    target = week.open[0]
    button = page.locator(f'button[data-close="{target}"]')
    dialog = page.locator("#close-dialog")
    await button.click()
    await expect(dialog).to_be_visible()
    await expect(page.locator("#close-id")).to_have_text(f"#{target}")
    await expect(page.locator("#close-what")).to_contain_text("long 0.2 BTC/USDT on #")
    await page.screenshot(path=SCREENSHOTS / "dashboard-close-confirm.png")
    await page.locator("#close-cancel").click()
    await expect(dialog).to_be_hidden()
    assert (await user.ok("GET", f"/api/v1/positions/{target}"))["status"] == "open"

    # Confirmed, it closes at market: the dialog says how, the API agrees, the tables follow.
    await button.click()
    await page.locator("#close-confirm").click()
    result = page.locator("#close-result")
    await expect(result).to_have_attribute("data-outcome", "closed")
    position = await user.ok("GET", f"/api/v1/positions/{target}")
    assert (position["status"], position["closed_reason"]) == ("closed", "manual")
    expected = f"Closed at {cut(position['close_price'], 6)} · PnL {cut(position['pnl'], 2)}"
    await expect(result).to_have_text(expected)
    await page.locator("#close-cancel").click()  # now "Done"
    await expect(page.locator(f'#positions tr[data-position-id="{target}"]')).to_have_count(0)
    closed_row = page.locator(f'#closed tr[data-position-id="{target}"]')
    await expect(closed_row).to_have_attribute("data-reason", "manual")
    await expect(page.locator('#events li[data-type="position.closed"]')).to_have_count(2)

    # A close the API refuses (the position closed meanwhile) is said in the dialog.
    gone = week.open[1]
    await page.locator(f'button[data-close="{gone}"]').click()
    await close(week.eth, gone)
    await page.locator("#close-confirm").click()
    await expect(result).to_have_attribute("data-outcome", "error")
    await expect(result).to_contain_text(f"position {gone}")
    await page.locator("#close-cancel").click()
    await expect(page.locator(f'#positions tr[data-position-id="{gone}"]')).to_have_count(0)
    await page.screenshot(path=SCREENSHOTS / "dashboard-live.png", full_page=True)
    # Chromium logs the refused close's 409; nothing else went wrong.
    assert tab.errors == [
        "Failed to load resource: the server responded with a status of 409 (Conflict)"
    ]


async def test_the_range_and_the_account_choose_the_figures(
    base_url: str, user: Actor, other_user: Actor, ctx: AppContext, tab: Watched
) -> None:
    week = await build_week(ctx, user, other_user)
    page = await open_dashboard(base_url, tab, user)

    async def shows(params: dict[str, Any]) -> None:
        summary = await user.ok("GET", "/api/v1/analytics/summary", params=params)
        for name in ("net_pnl", "total_trades", "win_rate", "max_drawdown", "starting_equity"):
            figure = page.locator(f'dd[data-figure="{name}"]')
            await expect(figure).to_have_attribute("data-value", str(summary[name] or ""))

    # One account, all time: its figures, its chart, its positions only.
    eth = week.eth.conn_id
    await page.select_option("#account", str(eth))
    await page.select_option("#range", "all")
    await expect(page.locator("#range-label")).to_have_text(f"all time · account #{eth}")
    await shows({"connection_id": eth})
    await expect(page.locator("#equity-chart")).to_have_attribute("data-series", "1")
    await expect(page.locator("#equity-chart figure")).to_have_attribute(
        "data-connection-id", str(eth)
    )
    await expect(page.locator("#positions tbody tr.data")).to_have_count(2)
    await page.screenshot(path=SCREENSHOTS / "dashboard-one-account.png", full_page=True)

    # A custom range of whole UTC days: three days ago to yesterday, both accounts.
    today = datetime.now(UTC).date()
    since, until = (today - timedelta(days=3)).isoformat(), (today - timedelta(days=1)).isoformat()
    await page.select_option("#account", "")
    await page.select_option("#range", "custom")
    await page.fill("#since", since)
    await page.fill("#until", until)
    label = f"since {since} until {until} (inclusive)"
    await expect(page.locator("#range-label")).to_have_text(label)
    await shows({"since": since, "until": until})
    await expect(page.locator("#daily-chart")).to_have_attribute("data-days", "3")
    await expect(page.locator('dd[data-figure="total_trades"]')).to_have_text("3")
    assert tab.errors == []


DECIMALS = [
    ("0", "0"),
    ("1.5", "-1.5"),
    ("-0.000000000000000001", "123456789012345678.123456789012345678"),
    ("65800", "64813.000"),
    ("-301.11", "268.92"),
    ("99999999999999999999999999999999999999", "0.000000000000000001"),
]


async def test_the_pages_decimals_are_exact(base_url: str, tab: Watched) -> None:
    """The page sums and compares the API's decimal strings exactly (BigInt), as Decimal does."""
    page = tab.page
    await page.goto(f"{base_url}/dashboard")
    got = await page.evaluate(
        """cases => cases.map(([a, b]) => [Dash.dec.add(a, b), Dash.dec.sub(a, b),
            Dash.dec.cmp(a, b), Dash.dec.percentOf(a, b, 2), Dash.dec.cut(a, 2)])""",
        DECIMALS,
    )
    for (a, b), (total, difference, order, percent, shown) in zip(DECIMALS, got, strict=True):
        x, y = Decimal(a), Decimal(b)
        assert (total, difference) == (to_str(x + y), to_str(x - y)), (a, b)
        assert order == (x > y) - (x < y)
        assert percent == (None if y == 0 else percent_of(x, y)), (a, b)
        assert shown == cut(a, 2)
    assert tab.errors == []


async def test_a_dropped_stream_resumes_where_it_stopped(
    base_url: str, user: Actor, other_user: Actor, ctx: AppContext, tab: Watched
) -> None:
    """The stream's first answer is cut short after one event (as a proxy or a restart would):
    the page waits the `retry` it was given, reconnects with Last-Event-ID, and goes on."""
    week = await build_week(ctx, user, other_user)
    async with ctx.session_factory() as session:
        last = await EventRepository(session).latest_id()
    asked: list[dict[str, str]] = []

    async def events(route: Route) -> None:
        asked.append(route.request.headers)
        if len(asked) > 1:
            await route.continue_()
            return
        data = {"id": last, "type": "position.opened", "created_at": "2026-01-02T03:04:05Z"}
        data |= {"user_id": user.user_id, "admin_id": None, "data": {"position_id": 1}}
        body = f"retry: 300\n: connected\n\nid: {last}\nevent: position.opened\n"
        await route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream"},
            body=body + f"data: {json.dumps(data)}\n\n",
        )

    await tab.page.route("**/api/v1/events*", events)
    page = await open_dashboard(base_url, tab, user)
    feed = page.locator("#events li[data-type]")
    await expect(feed).to_have_count(1)
    assert len(asked) == 2 and "last-event-id" not in asked[0]
    assert asked[1]["last-event-id"] == str(last)
    assert all(h["authorization"] == f"Bearer {key_of(user)}" for h in asked)

    await week.eth.price("0.4512", "ADA/USDT")
    await opened(week.eth, "ADA/USDT")
    await expect(feed).to_have_count(3)  # position.opened and order.filled, from the server
    assert await feed.first.get_attribute("data-type") == "order.filled"
    assert tab.errors == []


async def test_the_kill_switch_closes_one_account_after_a_confirmation(
    base_url: str, user: Actor, other_user: Actor, ctx: AppContext, tab: Watched
) -> None:
    week = await build_week(ctx, user, other_user)
    page = await open_dashboard(base_url, tab, user)
    await page.locator("#account").select_option(str(week.eth.conn_id))
    await page.locator("#close-all").click()
    await expect(page.locator("#close-all-scope")).to_contain_text(f"#{week.eth.conn_id}")
    await page.locator("#close-all-cancel").click()  # cancelling closes nothing
    eth_open = [p for p in week.open if p != week.open[0]]  # the BTC account's stays
    for pid in eth_open:
        assert (await user.ok("GET", f"/api/v1/positions/{pid}"))["status"] == "open"
    await page.locator("#close-all").click()
    await page.locator("#close-all-confirm").click()
    result = page.locator("#close-all-result")
    await expect(result).to_have_attribute("data-outcome", "done")
    await expect(result).to_have_text("0 orders cancelled, 2 positions closing.")
    for pid in eth_open:
        position = await user.ok("GET", f"/api/v1/positions/{pid}")
        assert (position["status"], position["closed_reason"]) == ("closed", "close_all")
    assert (await user.ok("GET", f"/api/v1/positions/{week.open[0]}"))["status"] == "open"
    await page.locator("#close-all-cancel").click()
    # A stopped-out account says so in the accounts table.
    await user.ok("PATCH", f"/api/v1/connections/{week.btc.conn_id}", json={"close_only": True})
    badge = page.locator(
        f'#connections tr[data-connection-id="{week.btc.conn_id}"] [data-stop-out]'
    )
    await expect(badge).to_have_text("close-only", timeout=10_000)
    await page.screenshot(path=SCREENSHOTS / "dashboard-kill-switch.png", full_page=True)
