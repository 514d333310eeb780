"""Webhook delivery: fan new outbox events out to the webhooks that match them, then send what is
due, signed, with exponential backoff between attempts, giving up after the last one.

Delivery is at least once: receivers deduplicate by `X-Event-Id`. A delivery is claimed with
`FOR UPDATE SKIP LOCKED` and leased (its next attempt moved past the request timeout) before the
request leaves, so other workers leave it alone, and one whose worker died is sent again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from execution_service import __version__
from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import utcnow
from execution_service.enums import DeliveryStatus
from execution_service.events.service import as_json
from execution_service.models import Webhook, WebhookDelivery
from execution_service.outbound.http import pinned_client
from execution_service.outbound.policy import UrlRefused, split
from execution_service.webhooks.repository import WebhookRepository
from execution_service.webhooks.service import matches, reveal_secret, sign

log = logging.getLogger(__name__)

BATCH = 100
CONCURRENCY = 10
MAX_BACKOFF_SECONDS = 3600
LEASE_MARGIN_SECONDS = 30


@dataclass
class DeliveryReport:
    dispatched: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Claim:
    delivery_id: int
    attempt: int
    hook: Webhook
    event_id: int
    event_type: str
    body: bytes


async def webhook_tick(ctx: AppContext) -> DeliveryReport:
    report = DeliveryReport()
    report.dispatched = await dispatch(ctx)
    claims = await _claim(ctx)
    if not claims:
        return report
    bound = asyncio.Semaphore(CONCURRENCY)
    timeout = httpx.Timeout(ctx.settings.webhook_timeout_seconds)
    # No redirects: the signed request goes to the URL the owner registered, nowhere else.
    async with pinned_client(ctx.settings.outbound, timeout=timeout) as http:

        async def one(claim: _Claim) -> None:
            async with bound:
                code, error = await _send(ctx, http, claim)
            await _finish(ctx, claim, code, error, report)

        await asyncio.gather(*(one(c) for c in claims))
    return report


async def dispatch(ctx: AppContext) -> int:
    """One delivery row per (new event, matching webhook); the event is then dispatched."""
    async with ctx.session_factory() as session:
        repo = WebhookRepository(session)
        batch = await repo.claim_undispatched(BATCH * 5)
        if not batch:
            return 0
        hooks = await repo.listening({e.user_id for e in batch if e.user_id is not None})
        now = utcnow()
        for event in batch:
            for hook in hooks:
                if matches(hook, event):
                    session.add(
                        WebhookDelivery(
                            event_id=event.id,
                            webhook_id=hook.id,
                            status=DeliveryStatus.pending,
                            attempts=0,
                            next_attempt_at=now,
                        )
                    )
            event.dispatched_at = now
        await session.commit()
        return len(batch)


async def _claim(ctx: AppContext) -> list[_Claim]:
    lease = timedelta(seconds=ctx.settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)
    async with ctx.session_factory() as session:
        now = utcnow()
        claims = []
        for delivery, event, hook in await WebhookRepository(session).claim_due(now, BATCH):
            delivery.attempts += 1
            delivery.next_attempt_at = now + lease
            body = json.dumps(as_json(event), separators=(",", ":")).encode()
            claims.append(_Claim(delivery.id, delivery.attempts, hook, event.id, event.type, body))
        await session.commit()
    return claims


async def _send(
    ctx: AppContext, http: httpx.AsyncClient, claim: _Claim
) -> tuple[int | None, str | None]:
    """(status code, error): error is None on a 2xx."""
    try:
        # Scheme and host rules; the address itself is checked (and pinned) by the transport.
        split(claim.hook.url)
    except UrlRefused as e:
        return None, f"refused: {e.reason}"
    try:
        secret = reveal_secret(ctx, claim.hook)
    except CredentialsError as exc:
        return None, f"the signing secret does not decrypt: {exc}"
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"execution-service/{__version__}",
        "X-Event-Id": str(claim.event_id),
        "X-Event-Type": claim.event_type,
        "X-Timestamp": timestamp,
        "X-Signature": sign(secret, timestamp, claim.body),
    }
    try:
        # Streamed and never read: the receiver's answer is its status code, whatever its size.
        async with http.stream("POST", claim.hook.url, content=claim.body, headers=headers) as r:
            code = r.status_code
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    return code, None if 200 <= code < 300 else f"HTTP {code}"


def backoff_seconds(base: float, attempts: int) -> float:
    return float(min(base * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS))


async def _finish(
    ctx: AppContext, claim: _Claim, code: int | None, error: str | None, report: DeliveryReport
) -> None:
    s = ctx.settings
    async with ctx.session_factory() as session:
        delivery = await WebhookRepository(session).lock_attempt(claim.delivery_id, claim.attempt)
        if delivery is None:  # the webhook was deleted, or another worker owns the row now
            return
        now = utcnow()
        delivery.status_code, delivery.error = code, error
        if error is None:
            delivery.status, delivery.delivered_at = DeliveryStatus.delivered, now
            report.delivered += 1
        elif delivery.attempts >= s.webhook_max_attempts:
            delivery.status = DeliveryStatus.failed
            report.failed += 1
        else:
            delay = backoff_seconds(s.webhook_retry_base_seconds, delivery.attempts)
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            report.retrying += 1
        await session.commit()
    if error is not None:
        report.errors.append(error)
        log.warning(
            "webhook %s, event %s, attempt %s: %s",
            claim.hook.id,
            claim.event_id,
            claim.attempt,
            error,
        )
