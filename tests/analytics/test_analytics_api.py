"""Analytics end to end: real trades on a paper account through the API, then the daily row,
the summary and the equity curve checked against figures worked out by hand."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from execution_service.analytics import service as analytics
from execution_service.analytics.repository import PositionBook
from execution_service.context import AppContext
from execution_service.models import ExecutionConnection
from execution_service.workers import analytics as analytics_worker
from execution_service.workers.analytics import analytics_tick, equity_of, quote_of
from tests.factories import Actor, PaperSetup, paper_setup

# Five trades of 10 BTC on a 10000 USDT paper account without fees or slippage:
# (direction, entry, exit) -> net PnL
SERIES = [
    ("buy", "100", "110"),  # (110 - 100) * 10 = +100
    ("buy", "110", "105"),  # (105 - 110) * 10 = -50
    ("buy", "105", "108"),  # (108 - 105) * 10 = +30
    ("sell", "108", "110"),  # short: (108 - 110) * 10 = -20
    ("buy", "106", "106"),  # 0: counts as a trade, neither a win nor a loss
]
# wins 100, 30; losses 50, 20; win_rate 2/5 = 40 %; gross 130 / 70; net 60
# profit_factor 130/70 = 1.857142857... -> 1.85714286; expectancy 60/5 = 12
# average_win 130/2 = 65; average_loss 70/2 = 35; best 100; worst -50
# balance after the day 10000 + 60 = 10060; starting equity: the day's opening snapshot, the
# 10000 the first signal was sized against (no earlier row)
# curve 10000, 10100, 10050, 10080, 10060, 10060 -> drawdown 10100 - 10050 = 50
# percent 50/10100*100 = 0.495049504950... -> 0.49504950 -> "0.4950495"
FIGURES = {
    "total_trades": 5,
    "winning_trades": 2,
    "losing_trades": 2,
    "win_rate": "40",
    "gross_profit": "130",
    "gross_loss": "70",
    "net_pnl": "60",
    "profit_factor": "1.85714286",
    "max_drawdown": "50",
    "max_drawdown_percent": "0.4950495",
}
SUMMARY_ONLY = {
    "expectancy": "12",
    "average_win": "65",
    "average_loss": "35",
    "best_trade": "100",
    "worst_trade": "-50",
}
EMPTY = {
    "total_trades": 0,
    "winning_trades": 0,
    "losing_trades": 0,
    "win_rate": "0",
    "net_pnl": "0",
    "profit_factor": None,
    "best_trade": None,
    "worst_trade": None,
    "max_drawdown": "0",
}


async def trade(acct: PaperSetup, direction: str, entry: str, exit: str) -> dict[str, Any]:
    await acct.price(entry)
    position_id = (await acct.signal(direction=direction))["executions"][0]["position_id"]
    await acct.price(exit)
    closed = await acct.actor.ok("POST", f"/api/v1/positions/{position_id}/close")
    return closed["position"]  # type: ignore[no-any-return]


async def trade_series(user: Actor, ctx: AppContext) -> tuple[PaperSetup, list[dict[str, Any]]]:
    acct = await paper_setup(
        user,
        market_type="swap",
        price="100",
        position_size_mode="fixed_quantity",
        position_size_value="10",
    )
    closed = [await trade(acct, *t) for t in SERIES]
    assert [p["pnl"] for p in closed] == ["100", "-50", "30", "-20", "0"]
    await analytics_tick(ctx)  # today's balance snapshot, and the row if no close made it yet
    return acct, closed


def day_of(position: dict[str, Any]) -> str:
    return str(position["closed_at"][:10])


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def test_a_days_trades_give_exact_daily_row_summary_and_curve(
    user: Actor, ctx: AppContext
) -> None:
    acct, closed = await trade_series(user, ctx)
    day = day_of(closed[-1])
    assert all(day_of(p) == day for p in closed)
    params = {"connection_id": acct.conn_id}

    daily = await user.ok("GET", "/api/v1/analytics/daily", params=params)
    assert daily["total"] == 1
    [row] = daily["items"]
    assert row == {
        "connection_id": acct.conn_id,
        "date": day,
        **FIGURES,
        "opening_equity": "10000",  # the first signal was sized against 10000, before any fill
        "balance": "10060",
        "equity": "10060",  # no open position: equity = balance
        "is_final": False,
    }

    summary = await user.ok("GET", "/api/v1/analytics/summary", params=params)
    assert summary == {
        "connection_id": acct.conn_id,
        "since": None,
        "until": None,
        "starting_equity": "10000",
        **{k: v for k, v in FIGURES.items()},
        **SUMMARY_ONLY,
    }
    # Without connection_id: every connection of the caller, which is just this one.
    mine = await user.ok("GET", "/api/v1/analytics/summary")
    assert mine == {**summary, "connection_id": None}

    curve = await user.ok("GET", "/api/v1/analytics/equity", params=params)
    assert curve["starting_equity"] == "10000"
    points = [(p["equity"], p["pnl"]) for p in curve["points"]]
    # 10000 then + 100, - 50, + 30, - 20, + 0
    assert points == [
        ("10000", "0"),
        ("10100", "100"),
        ("10050", "-50"),
        ("10080", "30"),
        ("10060", "-20"),
        ("10060", "0"),
    ]
    # One point per close, at its closed_at; the start is the first close (no `since`).
    timestamps = [p["timestamp"] for p in curve["points"]]
    assert timestamps == [closed[0]["closed_at"]] + [p["closed_at"] for p in closed]


async def test_ranges_by_date_and_datetime(user: Actor, ctx: AppContext) -> None:
    acct, closed = await trade_series(user, ctx)
    day = date.fromisoformat(day_of(closed[0]))
    base = {"connection_id": acct.conn_id}

    async def summary(**params: str) -> dict[str, Any]:
        return await user.ok("GET", "/api/v1/analytics/summary", params={**base, **params})  # type: ignore[no-any-return]

    # A date `until` includes its whole day.
    whole = await summary(since=day.isoformat(), until=day.isoformat())
    assert whole["total_trades"] == 5 and whole["max_drawdown_percent"] == "0.4950495"
    assert whole["since"] == f"{day}T00:00:00Z"
    assert whole["until"] == f"{day + timedelta(days=1)}T00:00:00Z"
    # A datetime `until` is exclusive: midnight of the day excludes all of it.
    before = await summary(until=f"{day}T00:00:00Z")
    assert {k: before[k] for k in EMPTY} == EMPTY
    # From tomorrow: nothing closed, and the starting equity is the last equity measured before
    # it: today's snapshot, 10000 + 60 (no position open: equity = balance).
    later = await summary(since=(day + timedelta(days=1)).isoformat())
    assert {k: later[k] for k in EMPTY} == EMPTY and later["starting_equity"] == "10060"
    # Only the last two trades, from the time the fourth closed: -20 and 0 from 10000
    # (the opening snapshot of the range's first day); curve 10000, 9980, 9980
    tail = await summary(since=closed[3]["closed_at"])
    assert tail["total_trades"] == 2 and tail["net_pnl"] == "-20"
    assert tail["max_drawdown"] == "20" and tail["max_drawdown_percent"] == "0.2"  # 20/10000*100
    daily = await user.ok(
        "GET", "/api/v1/analytics/daily", params={**base, "since": str(day + timedelta(days=1))}
    )
    assert daily["items"] == [] and daily["total"] == 0

    for path in ("daily", "summary", "equity"):
        response = await user.get(
            f"/api/v1/analytics/{path}",
            params={**base, "since": str(day), "until": str(day - timedelta(days=1))},
        )
        assert response.status_code == 422, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_range"
    bad = await user.get("/api/v1/analytics/summary", params={"since": "yesterday-ish"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "since"]
    fmt = await user.get("/api/v1/analytics/summary", params={"format": "xml"})
    assert fmt.status_code == 422
    far = await user.get("/api/v1/analytics/summary", params={"until": "9999-12-31"})
    assert far.status_code == 200 and far.json()["until"] is None  # the end of time: unbounded


async def test_another_owners_connection_is_404(
    user: Actor, other_user: Actor, admin: Actor, ctx: AppContext
) -> None:
    acct, _ = await trade_series(user, ctx)
    theirs = await paper_setup(
        other_user, price="100", position_size_mode="fixed_quantity", position_size_value="1"
    )
    await trade(theirs, "buy", "100", "90")  # -10, theirs only
    await analytics_tick(ctx)
    for path in ("daily", "summary", "equity"):
        for fmt in ("json", "csv"):
            params = {"connection_id": acct.conn_id, "format": fmt}
            response = await other_user.get(f"/api/v1/analytics/{path}", params=params)
            assert response.status_code == 404, (path, fmt)
            assert response.json()["code"] == "not_found"
        missing = await user.get(f"/api/v1/analytics/{path}", params={"connection_id": 2**31 - 1})
        assert missing.status_code == 404
    # Unfiltered, each sees only their own trades.
    assert (await other_user.ok("GET", "/api/v1/analytics/summary"))["net_pnl"] == "-10"
    assert (await user.ok("GET", "/api/v1/analytics/summary"))["net_pnl"] == "60"
    their_days = await other_user.ok("GET", "/api/v1/analytics/daily")
    assert [r["connection_id"] for r in their_days["items"]] == [theirs.conn_id]
    # An admin key sees both.
    for conn_id, net in ((acct.conn_id, "60"), (theirs.conn_id, "-10")):
        params = {"connection_id": conn_id}
        assert (await admin.ok("GET", "/api/v1/analytics/summary", params=params))["net_pnl"] == net


async def test_csv_exports(user: Actor, ctx: AppContext) -> None:
    acct, closed = await trade_series(user, ctx)
    params = {"connection_id": acct.conn_id, "format": "csv"}

    daily = await user.get("/api/v1/analytics/daily", params=params)
    assert daily.status_code == 200 and daily.headers["content-type"].startswith("text/csv")
    assert daily.headers["x-total-count"] == "1"
    header, row = read_csv(daily.text)
    assert dict(zip(header, row, strict=True)) == {
        "connection_id": str(acct.conn_id),
        "date": day_of(closed[0]),
        **{k: str(v) for k, v in FIGURES.items()},
        "opening_equity": "10000",
        "balance": "10060",
        "equity": "10060",
        "is_final": "false",
    }

    summary = await user.get("/api/v1/analytics/summary", params=params)
    header, row = read_csv(summary.text)
    got = dict(zip(header, row, strict=True))
    assert got["connection_id"] == str(acct.conn_id) and got["since"] == ""
    assert got["profit_factor"] == "1.85714286" and got["worst_trade"] == "-50"

    no_losses = await user.get(
        "/api/v1/analytics/summary", params={**params, "until": closed[0]["closed_at"]}
    )
    header, row = read_csv(no_losses.text)
    assert dict(zip(header, row, strict=True))["profit_factor"] == ""  # None: an empty cell

    equity = await user.get("/api/v1/analytics/equity", params=params)
    header, *rows = read_csv(equity.text)
    assert header == ["timestamp", "equity", "pnl"]
    assert [r[1:] for r in rows] == [
        ["10000", "0"],
        ["10100", "100"],
        ["10050", "-50"],
        ["10080", "30"],
        ["10060", "-20"],
        ["10060", "0"],
    ]


async def test_after_midnight_the_day_is_refreshed_and_final(
    user: Actor, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run's database holds every earlier test's rows of today, all past days tomorrow: a
    # tick finalises FINALISE_BATCH of them (a backlog drains over ticks), this one among them.
    monkeypatch.setattr(analytics_worker, "FINALISE_BATCH", 1_000_000)
    acct = await paper_setup(
        user, price="100", position_size_mode="fixed_quantity", position_size_value="1"
    )
    position = await trade(acct, "buy", "100", "125")  # +25
    await analytics_tick(ctx)
    day = date.fromisoformat(day_of(position))
    next_morning = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
    await analytics_tick(ctx, now=next_morning + timedelta(minutes=5))
    [row] = (
        await user.ok("GET", "/api/v1/analytics/daily", params={"connection_id": acct.conn_id})
    )["items"]
    # The closing balance survives finalisation: 10000 + 25
    assert row["is_final"] is True and row["net_pnl"] == "25" and row["balance"] == "10025"
    async with ctx.session_factory() as session:  # a late non-final snapshot cannot reopen it
        await analytics.snapshot_balance(
            session, acct.conn_id, day, Decimal("1"), Decimal("1"), final=False
        )
        await session.commit()
    [row] = (
        await user.ok("GET", "/api/v1/analytics/daily", params={"connection_id": acct.conn_id})
    )["items"]
    assert row["is_final"] is True and row["balance"] == "1"


@pytest.mark.parametrize(
    ("symbols", "quote"),
    [
        (["BTC/USDT", "ETH/USDT", "ETH/BTC"], "USDT"),  # USDT twice, BTC once
        (["BTC/USDT:USDT"], "USDT"),  # a swap's settle suffix is not the quote
        (["ETH/BTC", "BTC/USDT"], "BTC"),  # a tie: the earliest position's quote
        ([], None),
    ],
)
def test_the_balance_is_in_the_most_common_quote(symbols: list[str], quote: str | None) -> None:
    assert quote_of(symbols) == quote


@pytest.mark.parametrize(
    ("adapter", "exchange", "market_type", "equity"),
    [
        # Paper keeps what a position cost in its cash: 10000 + the open PnL 10.
        ("paper", None, "spot", "10010"),
        # A real spot account paid for its coins: 10000 + 1 BTC held, worth 1 x 1100 at its mark.
        ("ccxt", "binance", "spot", "11100"),
        # A swap account posted margin, still in its cash: 10000 + the open PnL 10.
        ("ccxt", "binance", "swap", "10010"),
    ],
)
def test_the_snapshots_equity_counts_what_the_positions_add(
    adapter: str, exchange: str | None, market_type: str, equity: str
) -> None:
    conn = ExecutionConnection(adapter=adapter, exchange=exchange, market_type=market_type)
    book = PositionBook(["BTC/USDT"], unrealized=Decimal(10), value=Decimal(1100))
    assert str(equity_of(conn, Decimal(10000), book)) == equity
