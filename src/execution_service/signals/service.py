"""`POST /signals`: validate, store the signal once per (owner, external_id), then run it on every
target connection concurrently under a bound, each independently of the others."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service import observability
from execution_service.auth import Principal
from execution_service.context import AppContext
from execution_service.crypto import owner_aad
from execution_service.errors import NotFound
from execution_service.models import ExecutionConnection, ExecutionLog, Signal, TradingPreset
from execution_service.signals.execution import execute_on_connection
from execution_service.signals.repository import SignalRepository
from execution_service.signals.schemas import SignalCreate


async def create_signal(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    body: SignalCreate,
    received_at: datetime,
) -> tuple[Signal, Sequence[ExecutionLog], bool]:
    """Returns the signal, its entry logs, and whether it was created now (False: a replay)."""
    user_id, admin_id = principal.owner_for_create(body.user_id, body.admin_id)
    owner_key = owner_aad(user_id, admin_id)
    repo = SignalRepository(session)
    if body.external_id is not None:
        existing = await repo.by_external_id(owner_key, body.external_id)
        if existing is not None:
            return existing, await repo.entry_logs(principal, [existing.id]), False
    targets = await repo.targets(body.connection_ids, user_id, admin_id, principal)
    if body.connection_ids is not None:
        found = {
            conn.id for conn, _ in targets if principal.is_privileged or conn.user_id == user_id
        }
        missing = sorted(set(body.connection_ids) - found)
        if missing:
            raise NotFound(f"connections not found: {', '.join(map(str, missing))}")
    signal = Signal(
        owner_key=owner_key,
        user_id=user_id,
        admin_id=admin_id,
        external_id=body.external_id,
        symbol=body.symbol,
        direction=body.direction.value,
        order_type=body.order_type.value,
        entry_price=body.entry_price,
        sl_price=body.sl_price,
        tp_price=body.tp_price,
        take_profits=body.plan_take_profits(),
        quantity=body.quantity,
        connection_ids=[conn.id for conn, _ in targets],
        created_at=received_at,
    )
    session.add(signal)
    try:
        await session.commit()
    except IntegrityError:  # the same external_id raced in: the first one wins, this is a replay
        await session.rollback()
        assert body.external_id is not None
        existing = await repo.by_external_id(owner_key, body.external_id)
        if existing is None:
            raise
        return existing, await repo.entry_logs(principal, [existing.id]), False

    observability.signal_id.set(signal.id)
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)

    async def run(conn: ExecutionConnection, preset: TradingPreset | None) -> int:
        # Each run is a task of its own (gather), with its own copy of the log context.
        observability.connection_id.set(conn.id)
        async with bound:
            return await execute_on_connection(ctx, signal.id, body, conn, preset, received_at)

    await asyncio.gather(*(run(conn, preset) for conn, preset in targets))
    return signal, await repo.entry_logs(principal, [signal.id]), True


async def get_signal(
    session: AsyncSession, principal: Principal, signal_id: int
) -> tuple[Signal, Sequence[ExecutionLog]]:
    repo = SignalRepository(session)
    signal = await repo.get(principal, signal_id)
    if signal is None:
        raise NotFound(f"signal {signal_id} not found")
    return signal, await repo.entry_logs(principal, [signal.id])


async def list_signals(
    session: AsyncSession, principal: Principal, limit: int, offset: int
) -> tuple[Sequence[Signal], dict[int, list[ExecutionLog]], int]:
    repo = SignalRepository(session)
    signals, total = await repo.list(principal, limit, offset)
    by_signal: dict[int, list[ExecutionLog]] = {s.id: [] for s in signals}
    for entry in await repo.entry_logs(principal, list(by_signal)):
        by_signal[entry.signal_id or 0].append(entry)
    return signals, by_signal, total
