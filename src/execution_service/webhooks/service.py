"""Webhooks: create (the signing secret is generated, shown once and stored encrypted under the
credential key ring, bound to the owner like connection credentials), list, delete, and the
signature every delivery carries."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.context import AppContext
from execution_service.crypto import CredentialsError, KeyRing, load_key_ring, owner_aad
from execution_service.errors import NotFound, Unprocessable
from execution_service.models import Event, Webhook, WebhookDelivery
from execution_service.outbound.policy import UrlRefused, check_url
from execution_service.principal import Principal
from execution_service.webhooks.repository import WebhookRepository
from execution_service.webhooks.schemas import WebhookCreate

SECRET_PREFIX = "whsec_"  # noqa: S105 - a label, not a secret


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`X-Signature`: HMAC-SHA256 over `<X-Timestamp>.<body>`. The timestamp is signed so a
    captured delivery cannot be replayed later under a fresh one."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def matches(hook: Webhook, event: Event) -> bool:
    """A user's webhook hears that user's events; a platform one (no user_id) every event."""
    if hook.user_id is not None and hook.user_id != event.user_id:
        return False
    return hook.event_types is None or event.type in hook.event_types


def _encrypt(keyring: KeyRing, hook: Webhook, secret: str) -> None:
    token = keyring.encrypt({"secret": secret}, owner_aad(hook.user_id, hook.admin_id))
    hook.secret_encrypted, hook.secret_key_id = token.token, token.key_id


def reveal_secret(ctx: AppContext, hook: Webhook) -> str:
    """The plain secret; raises CredentialsError. A key id this process has not loaded yet
    (`rotate-keys --new-key` ran beside it) makes it read the ring again, once."""
    aad = owner_aad(hook.user_id, hook.admin_id)
    try:
        return ctx.keyring.decrypt(hook.secret_encrypted, aad)["secret"]
    except CredentialsError:
        if hook.secret_key_id in ctx.keyring.key_ids:
            raise
        ctx.keyring = load_key_ring(ctx.settings)
        return ctx.keyring.decrypt(hook.secret_encrypted, aad)["secret"]


async def create_webhook(
    session: AsyncSession, ctx: AppContext, principal: Principal, body: WebhookCreate
) -> tuple[Webhook, str]:
    user_id, admin_id = principal.owner_for_create(body.user_id, body.admin_id)
    try:
        await check_url(str(body.url), ctx.settings.outbound)
    except UrlRefused as e:
        raise Unprocessable(f"webhook url refused: {e.reason}", code=e.code) from None
    types = sorted({t.value for t in body.event_types}) if body.event_types else None
    hook = Webhook(user_id=user_id, admin_id=admin_id, url=str(body.url), event_types=types)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    _encrypt(ctx.keyring, hook, secret)
    session.add(hook)
    await session.commit()
    return hook, secret


async def list_webhooks(
    session: AsyncSession, principal: Principal, limit: int, offset: int
) -> tuple[Sequence[Webhook], int]:
    return await WebhookRepository(session).list(principal, limit, offset)


async def get_webhook(session: AsyncSession, principal: Principal, webhook_id: int) -> Webhook:
    hook = await WebhookRepository(session).get(principal, webhook_id)
    if hook is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return hook


async def delete_webhook(session: AsyncSession, principal: Principal, webhook_id: int) -> None:
    """Its deliveries go with it (pending ones are never sent)."""
    await session.delete(await get_webhook(session, principal, webhook_id))
    await session.commit()


async def list_deliveries(
    session: AsyncSession, principal: Principal, webhook_id: int, limit: int, offset: int
) -> tuple[Sequence[WebhookDelivery], int]:
    await get_webhook(session, principal, webhook_id)
    return await WebhookRepository(session).deliveries(webhook_id, limit, offset)


async def reencrypt_secrets(session: AsyncSession, ring: KeyRing) -> tuple[int, list[str]]:
    """For `rotate-keys`: every webhook secret under the primary key. Returns (done, failures)."""
    done, failures = 0, []
    for hook in await WebhookRepository(session).all():
        try:
            secret = ring.decrypt(hook.secret_encrypted, owner_aad(hook.user_id, hook.admin_id))
        except CredentialsError as exc:
            failures.append(f"webhook {hook.id}: {exc}")
            continue
        _encrypt(ring, hook, secret["secret"])
        done += 1
    await session.commit()
    return done, failures
