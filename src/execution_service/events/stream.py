"""The live stream behind GET /api/v1/events: server-sent events read from the outbox table by
polling (simple, and it sees what every process commits), in id order, resumable by id.

Ids are allocated when a row is inserted but become visible when its transaction commits, so on
PostgreSQL event 11 can be readable while event 10 is not yet. A stream therefore never moves
past a hole in the ids until the hole is `GAP_GRACE_SECONDS` old: by then its transaction has
committed (and the event is sent) or it rolled back (and there is nothing to send).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import uvicorn

from execution_service.api_keys import keys
from execution_service.api_keys.repository import ApiKeyRepository
from execution_service.context import AppContext
from execution_service.events.repository import EventRepository
from execution_service.events.service import as_json
from execution_service.models import Event
from execution_service.principal import Principal

GAP_GRACE_SECONDS = 5.0
KEEPALIVE_SECONDS = 15.0
# How often an open stream checks that its key still stands (revocation ends it within 1 s).
REVOCATION_CHECK_SECONDS = 0.5
BATCH = 500


class StreamControl:
    """Shared by the streams of one app. uvicorn waits for open responses to finish before it
    runs the lifespan shutdown, so streams must end on their own once the server is stopping:
    every poll checks `closing`, which follows the server's own exit flag when it is watched."""

    def __init__(self) -> None:
        self.active = 0
        self.per_key: Counter[int | None] = Counter()
        self._closed = False
        self._server: uvicorn.Server | None = None

    def watch(self, server: uvicorn.Server) -> None:
        self._server = server

    def close(self) -> None:
        self._closed = True

    @property
    def closing(self) -> bool:
        return self._closed or (self._server is not None and self._server.should_exit)


class Cursor:
    """The last id a stream has passed, and when it first saw each hole in the ids after it."""

    def __init__(self, last_id: int) -> None:
        self.last_id = last_id
        self._holes: dict[int, float] = {}  # the id before a hole -> first seen (monotonic)

    def safe_upto(self, ids: Sequence[int], now: float) -> int:
        """The highest of the ascending `ids` (all > last_id) that can be passed now."""
        upto = self.last_id
        for i in ids:
            if i != upto + 1:
                seen = self._holes.setdefault(upto, now)
                if now - seen < GAP_GRACE_SECONDS:
                    break
            upto = i
        self._holes = {k: v for k, v in self._holes.items() if k >= upto}
        return upto


async def latest_id(ctx: AppContext) -> int:
    async with ctx.session_factory() as session:
        return await EventRepository(session).latest_id()


async def poll(ctx: AppContext, principal: Principal, cursor: Cursor) -> list[Event]:
    """The caller's events after the cursor, up to the first hole still in its grace time."""
    async with ctx.session_factory() as session:
        repo = EventRepository(session)
        ids = await repo.ids_after(cursor.last_id, BATCH)
        upto = cursor.safe_upto(ids, time.monotonic())
        if upto == cursor.last_id:
            return []
        rows = await repo.between(principal, cursor.last_id, upto)
    cursor.last_id = upto
    return list(rows)


def frame(event: Event) -> str:
    data = json.dumps(as_json(event), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"


async def stream(
    ctx: AppContext, principal: Principal, control: StreamControl, last_id: int
) -> AsyncIterator[str]:
    """Ends when the server shuts down, when its key is revoked (within a second), or at once
    when the key already has its cap of streams open; a client that goes away cancels it."""
    if control.per_key[principal.key_id] >= ctx.settings.sse_streams_per_key:
        yield ": too many streams for this key\n\n"  # raced past the router's check
        return
    control.active += 1
    control.per_key[principal.key_id] += 1
    try:
        # Sent at once, so the client sees the stream open; `retry` is its reconnect delay.
        yield "retry: 2000\n: connected\n\n"
        cursor = Cursor(last_id)
        quiet_since = checked_at = time.monotonic()
        while not control.closing:
            events = await poll(ctx, principal, cursor)
            for event in events:
                yield frame(event)
            now = time.monotonic()
            if events:
                quiet_since = now
            elif now - quiet_since >= KEEPALIVE_SECONDS:
                # Proxies drop idle connections, and a write is how a gone client is noticed.
                yield ": keepalive\n\n"
                quiet_since = now
            if now - checked_at >= REVOCATION_CHECK_SECONDS:
                checked_at = now
                if await revoked(ctx, principal):
                    yield "event: revoked\ndata: {}\n\n"
                    return
            await asyncio.sleep(ctx.settings.events_poll_seconds)
    finally:
        control.active -= 1
        control.per_key[principal.key_id] -= 1


async def revoked(ctx: AppContext, principal: Principal) -> bool:
    """Known revoked here (revoked in this process, or heard by NOTIFY); a process that is not
    listening asks the database."""
    if keys.known_revoked(principal.key_id):
        return True
    if keys.CACHE_SECONDS == keys.LISTENING_CACHE_SECONDS or principal.key_id is None:
        return False
    async with ctx.session_factory() as session:
        row = await ApiKeyRepository(session).get(principal.key_id)
    return row is None or row.revoked_at is not None
