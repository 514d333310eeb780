from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
import uvicorn

from execution_service.app import create_app
from execution_service.context import AppContext
from execution_service.events.stream import GAP_GRACE_SECONDS, Cursor, StreamControl
from execution_service.settings import Settings
from tests.events.helpers import sse_frames
from tests.factories import Actor, paper_setup

FQ1 = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}


async def test_the_stream_delivers_the_owners_events_in_order_and_resumes(
    base_url: str, user: Actor, other_user: Actor
) -> None:
    acct = await paper_setup(user, price="100", **FQ1)
    # Its own client: the suite's reads every response body whole, and a stream has no end.
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        client.stream("GET", "/api/v1/events", headers=user.headers) as mine,
        client.stream("GET", "/api/v1/events", headers=other_user.headers) as theirs,
    ):
        assert mine.status_code == 200
        assert mine.headers["content-type"].startswith("text/event-stream")
        assert mine.headers["cache-control"] == "no-cache"
        position_id = (await acct.signal())["executions"][0]["position_id"]
        await acct.price("110")
        await user.ok("POST", f"/api/v1/positions/{position_id}/close")

        seen: list[dict[str, str]] = []
        async with asyncio.timeout(20):
            async for frame in sse_frames(mine):
                seen.append(frame)
                if frame["event"] == "position.closed":
                    break
        with pytest.raises(TimeoutError):  # the other owner hears nothing of it
            async with asyncio.timeout(1):
                await anext(sse_frames(theirs))

    assert [f["event"] for f in seen] == ["position.opened", "order.filled", "position.closed"]
    ids = [int(f["id"]) for f in seen]
    assert ids == sorted(ids) and len(set(ids)) == 3
    events = [json.loads(f["data"]) for f in seen]
    for frame, event in zip(seen, events, strict=True):
        assert (event["id"], event["type"]) == (int(frame["id"]), frame["event"])
        assert event["user_id"] == user.user_id
    closed = events[-1]["data"]
    assert (closed["position_id"], closed["closed_reason"], closed["status"]) == (
        position_id,
        "manual",
        "closed",
    )
    assert isinstance(closed["pnl"], str) and closed["close_price"] == "110"

    # Reconnecting with Last-Event-ID resumes right after it, in the same order.
    resume = {**user.headers, "Last-Event-ID": seen[0]["id"]}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        client.stream("GET", "/api/v1/events", headers=resume) as again,
    ):
        async with asyncio.timeout(20):
            frames = sse_frames(again)
            replay = [await anext(frames), await anext(frames)]
        assert [f["id"] for f in replay] == [f["id"] for f in seen[1:]]
        assert (await client.get("/api/v1/events")).status_code == 401
        bad = {**user.headers, "Last-Event-ID": "soon"}
        assert (await client.get("/api/v1/events", headers=bad)).status_code == 422


def test_the_cursor_waits_at_a_hole_in_the_ids_for_its_grace_time() -> None:
    assert Cursor(10).safe_upto([11, 12, 13], now=100.0) == 13
    for late_commit in (True, False):
        cursor = Cursor(13)
        # 14 is allocated but not committed yet (or rolled back): 15 and 16 wait behind it.
        assert cursor.safe_upto([15, 16], now=100.0) == 13
        assert cursor.safe_upto([15, 16], now=100.0 + GAP_GRACE_SECONDS - 0.1) == 13
        if late_commit:  # it committed: all of them, in order
            assert cursor.safe_upto([14, 15, 16], now=101.0) == 16
        else:  # it never will: the stream moves on once the hole is old enough
            assert cursor.safe_upto([15, 16], now=100.0 + GAP_GRACE_SECONDS) == 16


async def test_streams_end_when_the_client_leaves_and_when_the_server_stops(
    settings: Settings, ctx: AppContext, user: Actor
) -> None:
    app = create_app(settings, ctx=ctx)
    control: StreamControl = app.state.streams
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    control.watch(server)  # as `serve` does
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    host, port = sock.getsockname()
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as http:
        async with http.stream("GET", "/api/v1/events", headers=user.headers) as response:
            assert (await anext(response.aiter_raw())).startswith(b"retry: 2000\n")
            assert control.active == 1
        async with asyncio.timeout(5):  # the client went away: its stream ends
            while control.active:
                await asyncio.sleep(0.05)

        async with http.stream("GET", "/api/v1/events", headers=user.headers) as response:
            chunks = response.aiter_raw()
            await anext(chunks)
            server.should_exit = True  # what SIGTERM / SIGINT do (uvicorn's handle_exit)
            async with asyncio.timeout(5):
                async for _ in chunks:
                    pass  # the server ends the stream: the response completes
    async with asyncio.timeout(10):
        await task  # and shutdown is not held up by it
    assert control.active == 0
