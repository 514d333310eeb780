"""Valid ISO 8601 times that leave datetime's range once in UTC are a 422 problem, never a 500, on
bars as on prices, for `until` as for `since`, and the connection stays open for the next request
(tests/test_small_rules.py holds prices and `since`)."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import Actor

EXTREMES = ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59Z"]


@pytest.mark.parametrize("moment", EXTREMES)
async def test_extreme_timestamps_are_422_everywhere(
    base_url: str, user: Actor, moment: str
) -> None:
    dc = await user.ok("POST", "/api/v1/data-connections", 201, json={"name": "feed"})
    ingest = f"/api/v1/data-connections/{dc['id']}/market-data"
    async with httpx.AsyncClient(base_url=base_url, headers=user.headers, timeout=10) as http:
        answers = [
            await http.post(
                ingest,
                json={"prices": [{"symbol": "BTC/USDT", "price": "1", "timestamp": moment}]},
            ),
            await http.post(
                ingest,
                json={
                    "bars": [
                        {
                            "symbol": "BTC/USDT",
                            "timeframe": "1m",
                            "timestamp": moment,
                            **dict.fromkeys(("open", "high", "low", "close"), "1"),
                        }
                    ]
                },
            ),
            await http.get("/api/v1/logs", params={"since": moment}),
            await http.get("/api/v1/logs", params={"until": moment}),
            await http.get(ingest, params={"symbol": "BTC/USDT", "since": moment}),
            await http.get("/api/v1/analytics/summary", params={"since": moment}),
        ]
        for answer in answers:
            assert answer.status_code == 422, (answer.request.url, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers.get("connection", "keep-alive") != "close"
        # The same connection still serves: keep-alive was not closed.
        assert (await http.get("/api/v1/me")).status_code == 200
