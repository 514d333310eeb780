"""A large fan-out's answer: the signal with the counts of its executions and only the first
ones inline (100 in its own answer, 20 per signal in the list), the rest paged at
`executions_url`, owner-scoped. The bounds are lowered here so that a few accounts exceed them."""

from __future__ import annotations

from typing import Any

import pytest

from execution_service.signals import service
from tests.factories import Actor


def test_the_documented_bounds() -> None:
    assert (service.EXECUTIONS_INLINE, service.EXECUTIONS_LISTED) == (100, 20)


async def _fan_out(user: Actor, accounts: int) -> tuple[dict[str, Any], list[int]]:
    preset = await user.preset(position_size_mode="fixed_quantity", position_size_value="1")
    dc = await user.data_connection()
    await user.push_price(dc["id"], "BTC/USDT", "100")
    body = {"preset_id": preset["id"], "data_connection_id": dc["id"]}
    ids = [(await user.paper_connection(**body))["id"] for _ in range(accounts - 1)]
    poor = await user.paper_connection(**body, paper={"balance": {"USDT": "5"}})
    ids.append(poor["id"])
    signal = await user.ok(
        "POST",
        "/api/v1/signals",
        201,
        json={"symbol": "BTC/USDT", "direction": "buy", "connection_ids": ids},
    )
    return signal, ids


async def test_a_fan_out_beyond_the_bound_answers_counts_and_pages_the_rest(
    user: Actor, other_user: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "EXECUTIONS_INLINE", 3)
    monkeypatch.setattr(service, "EXECUTIONS_LISTED", 2)
    signal, ids = await _fan_out(user, 5)
    assert signal["executions_total"] == 5
    assert signal["by_status"] == {"filled": 4, "rejected": 1}
    url = signal["executions_url"]
    assert url == f"/api/v1/signals/{signal['id']}/executions"
    assert len(signal["executions"]) == 3  # the first three, by execution_log_id

    page1 = await user.ok("GET", url, params={"limit": 2})
    page2 = await user.ok("GET", url, params={"limit": 2, "offset": 2})
    page3 = await user.ok("GET", url, params={"limit": 2, "offset": 4})
    assert [p["total"] for p in (page1, page2, page3)] == [5, 5, 5]
    every = page1["items"] + page2["items"] + page3["items"]
    assert [e["connection_id"] for e in every] == ids  # each account once, in order
    log_ids = [e["execution_log_id"] for e in every]
    assert log_ids == sorted(log_ids) and len(set(log_ids)) == 5
    assert every[:3] == signal["executions"]
    assert every[-1]["error_code"] == "insufficient_funds"

    # The signal's own read and the list: the same counts; the list embeds fewer.
    again = await user.ok("GET", f"/api/v1/signals/{signal['id']}")
    assert again == signal
    listed = await user.ok("GET", "/api/v1/signals", params={"limit": 1})
    (item,) = listed["items"]
    assert item["id"] == signal["id"] and item["executions"] == signal["executions"][:2]
    assert item["executions_total"] == 5 and item["by_status"] == signal["by_status"]

    # Someone else's signal is not there, paged or not.
    for path in (url, f"/api/v1/signals/{signal['id']}"):
        response = await other_user.get(path)
        assert response.status_code == 404, response.text
    missing = await user.get("/api/v1/signals/999999999/executions")
    assert missing.status_code == 404


async def test_a_replay_answers_the_same_counts_and_first_executions(
    user: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "EXECUTIONS_INLINE", 2)
    preset = await user.preset(position_size_mode="fixed_quantity", position_size_value="1")
    dc = await user.data_connection()
    await user.push_price(dc["id"], "BTC/USDT", "100")
    body = {"preset_id": preset["id"], "data_connection_id": dc["id"]}
    ids = [(await user.paper_connection(**body))["id"] for _ in range(3)]
    sent = {
        "external_id": "replay-bounded",
        "symbol": "BTC/USDT",
        "direction": "buy",
        "connection_ids": ids,
    }
    first = await user.ok("POST", "/api/v1/signals", 201, json=sent)
    replay = await user.ok("POST", "/api/v1/signals", 200, json=sent)
    assert replay == first
    assert first["executions_total"] == 3 and len(first["executions"]) == 2


async def test_paging_is_bounded_and_validated(user: Actor) -> None:
    signal, _ = await _fan_out(user, 2)
    url = signal["executions_url"]
    assert signal["executions_total"] == len(signal["executions"]) == 2
    empty = await user.ok("GET", url, params={"offset": 5})
    assert empty["items"] == [] and empty["total"] == 2
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "x"}):
        response = await user.get(url, params=params)
        assert response.status_code == 422, (params, response.text)
