from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import replace
from datetime import datetime

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.models import Webhook
from execution_service.settings import Settings
from execution_service.workers.webhooks import dispatch, webhook_tick
from tests.events.helpers import deliver, make_due
from tests.events.receiver import Receiver
from tests.factories import Actor, paper_setup

FQ1 = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}
POSITIONS = ["position.opened", "position.closed"]


def _verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The recipe the README gives receivers."""
    signed = headers["x-timestamp"].encode() + b"." + body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["x-signature"], expected)


async def test_webhooks_are_owned_and_the_secret_is_shown_once(
    ctx: AppContext, user: Actor, other_user: Actor, admin: Actor
) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["position.closed"]}
    created = await user.ok("POST", "/api/v1/webhooks", 201, json=body)
    hook_id, secret = created["id"], created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert (created["user_id"], created["event_types"]) == (user.user_id, ["position.closed"])
    listed = await user.ok("GET", "/api/v1/webhooks")
    assert [h["id"] for h in listed["items"]] == [hook_id]
    assert "secret" not in listed["items"][0]
    assert "secret" not in await user.ok("GET", f"/api/v1/webhooks/{hook_id}")
    assert (await admin.ok("GET", f"/api/v1/webhooks/{hook_id}"))["user_id"] == user.user_id

    # Another owner: a 404 for every path, and an empty list.
    for method, suffix in (("GET", ""), ("GET", "/deliveries"), ("DELETE", "")):
        response = await other_user.request(method, f"/api/v1/webhooks/{hook_id}{suffix}")
        assert response.status_code == 404, (method, suffix)
    assert (await other_user.ok("GET", "/api/v1/webhooks"))["total"] == 0

    # Stored encrypted under the key ring, bound to the owner like connection credentials.
    async with ctx.session_factory() as session:
        row = await session.get(Webhook, hook_id)
    assert row is not None and secret not in row.secret_encrypted
    assert row.secret_encrypted.startswith(f"v1:{row.secret_key_id}:")
    assert ctx.keyring.decrypt(row.secret_encrypted, f"u:{user.user_id}") == {"secret": secret}

    for bad, status in (
        ({"url": "ftp://127.0.0.1/x"}, 422),
        ({"url": "not a url"}, 422),
        ({"url": "http://127.0.0.1/x", "event_types": ["order.cancelled"]}, 422),
        ({"url": "http://127.0.0.1/x", "event_types": []}, 422),
        ({"url": "http://127.0.0.1/x", "secret": "mine"}, 422),
        ({"url": "http://127.0.0.1/x", "user_id": other_user.user_id}, 403),
    ):
        assert (await user.post("/api/v1/webhooks", json=bad)).status_code == status, bad

    await user.ok("DELETE", f"/api/v1/webhooks/{hook_id}", 204)
    assert (await user.get(f"/api/v1/webhooks/{hook_id}")).status_code == 404


async def test_deliveries_are_signed_and_retried_with_backoff_until_accepted(
    ctx: AppContext, user: Actor, other_user: Actor
) -> None:
    async with Receiver() as rx:
        body = {"url": f"{rx.base_url}/fail/4", "event_types": POSITIONS}
        hook = await user.ok("POST", "/api/v1/webhooks", 201, json=body)
        deliveries = f"/api/v1/webhooks/{hook['id']}/deliveries"
        acct = await paper_setup(user, price="100", **FQ1)
        position_id = (await acct.signal())["executions"][0]["position_id"]
        await acct.price("110")
        closed = (await user.ok("POST", f"/api/v1/positions/{position_id}/close"))["position"]
        other = await paper_setup(other_user, price="100", **FQ1)
        await other.signal()  # another owner's events never reach this webhook

        base = ctx.settings.webhook_retry_base_seconds
        for attempt in (1, 2):  # refused twice each (500): the wait doubles
            await deliver(ctx)
            page = await user.ok("GET", deliveries)
            assert page["total"] == 2
            for d in page["items"]:
                assert (d["status"], d["attempts"], d["status_code"], d["error"]) == (
                    "pending",
                    attempt,
                    500,
                    "HTTP 500",
                )
                wait = (datetime.fromisoformat(d["next_attempt_at"]) - utcnow()).total_seconds()
                assert base * 2 ** (attempt - 1) - 5 < wait <= base * 2 ** (attempt - 1)
            await deliver(ctx)  # nothing is due before its time
            assert len(rx.requests) == 2 * attempt
            await make_due(ctx, hook["id"])
        await deliver(ctx)
        page = await user.ok("GET", deliveries)
        assert [
            (d["status"], d["attempts"], d["status_code"], d["error"]) for d in page["items"]
        ] == [("delivered", 3, 204, None)] * 2
        assert all(d["delivered_at"] for d in page["items"])
        await deliver(ctx)
        assert len(rx.requests) == 6  # delivered is done: nothing more is sent

    for request in rx.requests:
        assert _verified(hook["secret"], request.headers, request.body)
        assert not _verified(hook["secret"], request.headers, request.body + b" ")
        assert abs(int(request.headers["x-timestamp"]) - time.time()) < 60
        event = json.loads(request.body)
        assert request.headers["x-event-id"] == str(event["id"])
        assert request.headers["x-event-type"] == event["type"]
        assert request.headers["content-type"] == "application/json"
        assert (event["user_id"], event["data"]["position_id"]) == (user.user_id, position_id)
    final = {json.loads(r.body)["type"]: json.loads(r.body) for r in rx.requests[-2:]}
    assert set(final) == set(POSITIONS)
    assert final["position.opened"]["id"] < final["position.closed"]["id"]
    data = final["position.closed"]["data"]
    assert (data["pnl"], data["close_price"], data["closed_reason"]) == (
        closed["pnl"],
        closed["close_price"],
        "manual",
    )
    assert isinstance(data["quantity"], str) and isinstance(data["fees"], str)


async def test_delivery_gives_up_after_the_last_attempt(
    ctx: AppContext, settings: Settings, user: Actor
) -> None:
    quick = replace(
        ctx,
        settings=settings.model_copy(
            update={"webhook_max_attempts": 3, "webhook_retry_base_seconds": 0}
        ),
    )
    async with Receiver() as rx:
        body = {"url": f"{rx.base_url}/down", "event_types": ["order.filled"]}
        hook = await user.ok("POST", "/api/v1/webhooks", 201, json=body)
        await (await paper_setup(user, price="100", **FQ1)).signal()
        for _ in range(5):
            await deliver(quick)
        page = await user.ok("GET", f"/api/v1/webhooks/{hook['id']}/deliveries")
        assert [(d["status"], d["attempts"], d["status_code"]) for d in page["items"]] == [
            ("failed", 3, 503)
        ]
        assert len(rx.on("/down")) == 3


async def test_two_workers_never_send_one_delivery_twice(
    ctx: AppContext, settings: Settings, user: Actor
) -> None:
    # Its own engine and pool, as another worker process would have.
    second = AppContext.create(settings, ctx.keyring)
    try:
        async with Receiver() as rx:
            body = {"url": f"{rx.base_url}/ok", "event_types": ["order.filled"]}
            await user.ok("POST", "/api/v1/webhooks", 201, json=body)
            acct = await paper_setup(user, price="100", **FQ1)
            for _ in range(3):
                await acct.signal()
            while await dispatch(ctx):
                pass
            await asyncio.gather(webhook_tick(ctx), webhook_tick(second), webhook_tick(ctx))
            ids = [json.loads(r.body)["id"] for r in rx.on("/ok")]
            assert len(ids) == 3 and len(set(ids)) == 3
    finally:
        await second.aclose()
