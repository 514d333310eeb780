"""API keys: generation, hashing, and the short-lived cache of validated keys.

Keys look like `exs_<prefix>_<secret>`. Only the prefix (to find the row) and a SHA-256 of the whole
key are stored; a key is random with 192 bits of entropy, so a fast hash is the right tool, and
the comparison is constant-time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from execution_service.api_keys.repository import ApiKeyRepository
from execution_service.context import AppContext
from execution_service.db import read
from execution_service.enums import Role
from execution_service.principal import Principal

KEY_PREFIX = "exs"


@dataclass(frozen=True)
class NewKey:
    prefix: str
    key: str
    key_hash: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> NewKey:
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(24)}"
    return NewKey(prefix=prefix, key=key, key_hash=hash_key(key))


def key_from_string(key: str) -> NewKey:
    """A key chosen by the operator (EXEC_BOOTSTRAP_ADMIN_KEY) must still have our shape."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 8 or len(parts[2]) < 24:
        raise ValueError("an API key must look like exs_<8 chars>_<at least 24 chars>")
    return NewKey(prefix=parts[1], key=key, key_hash=hash_key(key))


# Valid keys are remembered for a moment (by hash, never the key itself): a busy client then
# costs no key lookup per request. A revocation takes effect at once in the process that revokes;
# the others hear of it by PostgreSQL NOTIFY (`revocations.py`) and forget the key at once. A
# process that is not listening (SQLite, or its listener connection is down) keeps keys at most
# UNHEARD_CACHE_SECONDS, so a revocation reaches every process within a second either way.
LISTENING_CACHE_SECONDS = 5.0
UNHEARD_CACHE_SECONDS = 1.0
CACHE_SECONDS = UNHEARD_CACHE_SECONDS
_cache: dict[str, tuple[Principal, float]] = {}
# Key ids this process knows are revoked: open event streams check it on every poll.
_revoked: set[int] = set()


def listening(on: bool) -> None:
    """Whether this process hears revocations as they happen (sets how long keys are kept)."""
    global CACHE_SECONDS
    CACHE_SECONDS = LISTENING_CACHE_SECONDS if on else UNHEARD_CACHE_SECONDS
    if not on:
        _cache.clear()  # what was cached while listening may have been revoked unheard


def forget(key_id: int) -> None:
    _revoked.add(key_id)
    for digest, (principal, _) in list(_cache.items()):
        if principal.key_id == key_id:
            del _cache[digest]


def known_revoked(key_id: int | None) -> bool:
    return key_id is not None and key_id in _revoked


def cached(key: str) -> Principal | None:
    """The principal of a key validated less than CACHE_SECONDS ago, without the database."""
    entry = _cache.get(hash_key(key))
    if entry is not None and entry[1] > time.monotonic():
        return entry[0]
    return None


async def authenticate(session: AsyncSession, key: str) -> Principal | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    digest = hash_key(key)
    hit = cached(key)
    if hit is not None:
        return hit
    row = await ApiKeyRepository(session).active_by_prefix(parts[1])
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    principal = Principal(key_id=row.id, name=row.name, role=Role(row.role), user_id=row.user_id)
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[digest] = (principal, time.monotonic() + CACHE_SECONDS)
    return principal


# Cache misses in flight, by event loop and key hash: when a busy key's entry expires, the
# requests that arrive together share one lookup instead of each opening a connection for it.
_pending: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[Principal | None]] = {}


async def lookup_once(ctx: AppContext, key: str) -> Principal | None:
    slot = (asyncio.get_running_loop(), hash_key(key))
    pending = _pending.get(slot)
    if pending is None:
        pending = asyncio.ensure_future(_lookup(ctx, key))
        _pending[slot] = pending
        pending.add_done_callback(lambda _: _pending.pop(slot, None))
    # Shielded: a caller that goes away does not cancel the lookup the others wait for.
    return await asyncio.shield(pending)


async def _lookup(ctx: AppContext, key: str) -> Principal | None:
    """One statement on the read engine (autocommit, warm pool): no transaction, nothing held
    for the handler's own session (on SQLite every transaction holds the write lock)."""

    async def query(conn: AsyncConnection) -> Principal | None:
        async with AsyncSession(bind=conn) as session:
            return await authenticate(session, key)

    return await read(ctx.reader, query)
