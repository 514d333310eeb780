"""Webhook URLs cannot point the worker into its own network unless the operator allows it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from execution_service.context import AppContext
from execution_service.settings import Settings
from execution_service.webhooks.targets import check, refusal
from tests.events.helpers import deliver
from tests.events.receiver import Receiver
from tests.factories import Actor, paper_setup

FQ1 = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),  # cloud metadata
        ("fe80::1", "a link-local address"),
        ("10.1.2.3", "a private or reserved address"),
        ("172.16.0.1", "a private or reserved address"),
        ("192.168.1.1", "a private or reserved address"),
        ("fd00::1", "a private or reserved address"),
        ("0.0.0.0", "a private or reserved address"),  # noqa: S104
        ("240.0.0.1", "a private or reserved address"),
        ("224.0.0.1", "a multicast address"),
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
    ],
)
def test_refusal(address: str, refused: str | None) -> None:
    assert refusal(ipaddress.ip_address(address)) == refused


async def test_check_without_resolving_names() -> None:
    refuse = {"allow_private": False, "resolve": False}
    assert await check("http://127.0.0.1:8080/x", **refuse) == "127.0.0.1 is a loopback address"
    assert await check("https://[::1]/x", **refuse) == "::1 is a loopback address"
    assert await check("http://LOCALHOST./x", **refuse) == "localhost is a loopback name"
    assert await check("http://api.localhost/x", **refuse) == "api.localhost is a loopback name"
    assert await check("https://93.184.216.34/hook", **refuse) is None
    assert await check("https://hooks.example.com/x", **refuse) is None  # checked at delivery
    assert await check("http://127.0.0.1/x", allow_private=True) is None


@contextmanager
def private_networks(ctx: AppContext, settings: Settings, allowed: bool) -> Iterator[None]:
    """The running API and the worker read `ctx.settings`: flip the switch for one test."""
    ctx.settings = settings.model_copy(update={"webhook_allow_private_networks": allowed})
    try:
        yield
    finally:
        ctx.settings = settings


async def test_registration_and_delivery_refuse_private_targets(
    ctx: AppContext, settings: Settings, user: Actor
) -> None:
    async with Receiver() as rx:
        body = {"url": f"{rx.base_url}/hook", "event_types": ["order.filled"]}
        with private_networks(ctx, settings, allowed=False):
            response = await user.post("/api/v1/webhooks", json=body)
            assert response.status_code == 422, response.text
            assert response.json()["code"] == "webhook_target_refused"
            assert "loopback" in response.json()["detail"]
        # Registered while allowed, delivered after the operator turned it off: nothing is sent.
        hook = await user.ok("POST", "/api/v1/webhooks", 201, json=body)
        await (await paper_setup(user, price="100", **FQ1)).signal()
        with private_networks(ctx, settings, allowed=False):
            await deliver(ctx)
        page = await user.ok("GET", f"/api/v1/webhooks/{hook['id']}/deliveries")
        assert [(d["status"], d["status_code"]) for d in page["items"]] == [("pending", None)]
        assert "loopback" in page["items"][0]["error"]
        assert rx.on("/hook") == []
