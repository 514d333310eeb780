"""A data connection's history: stored ticks and bars by range, paged, as JSON or CSV, and bars
built from the stored ticks for a timeframe none are stored of."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from execution_service.market_data import bars
from tests.factories import Actor

T0 = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)  # a Monday


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def push_ticks(user: Actor, dc_id: int, ticks: list[tuple[float, str]]) -> None:
    prices = [{"symbol": "EUR/USD", "price": p, "timestamp": at(s)} for s, p in ticks]
    await user.ok("POST", f"/api/v1/data-connections/{dc_id}/market-data", json={"prices": prices})


async def test_ticks_by_range_paged_oldest_first(user: Actor) -> None:
    dc = await user.data_connection()
    await push_ticks(user, dc["id"], [(s, f"1.{1000 + s}") for s in range(0, 100, 10)])
    url = f"/api/v1/data-connections/{dc['id']}/market-data"
    page = await user.ok(
        "GET",
        url,
        params={"symbol": "EUR/USD", "since": at(20), "until": at(90), "limit": 3, "offset": 2},
    )
    assert (page["total"], page["limit"], page["offset"], page["built"]) == (7, 3, 2, False)
    assert [i["close"] for i in page["items"]] == ["1.104", "1.105", "1.106"]
    assert page["items"][0] == {
        "timestamp": at(40),
        "open": None,
        "high": None,
        "low": None,
        "close": "1.104",
        "volume": None,
    }
    everything = await user.ok("GET", url, params={"symbol": "EUR/USD"})
    assert everything["total"] == 10 and everything["items"][-1]["close"] == "1.109"
    empty = await user.ok("GET", url, params={"symbol": "GBP/USD"})
    assert empty["total"] == 0 and empty["items"] == []


async def test_csv_is_the_same_page(user: Actor) -> None:
    dc = await user.data_connection()
    await push_ticks(user, dc["id"], [(0, "1.1"), (30, "1.12"), (61, "1.09")])
    url = f"/api/v1/data-connections/{dc['id']}/market-data"
    response = await user.get(url, params={"symbol": "EUR/USD", "limit": 2, "format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-total-count"] == "3" and response.headers["x-bars-built"] == "false"
    assert "market-data-" in response.headers["content-disposition"]
    assert response.text.splitlines() == [
        "timestamp,open,high,low,close,volume",
        f"{at(0)},,,,1.1,",
        f"{at(30)},,,,1.12,",
    ]
    built = await user.get(url, params={"symbol": "EUR/USD", "timeframe": "1m", "format": "csv"})
    assert built.headers["x-bars-built"] == "true"
    assert built.text.splitlines()[1:] == [
        f"{at(0)},1.1,1.12,1.1,1.12,",
        f"{at(60)},1.09,1.09,1.09,1.09,",
    ]


async def test_bars_are_built_from_ticks_when_none_are_stored(user: Actor) -> None:
    dc = await user.data_connection()
    # Two 5m periods, then one after a gap; within a period, out of order on purpose.
    await push_ticks(
        user,
        dc["id"],
        [(250, "1.15"), (10, "1.10"), (100, "1.20"), (200, "1.05"), (320, "1.30"), (1300, "1.25")],
    )
    url = f"/api/v1/data-connections/{dc['id']}/market-data"
    built = await user.ok("GET", url, params={"symbol": "EUR/USD", "timeframe": "5m"})
    assert built["built"] is True and built["total"] == 3
    assert [
        (b["timestamp"], b["open"], b["high"], b["low"], b["close"]) for b in built["items"]
    ] == [
        (at(0), "1.1", "1.2", "1.05", "1.15"),
        (at(300), "1.3", "1.3", "1.3", "1.3"),
        (at(1200), "1.25", "1.25", "1.25", "1.25"),
    ]
    assert built["items"][0]["volume"] is None
    second = await user.ok(
        "GET", url, params={"symbol": "EUR/USD", "timeframe": "5m", "limit": 1, "offset": 1}
    )
    assert second["total"] == 3 and [b["timestamp"] for b in second["items"]] == [at(300)]
    ranged = await user.ok(
        "GET", url, params={"symbol": "EUR/USD", "timeframe": "5m", "since": at(100)}
    )
    assert ranged["items"][0]["open"] == "1.2"  # a bar of the ticks in range
    week = await user.ok("GET", url, params={"symbol": "EUR/USD", "timeframe": "1w"})
    assert [b["timestamp"] for b in week["items"]] == [at(-9 * 3600)]  # Monday 00:00 UTC

    # Stored bars of a timeframe win over building.
    bar = {"symbol": "EUR/USD", "timeframe": "5m", "timestamp": at(0), "open": "1", "high": "2"}
    await user.ok("POST", url, json={"bars": [{**bar, "low": "0.5", "close": "1.5"}]})
    stored = await user.ok("GET", url, params={"symbol": "EUR/USD", "timeframe": "5m"})
    assert stored["built"] is False and [b["close"] for b in stored["items"]] == ["1.5"]
    assert stored["items"][0]["volume"] == "0"


async def test_history_refuses_what_it_cannot_answer(user: Actor, other_user: Actor) -> None:
    dc = await user.data_connection()
    url = f"/api/v1/data-connections/{dc['id']}/market-data"
    for params in (
        {},
        {"symbol": "EUR USD"},
        {"symbol": "EUR/USD", "timeframe": "2x"},
        {"symbol": "EUR/USD", "since": "0"},
        {"symbol": "EUR/USD", "limit": 501},
        {"symbol": "EUR/USD", "format": "xml"},
    ):
        assert (await user.get(url, params=params)).status_code == 422, params
    backwards = await user.get(url, params={"symbol": "EUR/USD", "since": at(60), "until": at(0)})
    assert backwards.status_code == 422 and backwards.json()["code"] == "invalid_range"
    month = await user.get(url, params={"symbol": "EUR/USD", "timeframe": "1M"})
    assert month.status_code == 422 and month.json()["code"] == "timeframe_not_buildable"
    # Another owner's data connection does not exist for this key.
    for path in ("", "/latest"):
        theirs = await other_user.get(f"{url}{path}", params={"symbol": "EUR/USD"})
        assert theirs.status_code == 404 and theirs.json()["code"] == "not_found"
    assert (await other_user.post(f"/api/v1/data-connections/{dc['id']}/test")).status_code == 404


def test_periods_are_aligned_to_the_epoch_and_weeks_to_monday() -> None:
    moment = datetime(2026, 2, 4, 13, 37, 42, 500000, tzinfo=UTC)  # a Wednesday
    assert bars.period_start(moment, "1m") == datetime(2026, 2, 4, 13, 37, tzinfo=UTC)
    assert bars.period_start(moment, "15m") == datetime(2026, 2, 4, 13, 30, tzinfo=UTC)
    assert bars.period_start(moment, "4h") == datetime(2026, 2, 4, 12, 0, tzinfo=UTC)
    assert bars.period_start(moment, "1d") == datetime(2026, 2, 4, tzinfo=UTC)
    assert bars.period_start(moment, "1w") == datetime(2026, 2, 2, tzinfo=UTC)  # Monday
    assert bars.seconds("1M") is None and bars.seconds("tick") is None
    built = bars.build(
        [("A/B", moment, Decimal("2")), ("A/B", moment, Decimal("1")), ("A/B", moment, Decimal(3))],
        "1m",
    )
    assert [(b.open, b.high, b.low, b.close, b.ticks) for b in built] == [
        (Decimal(2), Decimal(3), Decimal(1), Decimal(3), 3)
    ]
