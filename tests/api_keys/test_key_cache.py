"""A key's cache entry expiring under load costs one lookup, not one per waiting request."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event

from execution_service.api_keys import keys as auth
from execution_service.context import AppContext
from tests.factories import Actor


async def test_concurrent_misses_share_one_lookup(admin: Actor, ctx: AppContext) -> None:
    user = await admin.new_user()
    lookups = 0

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal lookups
        lookups += "FROM api_keys" in statement

    event.listen(ctx.reader.sync_engine, "before_cursor_execute", count)
    try:
        for _ in range(2):  # a new key, then the same key once its entry expired
            for digest, (principal, _until) in list(auth._cache.items()):
                if principal.key_id == user.key_id:
                    auth._cache[digest] = (principal, 0.0)
            lookups = 0
            answers = await asyncio.gather(*(user.get("/api/v1/positions") for _ in range(12)))
            assert [a.status_code for a in answers] == [200] * 12
            assert lookups == 1
    finally:
        event.remove(ctx.reader.sync_engine, "before_cursor_execute", count)
    assert not auth._pending


async def test_a_revoked_key_stops_at_once(admin: Actor) -> None:
    user = await admin.new_user()
    assert (await user.get("/api/v1/positions")).status_code == 200
    await admin.ok("DELETE", f"/api/v1/api-keys/{user.key_id}")
    assert (await user.get("/api/v1/positions")).status_code == 401
