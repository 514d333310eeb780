"""No tenant-given URL makes the service connect into its own network (issue #15).

Every outbound URL field (ccxt and mtapi execution connections, ccxt and mtapi data connections,
webhooks; on create and on PATCH) refuses every spelling of a private address at write time, and
a name that passed at write time but is rebound to loopback is refused at connect time, with
nothing sent. Redirects are never followed.
"""

from __future__ import annotations

from typing import Any

import pytest

from execution_service.context import AppContext
from execution_service.settings import Settings
from tests.events.receiver import Receiver
from tests.factories import Actor
from tests.fakes.binance import FakeBinance
from tests.outbound.conftest import Dns, redirector, strict

SPELLINGS = [
    "http://127.0.0.1:8080",
    "http://127.1",
    "http://2130706433",
    "http://0x7f000001",
    "http://0.0.0.0:5432",
    "http://[::1]:8000",
    "http://[::ffff:127.0.0.1]",
    "http://[2002:7f00:1::]",
    "http://[64:ff9b::7f00:1]",
    "http://169.254.169.254",
    "http://100.100.100.200",
    "http://10.0.0.5:5432",
    "http://172.16.0.1",
    "http://192.168.1.1",
    "http://192.0.0.8",
    "http://[fd00:ec2::254]",
    "http://localhost:8000",
    "http://api.localhost",
]
MT_LOGIN = {"user": "7001234", "password": "mt-Passw0rd!", "host": "mt4.test", "port": "443"}
CCXT_KEYS = {"api_key": "ssrf-api-key-0001", "api_secret": "ssrf-api-secret-0001"}


def bodies(url: str) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        "ccxt connection": (
            "/api/v1/connections",
            {"name": "x", "adapter": "ccxt", "exchange": "binance", "api_base_url": url,
             "credentials": CCXT_KEYS},
        ),
        "mtapi connection": (
            "/api/v1/connections",
            {"name": "x", "type": "fx", "adapter": "mtapi", "api_base_url": url,
             "credentials": MT_LOGIN},
        ),
        "ccxt data connection": (
            "/api/v1/data-connections",
            {"name": "x", "type": "ccxt", "exchange": "binance", "api_base_url": url,
             "symbols": ["BTC/USDT"]},
        ),
        "mtapi data connection": (
            "/api/v1/data-connections",
            {"name": "x", "type": "mtapi", "api_base_url": url, "symbols": ["EUR/USD"],
             "credentials": MT_LOGIN},
        ),
        "webhook": ("/api/v1/webhooks", {"url": f"{url}/hook", "event_types": ["order.filled"]}),
    }  # fmt: skip


FIELDS = list(bodies("http://x"))


@pytest.mark.parametrize("field", FIELDS)
async def test_every_spelling_is_refused_at_write_time(
    ctx: AppContext, settings: Settings, user: Actor, field: str
) -> None:
    with strict(ctx, settings):
        for url in SPELLINGS:
            path, body = bodies(url)[field]
            response = await user.post(path, json=body)
            assert response.status_code == 422, (url, response.text)
            problem = response.json()
            assert problem["code"] == "url_refused", (url, problem)
            assert response.headers["content-type"].startswith("application/problem+json")
        rows = await user.ok("GET", path)
        assert rows["total"] == 0  # nothing half-written


@pytest.mark.parametrize("kind", ["ccxt", "mtapi"])
async def test_a_patch_cannot_point_a_connection_inside(
    ctx: AppContext, settings: Settings, user: Actor, kind: str
) -> None:
    for path, body in (bodies("https://93.184.216.34")[f"{kind} connection"],):
        conn = await user.ok("POST", path, 201, json=body)
        with strict(ctx, settings):
            for url in SPELLINGS:
                response = await user.patch(f"{path}/{conn['id']}", json={"api_base_url": url})
                assert response.status_code == 422 and response.json()["code"] == "url_refused"
        stored = await user.ok("GET", f"{path}/{conn['id']}")
        assert stored["api_base_url"] == "https://93.184.216.34/"


async def test_a_name_rebound_to_loopback_reaches_nothing(
    ctx: AppContext, settings: Settings, user: Actor, fake_binance: FakeBinance, dns: Dns
) -> None:
    port = fake_binance.base_url.rsplit(":", 1)[1]
    dns.names["venue.test"] = ["93.184.216.34"]  # public when the URL is written
    with strict(ctx, settings):
        path, body = bodies(f"http://venue.test:{port}")["ccxt connection"]
        body["credentials"] = {
            "api_key": fake_binance.api_key,
            "api_secret": fake_binance.api_secret,
        }
        conn = await user.ok("POST", path, 201, json=body)
        dns.names["venue.test"] = ["127.0.0.1"]  # rebound before the first connection
        before = len(fake_binance.requests)
        response = await user.post(f"{path}/{conn['id']}/activate")
        assert response.status_code == 409, response.text  # its check failed
        assert "refused" in response.json()["detail"]
        assert len(fake_binance.requests) == before  # nothing reached the fake


async def test_a_webhook_rebound_to_loopback_is_not_delivered(
    ctx: AppContext, settings: Settings, user: Actor, dns: Dns
) -> None:
    from tests.events.helpers import deliver
    from tests.factories import paper_setup

    async with Receiver() as rx:
        port = rx.base_url.rsplit(":", 1)[1]
        dns.names["hooks.test"] = ["93.184.216.34"]
        with strict(ctx, settings):
            body = {"url": f"http://hooks.test:{port}/hook", "event_types": ["order.filled"]}
            hook = await user.ok("POST", "/api/v1/webhooks", 201, json=body)
            dns.names["hooks.test"] = ["127.0.0.1"]
            fq = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}
            await (await paper_setup(user, price="100", **fq)).signal()
            await deliver(ctx)
        page = await user.ok("GET", f"/api/v1/webhooks/{hook['id']}/deliveries")
        assert page["items"] and page["items"][0]["status"] == "pending"
        assert "loopback" in page["items"][0]["error"]
        assert rx.on("/hook") == []


async def test_redirects_are_not_followed(user: Actor) -> None:
    async with redirector() as r:
        for kind in ("ccxt", "mtapi"):
            path, body = bodies(r.base_url)[f"{kind} connection"]
            conn = await user.ok("POST", path, 201, json=body)
            response = await user.post(f"{path}/{conn['id']}/activate")
            assert response.status_code >= 400, response.text
            assert "landed" not in response.text and "{}" not in response.json()["detail"]
        assert r.landed == []
