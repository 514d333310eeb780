"""Failed authentication at scale (issue #15): 20+ bad keys from one address, whatever their
prefixes, lock out neither the admin's key nor a user's key from that same address."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from execution_service.api_keys import keys
from execution_service.context import AppContext
from execution_service.limits import FailedAuthLimiter
from tests.factories import Actor


@pytest.fixture
def default_auth_limit(ctx: AppContext) -> Iterator[AppContext]:
    """The production limit (20 in the window), not the suite's relaxed one."""
    saved = ctx.auth_limiter
    ctx.auth_limiter = FailedAuthLimiter(max_failures=20, window=60)
    yield ctx
    ctx.auth_limiter = saved


async def test_many_bad_keys_from_one_address_lock_out_no_valid_key(
    default_auth_limit: AppContext, client: httpx.AsyncClient, admin: Actor, user: Actor
) -> None:
    for _ in range(25):  # random prefixes: every one refused
        bad = {"Authorization": f"Bearer exs_{secrets.token_hex(4)}_{'x' * 32}"}
        assert (await client.get("/api/v1/me", headers=bad)).status_code == 401
    same = {"Authorization": f"Bearer exs_{secrets.token_hex(4)}_{'y' * 32}"}
    answers = [(await client.get("/api/v1/me", headers=same)).status_code for _ in range(25)]
    assert answers[:20] == [401] * 20 and set(answers[20:]) == {429}  # one prefix is slowed
    keys._cache.clear()  # each key is looked up afresh: no cache hit to hide behind
    # The admin's key and a user's key, from the same address, still work.
    assert (await admin.get("/api/v1/me")).status_code == 200
    assert (await user.get("/api/v1/me")).status_code == 200
