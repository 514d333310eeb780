"""Webhook URLs cannot point the worker into its own network unless the operator allows it (the
address rules themselves are tested in tests/outbound/)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from execution_service.context import AppContext
from execution_service.settings import Settings
from tests.events.helpers import deliver
from tests.events.receiver import Receiver
from tests.factories import Actor, paper_setup

FQ1 = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}


@contextmanager
def private_networks(ctx: AppContext, settings: Settings, allowed: bool) -> Iterator[None]:
    """The running API and the worker read `ctx.settings`: flip the switch for one test."""
    ctx.settings = settings.model_copy(update={"outbound_allow_private": allowed})
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
            assert response.json()["code"] == "url_refused"
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
