"""`POST /signals`: validate, store the signal once per (owner, external_id), then trade it on
every target connection concurrently under a bound, each independently of the others.

For each target: a precheck, the venue's quote (the only I/O), and a pure decision
(`decision.decide`). Then one commit of the signal and every target's entry (`pending`, or
`rejected` with its code) before any order leaves; then `orders.entries` sends them and records
the outcomes. Every failure on one connection ends as that connection's `rejected` (or
`pending`, when the outcome is unknown) execution log; it never reaches the other connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from execution_service import observability
from execution_service.context import AppContext
from execution_service.crypto import owner_aad
from execution_service.db import read
from execution_service.errors import NotFound
from execution_service.exchanges.base import Quotes
from execution_service.exchanges.registry import capabilities
from execution_service.models import ExecutionConnection, ExecutionLog, Signal
from execution_service.orders import entries
from execution_service.orders.repository import OrderRepository
from execution_service.positions.repository import PositionRepository
from execution_service.principal import Principal
from execution_service.signals.decision import (
    Account,
    Decision,
    Target,
    decide,
    has_limits,
    precheck,
    recheck,
)
from execution_service.signals.quotes import quote
from execution_service.signals.repository import SignalRepository
from execution_service.signals.schemas import SignalCreate
from execution_service.signals.sizing import Rejection

Replay = tuple[Signal, Sequence[ExecutionLog]]


@dataclass
class Loaded:
    """What a signal reads before it is stored, on the autocommit reader."""

    replay: Replay | None = None
    targets: list[Target] = field(default_factory=list)
    accounts: dict[int, Account] = field(default_factory=dict)
    simulated: dict[int, Quotes] = field(default_factory=dict)


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
    loaded = await read(
        ctx.reader,
        lambda conn: _load(ctx, conn, principal, body, (user_id, admin_id), owner_key, received_at),
    )
    if loaded.replay is not None:
        return loaded.replay[0], loaded.replay[1], False
    decided = await _decide_all(ctx, body, loaded)
    orders = [order for order, _ in decided]
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
        connection_ids=[t.conn.id for t in loaded.targets],
        created_at=received_at,
    )
    # One commit: the signal and every target's entry log (`pending`, or `rejected` with its
    # code), before any order is sent.
    session.add(signal)
    try:
        await session.flush()
        shared = entries.Signal(
            signal.id, body.symbol, body.direction.value, body.order_type.value, received_at
        )
        orders = await _hold_limits(session, body, loaded.targets, decided, signal.id, received_at)
        logs = entries.new_entries(ctx, shared, orders)
        session.add_all(logs)
        await session.flush()
        entries.record_refusals(logs, orders)
        await session.commit()
    except IntegrityError:  # the same external_id raced in: the first one wins, this is a replay
        await session.rollback()
        replay = await _replay(session, principal, body, owner_key)
        if replay is None:
            raise
        return replay[0], replay[1], False
    observability.signal_id.set(signal.id)
    recorded = await entries.send_entries(ctx, logs, orders, received_at)
    return signal, sorted(recorded, key=lambda e: e.id), True


async def _decide_all(
    ctx: AppContext, body: SignalCreate, loaded: Loaded
) -> list[tuple[entries.EntryOrder, Decimal]]:
    """Each target's entry, and the equity it was sized against."""
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)

    async def one(target: Target) -> tuple[entries.EntryOrder, Decimal]:
        # Each run is a task of its own (gather), with its own copy of the log context.
        observability.connection_id.set(target.conn.id)
        async with bound:
            adapter = None
            decision = Decision()
            refusal = precheck(body, target)
            if refusal is None:
                try:
                    venue, adapter = await quote(
                        ctx, body, target, loaded.simulated.get(target.conn.id)
                    )
                except Rejection as exc:
                    refusal = exc
                else:
                    account = loaded.accounts.get(target.conn.id, Account())
                    decision = decide(body, target, venue, account)
                    refusal = decision.refusal
        order = decision.order
        if refusal is not None and order.price is None:
            order.price = body.entry_price
        entry = entries.EntryOrder(
            target.conn,
            target.caps,
            order.quantity,
            order.price,
            order.plan,
            entries.Refusal(refusal.code, refusal.message) if refusal else None,
            adapter if refusal is None else None,
        )
        return entry, order.equity

    return list(await asyncio.gather(*(one(t) for t in loaded.targets)))


async def _hold_limits(
    session: AsyncSession,
    body: SignalCreate,
    targets: Sequence[Target],
    decided: Sequence[tuple[entries.EntryOrder, Decimal]],
    signal_id: int,
    received_at: datetime,
) -> list[entries.EntryOrder]:
    """In the transaction that records the entries: lock the accounts whose presets limit
    positions or the day's loss, count again what they hold and what is still in flight (other
    signals' pending and resting entries, committed before the lock was granted), and refuse
    what the limits no longer allow. The lock is held only until this commit, never while an
    order is in flight."""
    orders = [order for order, _ in decided]
    limited = [
        i
        for i, (target, order) in enumerate(zip(targets, orders, strict=True))
        if order.refusal is None and has_limits(target.preset)
    ]
    if not limited:
        return orders
    await OrderRepository(session).lock_accounts([targets[i].conn.id for i in limited])
    accounts = await _accounts(
        session, [targets[i] for i in limited], body.symbol, received_at, signal_id
    )
    for i in limited:
        target = targets[i]
        account = accounts.get(target.conn.id, Account())
        refusal = recheck(target, account, decided[i][1])
        if refusal is not None:
            orders[i] = replace(
                orders[i], refusal=entries.Refusal(refusal.code, refusal.message), adapter=None
            )
    return orders


async def _replay(
    session: AsyncSession, principal: Principal, body: SignalCreate, owner_key: str
) -> Replay | None:
    if body.external_id is None:
        return None
    repo = SignalRepository(session)
    existing = await repo.by_external_id(owner_key, body.external_id)
    if existing is None:
        return None
    return existing, await repo.entry_logs(principal, [existing.id])


async def _load(
    ctx: AppContext,
    conn: AsyncConnection,
    principal: Principal,
    body: SignalCreate,
    owner: tuple[int | None, int | None],
    owner_key: str,
    received_at: datetime,
) -> Loaded:
    """A replay (the stored signal and its entry logs), or the targets and their account
    inputs. Raises NotFound for named connections not found."""
    user_id, admin_id = owner
    async with AsyncSession(bind=conn, expire_on_commit=False) as reads:
        replay = await _replay(reads, principal, body, owner_key)
        if replay is not None:
            return Loaded(replay=replay)
        rows = await SignalRepository(reads).targets(
            body.connection_ids, user_id, admin_id, principal
        )
        if body.connection_ids is not None:
            # A signal with an owner trades only that owner's accounts; a platform signal (an
            # admin or service key naming no owner) may name any (a copy-trading fan-out).
            platform = principal.is_privileged and user_id is None and admin_id is None
            found = {c.id for c, _ in rows if platform or _owned_by(c, user_id, admin_id)}
            missing = sorted(set(body.connection_ids) - found)
            if missing:
                raise NotFound(f"connections not found: {', '.join(map(str, missing))}")
        targets = [
            Target(c, preset, capabilities(c.adapter, c.exchange, c.market_type))
            for c, preset in rows
        ]
        loaded = Loaded(targets=targets)
        loaded.accounts = await _accounts(reads, targets, body.symbol, received_at)
        simulated = [t.conn for t in targets if t.caps.simulated]
        loaded.simulated = await ctx.adapters.simulated_quotes(reads, simulated, body.symbol)
        # The rows outlive this session (detached, every column loaded): read-only from here.
        return loaded


def _owned_by(conn: ExecutionConnection, user_id: int | None, admin_id: int | None) -> bool:
    """A user's rows are theirs by `user_id`; the platform's by `admin_id` (with no user)."""
    if user_id is not None:
        return conn.user_id == user_id
    return conn.user_id is None and conn.admin_id == admin_id


async def _accounts(
    session: AsyncSession,
    targets: Sequence[Target],
    symbol: str,
    received_at: datetime,
    excluding_signal: int | None = None,
) -> dict[int, Account]:
    """Positions held (and entries that may still open one) and today's realised PnL, only
    where a preset limits them: a few queries for all targets."""
    positions = PositionRepository(session)
    counted = [
        t.conn.id
        for t in targets
        if t.preset is not None
        and (t.preset.max_positions is not None or t.preset.max_positions_per_symbol is not None)
    ]
    held = await positions.open_counts(counted, symbol)
    flying = await OrderRepository(session).entries_in_flight(counted, symbol, excluding_signal)
    midnight = datetime.combine(received_at.date(), time.min, tzinfo=received_at.tzinfo)
    limited = [
        t.conn.id
        for t in targets
        if t.preset is not None and t.preset.max_daily_loss_percent is not None
    ]
    realized = await positions.realized_since(limited, midnight)
    accounts: dict[int, Account] = {}
    for conn_id in set(held) | set(flying) | set(realized):
        total, for_symbol = held.get(conn_id, (0, 0))
        pending, pending_here = flying.get(conn_id, (0, 0))
        loss = realized.get(conn_id, Decimal(0))
        accounts[conn_id] = Account(total + pending, for_symbol + pending_here, loss)
    return accounts


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
