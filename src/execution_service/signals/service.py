"""`POST /signals`: validate, store the signal once per (owner, external_id), then run it on every
target connection concurrently under a bound, each independently of the others."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from execution_service import observability
from execution_service.context import AppContext
from execution_service.crypto import owner_aad
from execution_service.db import read
from execution_service.errors import NotFound
from execution_service.exchanges.registry import capabilities
from execution_service.logs import service as logs
from execution_service.models import ExecutionLog, Signal
from execution_service.principal import Principal
from execution_service.signals.execution import (
    AccountInputs,
    Order,
    Target,
    decide,
    entry_log,
    load_inputs,
    send_all,
)
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
    # The reads (replay check, targets, account inputs) go through the autocommit reader: no
    # transaction of their own (ping, BEGIN, COMMIT) before the signal's, and none is held while
    # exchanges answer. Each statement is its own snapshot, as under READ COMMITTED before.
    replay, plan, inputs = await read(
        ctx.reader,
        lambda conn: _load(ctx, conn, principal, body, user_id, admin_id, owner_key, received_at),
    )
    if replay is not None:
        return replay[0], replay[1], False
    repo = SignalRepository(session)
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)

    async def run(target: Target) -> None:
        # Each run is a task of its own (gather), with its own copy of the log context.
        observability.connection_id.set(target.conn.id)
        async with bound:
            await decide(ctx, body, target, inputs)

    await asyncio.gather(*(run(t) for t in plan))
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
        connection_ids=[t.conn.id for t in plan],
        created_at=received_at,
    )
    # One commit: the signal and every target's entry log (`pending`, or `rejected` with its
    # code), before any order is sent.
    session.add(signal)
    try:
        await session.flush()
        for t in plan:
            t.entry = entry_log(ctx, signal.id, body, t, received_at)
        session.add_all([t.entry for t in plan if t.entry is not None])
        await session.flush()
        for t in plan:
            if t.refusal is not None and t.entry is not None:
                # After the flush: the refusal's `order.rejected` event names the log's id.
                logs.reject(t.entry, t.refusal.code, t.refusal.message, adapter=t.conn.adapter)
        await session.commit()
    except IntegrityError:  # the same external_id raced in: the first one wins, this is a replay
        await session.rollback()
        if body.external_id is None:
            raise
        existing = await repo.by_external_id(owner_key, body.external_id)
        if existing is None:
            raise
        return existing, await repo.entry_logs(principal, [existing.id]), False

    observability.signal_id.set(signal.id)
    await send_all(ctx, plan, received_at)
    entries = sorted((t.entry for t in plan if t.entry is not None), key=lambda e: e.id)
    return signal, entries, True


async def _load(
    ctx: AppContext,
    conn: AsyncConnection,
    principal: Principal,
    body: SignalCreate,
    user_id: int | None,
    admin_id: int | None,
    owner_key: str,
    received_at: datetime,
) -> tuple[tuple[Signal, Sequence[ExecutionLog]] | None, list[Target], AccountInputs]:
    """What a signal reads before it is stored: a replay (the stored signal and its entry logs),
    or its targets and their account inputs. Raises NotFound for named connections not found."""
    async with AsyncSession(bind=conn, expire_on_commit=False) as reads:
        repo = SignalRepository(reads)
        if body.external_id is not None:
            existing = await repo.by_external_id(owner_key, body.external_id)
            if existing is not None:
                return (
                    (existing, await repo.entry_logs(principal, [existing.id])),
                    [],
                    AccountInputs(),
                )
        targets = await repo.targets(body.connection_ids, user_id, admin_id, principal)
        if body.connection_ids is not None:
            found = {c.id for c, _ in targets if principal.is_privileged or c.user_id == user_id}
            missing = sorted(set(body.connection_ids) - found)
            if missing:
                raise NotFound(f"connections not found: {', '.join(map(str, missing))}")
        plan = [
            Target(
                c,
                preset,
                Order(price=body.entry_price),
                capabilities(c.adapter, c.exchange, c.market_type),
            )
            for c, preset in targets
        ]
        inputs = await load_inputs(reads, ctx.adapters, plan, body.symbol, received_at)
        # The rows outlive this session (detached, every column loaded): read-only from here.
        return None, plan, inputs


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
