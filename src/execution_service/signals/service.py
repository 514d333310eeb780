"""`POST /signals`: validate, store the signal once per (owner, external_id), then trade it on
every target connection concurrently under a bound, each independently of the others.

For each target: a precheck, the venue's quote (the only I/O), and a pure decision
(`decision.decide`). Then one commit of the signal and every target's entry (`pending`, or
`rejected` with its code) before any order leaves; then `orders.entries` sends them and records
the outcomes. Every failure on one connection ends as that connection's `rejected` (or
`pending`, when the outcome is unknown) execution log; it never reaches the other connections.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from execution_service import observability
from execution_service.analytics import service as analytics
from execution_service.context import AppContext
from execution_service.crypto import owner_aad
from execution_service.db import read
from execution_service.enums import CloseReason, OrderStatus, Protection
from execution_service.errors import NotFound
from execution_service.exchanges.base import Quotes
from execution_service.exchanges.catalog import capabilities
from execution_service.models import ExecutionConnection, ExecutionLog, Signal
from execution_service.orders import entries, protection
from execution_service.orders.exit_venues import ExitVenue
from execution_service.orders.exits import ExitRequest, claim_in, send_all
from execution_service.principal import Principal
from execution_service.signals.accounts import hold_limits, load_accounts, lock_limited
from execution_service.signals.decision import Account, Target
from execution_service.signals.fanout import Decided, decide_all, skipped
from execution_service.signals.follower import follow, variant_key
from execution_service.signals.repository import SignalRepository
from execution_service.signals.schemas import SignalCreate

# Executions a signal's own answer embeds (POST, GET one); GET /signals embeds fewer per signal.
# The rest are paged (`list_executions`): a fan-out to 10,000 accounts is not one answer.
EXECUTIONS_INLINE = 100
EXECUTIONS_LISTED = 20


@dataclass(frozen=True)
class Executions:
    """A signal's executions as answers show them: the first ones, and the counts of all."""

    shown: Sequence[ExecutionLog]
    total: int
    by_status: dict[str, int]

    @classmethod
    def of(cls, logs: Sequence[ExecutionLog], bound: int) -> Executions:
        by_status: dict[str, int] = {}
        for log in logs:
            by_status[str(log.status)] = by_status.get(str(log.status), 0) + 1
        return cls(logs[:bound], len(logs), by_status)


Replay = tuple[Signal, Executions]


@dataclass
class Group:
    """Targets that take the signal the same way (a follower's map or reverse may change its
    symbol or side), decided together: one symbol, one side."""

    body: SignalCreate
    targets: list[Target] = field(default_factory=list)
    accounts: dict[int, Account] = field(default_factory=dict)
    simulated: dict[int, Quotes] = field(default_factory=dict)
    decided: list[Decided] = field(default_factory=list)


@dataclass
class Loaded:
    """What a signal reads before it is stored, on the autocommit reader."""

    replay: Replay | None = None
    targets: list[Target] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    skipped: list[Decided] = field(default_factory=list)  # excluded by a follower's rules


async def create_signal(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    body: SignalCreate,
    received_at: datetime,
) -> tuple[Signal, Executions, bool]:
    """Returns the signal, its executions, and whether it was created now (False: a replay)."""
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
    for group in loaded.groups:
        group.decided = await decide_all(
            ctx, group.body, group.targets, group.accounts, group.simulated
        )
    signal = _signal(body, owner_key, user_id, admin_id, loaded.targets, received_at)
    # One commit: the signal, every target's entry log (`pending`, or `rejected` with its code)
    # and the exits of what netting closes, before any order is sent.
    session.add(signal)
    try:
        await session.flush()
        decided = list(loaded.skipped)
        await lock_limited(session, [g.decided for g in loaded.groups])
        for group in loaded.groups:
            b = group.body
            held = await hold_limits(
                session, b.symbol, b.direction, group.decided, signal.id, received_at
            )
            decided += held
        recorded = await _record(session, ctx, body, signal.id, decided, received_at)
        await session.commit()
        # The outcomes are recorded in transactions of their own, some on these very rows
        # (`orders.bulk`): this session must never flush them again.
        session.expunge_all()
    except IntegrityError:  # the same external_id raced in: the first one wins, this is a replay
        await session.rollback()
        replay = await _replay(session, principal, body, owner_key)
        if replay is None:
            raise
        return replay[0], replay[1], False
    observability.signal_id.set(signal.id)
    executions = await _send(ctx, decided, recorded, received_at)
    if _protected_here(decided) and any(e.filled_quantity > 0 for e in executions):
        protection.protect_soon(ctx)  # their SL/TP rest at the venue right after the fill
    ordered = sorted(executions, key=lambda e: e.id)
    return signal, Executions.of(ordered, EXECUTIONS_INLINE), True


def _protected_here(decided: Sequence[Decided]) -> bool:
    """Some target's venue holds SL/TP as orders of their own."""
    return any(
        d.adapter is not None and d.adapter.capabilities.protection != Protection.emulated
        for d in decided
    )


def _signal(
    body: SignalCreate,
    owner_key: str,
    user_id: int | None,
    admin_id: int | None,
    targets: Sequence[Target],
    received_at: datetime,
) -> Signal:
    return Signal(
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
        connection_ids=[t.conn.id for t in targets],
        created_at=received_at,
    )


@dataclass(frozen=True)
class Recorded:
    entries: list[ExecutionLog]  # one per decided entry, in order
    exits: list[ExecutionLog]  # netting's, claimed


async def _record(
    session: AsyncSession,
    ctx: AppContext,
    body: SignalCreate,
    signal_id: int,
    decided: Sequence[Decided],
    received_at: datetime,
) -> Recorded:
    """The entries' rows (refusals recorded once flushed, so their events name them) and the
    netting exits, claimed in this transaction: a position the monitor already closes is left
    to it."""
    shared = entries.Signal(
        signal_id, body.symbol, body.direction.value, body.order_type.value, received_at
    )
    orders = [d.entry for d in decided if d.entry is not None]
    # The day's first activity on an account opens its day at the equity measured for sizing,
    # before any order of this signal is sent (a refused entry was not necessarily measured).
    sized = {d.target.conn.id: d.equity for d in decided if d.entry and d.entry.refusal is None}
    await analytics.open_days(session, received_at.date(), sized)
    logs = await entries.insert_entries(session, ctx, shared, orders)
    requests = [
        ExitRequest(c.position_id, CloseReason.signal, c.quantity, c.whole, signal_id=signal_id)
        for d in decided
        for c in d.closes
    ]
    if not requests:
        return Recorded(logs, [])
    venues = {
        (d.target.conn.id, d.symbol or body.symbol): ExitVenue(
            d.market, d.held, d.target.caps.client_ids
        )
        for d in decided
        if d.closes
    }
    exits = await claim_in(session, ctx, requests, venues, skip_locked=False)
    return Recorded(logs, exits)


async def _send(
    ctx: AppContext, decided: Sequence[Decided], recorded: Recorded, received_at: datetime
) -> list[ExecutionLog]:
    """Netting exits first; then the entries, but not a reversal whose exits did not fill (it
    would hold both sides): that entry is refused unsent."""
    targets = {d.target.conn.id: d for d in decided}
    sent_exits = await send_all(
        ctx,
        recorded.exits,
        {i: d.adapter for i, d in targets.items()},
        {i: d.target.conn for i, d in targets.items()},
    )
    unfilled = {e.execution_connection_id for e in sent_exits if e.status != OrderStatus.filled}
    orders = [d.entry for d in decided if d.entry is not None]
    logs = await entries.refuse_unsent(
        ctx,
        recorded.entries,
        orders,
        unfilled,
        entries.Refusal("netting_exit_failed", "what is held the other way did not close"),
    )
    return [*sent_exits, *await entries.send_entries(ctx, logs, orders, received_at)]


async def _replay(
    session: AsyncSession, principal: Principal, body: SignalCreate, owner_key: str
) -> Replay | None:
    if body.external_id is None:
        return None
    existing = await SignalRepository(session).by_external_id(owner_key, body.external_id)
    if existing is None:
        return None
    return existing, await _executions(session, principal, existing.id)


async def _executions(session: AsyncSession, principal: Principal, signal_id: int) -> Executions:
    repo = SignalRepository(session)
    shown = await repo.entry_logs(principal, [signal_id], per_signal=EXECUTIONS_INLINE)
    by_status = (await repo.entry_counts(principal, [signal_id])).get(signal_id, {})
    return Executions(shown, sum(by_status.values()), by_status)


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
        # Real venues' kept balances, for sizing when a venue's request budget is short.
        await ctx.adapters.keep_balances(reads, [t.conn for t in targets if not t.caps.simulated])
        _group(loaded, body)
        for group in loaded.groups:
            b = group.body
            group.accounts = await load_accounts(
                reads, group.targets, b.symbol, b.direction, received_at
            )
            simulated = [t.conn for t in group.targets if t.caps.simulated]
            group.simulated = await ctx.adapters.simulated_quotes(reads, simulated, b.symbol)
        # The rows outlive this session (detached, every column loaded): read-only from here.
        return loaded


def _group(loaded: Loaded, body: SignalCreate) -> None:
    """Each target takes the signal as its follower rules say; those they exclude are
    recorded `skipped`, the others grouped by how they take it."""
    groups: dict[tuple[object, ...], Group] = {}
    for target in loaded.targets:
        followed = follow(body, target.preset)
        if followed.skip is not None:
            loaded.skipped.append(skipped(followed.body, target, followed.skip))
            continue
        key = variant_key(followed.body)
        groups.setdefault(key, Group(followed.body)).targets.append(target)
    loaded.groups = list(groups.values())


def _owned_by(conn: ExecutionConnection, user_id: int | None, admin_id: int | None) -> bool:
    """A user's rows are theirs by `user_id`; the platform's by `admin_id` (with no user)."""
    if user_id is not None:
        return conn.user_id == user_id
    return conn.user_id is None and conn.admin_id == admin_id


async def get_signal(
    session: AsyncSession, principal: Principal, signal_id: int
) -> tuple[Signal, Executions]:
    signal = await SignalRepository(session).get(principal, signal_id)
    if signal is None:
        raise NotFound(f"signal {signal_id} not found")
    return signal, await _executions(session, principal, signal.id)


async def list_executions(
    session: AsyncSession, principal: Principal, signal_id: int, limit: int, offset: int
) -> tuple[Sequence[ExecutionLog], int]:
    """A page of a signal's executions, in execution_log_id order, and how many it has."""
    repo = SignalRepository(session)
    if await repo.get(principal, signal_id) is None:
        raise NotFound(f"signal {signal_id} not found")
    counts = (await repo.entry_counts(principal, [signal_id])).get(signal_id, {})
    return await repo.entry_page(principal, signal_id, limit, offset), sum(counts.values())


async def list_signals(
    session: AsyncSession, principal: Principal, limit: int, offset: int
) -> tuple[Sequence[Signal], dict[int, Executions], int]:
    """A page of signals, each with its first EXECUTIONS_LISTED executions and the counts."""
    repo = SignalRepository(session)
    signals, total = await repo.list(principal, limit, offset)
    ids = [s.id for s in signals]
    shown: dict[int, list[ExecutionLog]] = {i: [] for i in ids}
    for entry in await repo.entry_logs(principal, ids, per_signal=EXECUTIONS_LISTED):
        shown[entry.signal_id or 0].append(entry)
    counts = await repo.entry_counts(principal, ids)
    return (
        signals,
        {i: Executions(shown[i], sum(counts.get(i, {}).values()), counts.get(i, {})) for i in ids},
        total,
    )
