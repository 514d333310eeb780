"""No secret in any log line, in either log format, whichever client logged it (issue #15).

One full run per format through every adapter that talks to the outside: ccxt (the fake
Binance: activate, a signal with a stop, a close), mtapi (the fake gateway: Connect with the
password in its query, a session token on every call, a token expiry and reconnect) and a
webhook whose URL carries credentials in its user info and its path. Every record, at DEBUG,
goes through the service's own handler; the output is then searched for every secret.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from execution_service.context import AppContext
from execution_service.observability import handler, quiet_libraries, redact_every_record
from tests.events.helpers import deliver
from tests.events.receiver import Receiver
from tests.factories import Actor, paper_setup
from tests.fakes.binance import FakeBinance
from tests.fakes.mtapi import FakeMtapi
from tests.signals.test_ccxt_flow import ccxt_connection, signal
from tests.signals.test_mtapi_flow import CREDENTIALS as MT_LOGIN, fx_connection

HOOK_PASSWORD = "hook-Passw0rd-77"
HOOK_PATH_TOKEN = "xoxb-path-token-123456"


@contextmanager
def captured(fmt: str) -> Iterator[io.StringIO]:
    out = io.StringIO()
    root, ours = logging.getLogger(), logging.getLogger("execution_service")
    levels = (root.level, ours.level)
    log = handler(fmt, out)
    root.addHandler(log)
    root.setLevel(logging.DEBUG)
    ours.setLevel(logging.DEBUG)
    quiet_libraries(logging.DEBUG)  # what configure_logging does at this level
    redact_every_record()
    try:
        yield out
    finally:
        root.removeHandler(log)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_no_secret_in_any_log_line(
    ctx: AppContext, user: Actor, fake_binance: FakeBinance, fmt: str
) -> None:
    secrets = {fake_binance.api_key, fake_binance.api_secret, MT_LOGIN["password"]}
    secrets |= {HOOK_PASSWORD, HOOK_PATH_TOKEN, user.headers["Authorization"].split()[1]}
    with captured(fmt) as out:
        conn = await ccxt_connection(user, fake_binance)
        await signal(user, conn, sl_price="40000")
        for position in (await user.ok("GET", "/api/v1/positions"))["items"]:
            if position["status"] == "open" and position["connection_id"] == conn["id"]:
                await user.post(f"/api/v1/positions/{position['id']}/close")
        async with FakeMtapi(**MT_LOGIN) as gateway:  # type: ignore[arg-type]
            fx = await fx_connection(user, gateway)
            await user.ok("GET", f"/api/v1/connections/{fx['id']}/balance")
            secrets |= gateway.tokens
            gateway.expire_tokens()
            await user.ok("GET", f"/api/v1/connections/{fx['id']}/balance")
            secrets |= gateway.tokens
            await user.ok("DELETE", f"/api/v1/connections/{fx['id']}", 204)
        async with Receiver() as rx:
            url = rx.base_url.replace("://", f"://hooker:{HOOK_PASSWORD}@")
            body = {"url": f"{url}/hooks/{HOOK_PATH_TOKEN}", "event_types": ["order.filled"]}
            hook = await user.ok("POST", "/api/v1/webhooks", 201, json=body)
            secrets.add(hook["secret"])
            fq = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}
            await (await paper_setup(user, price="100", **fq)).signal()
            await deliver(ctx)
            assert rx.on(f"/hooks/{HOOK_PATH_TOKEN}"), "the webhook was delivered"
    text = out.getvalue()
    assert "HTTP" in text or "order" in text, "the run logged something"
    leaked = sorted(s for s in secrets if s and s in text)
    assert leaked == [], [line for line in text.splitlines() if any(s in line for s in leaked)][:5]
