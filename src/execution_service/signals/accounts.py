"""What the database says about a signal's target accounts, and the limits held under their
lock: positions held, entries still in flight, today's realised PnL, and the positions the other
way in the symbol (netting)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, time
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.enums import Direction
from execution_service.orders import entries
from execution_service.orders.repository import OrderRepository
from execution_service.positions.repository import Exposure, PositionRepository
from execution_service.signals.decision import Account, Target, has_limits, recheck
from execution_service.signals.fanout import Decided
from execution_service.signals.netting import Held


async def load_accounts(
    session: AsyncSession,
    targets: Sequence[Target],
    symbol: str,
    direction: Direction,
    received_at: datetime,
    excluding_signal: int | None = None,
) -> dict[int, Account]:
    """Positions held (and entries that may still open one) and today's realised PnL where a
    preset limits them, and every target's open positions the other way in the symbol: a few
    queries for all targets."""
    positions = PositionRepository(session)
    counted = [
        t.conn.id
        for t in targets
        if t.preset is not None
        and (t.preset.max_positions is not None or t.preset.max_positions_per_symbol is not None)
    ]
    held = await OrderRepository(session).committed_to(counted, symbol, excluding_signal)
    midnight = datetime.combine(received_at.date(), time.min, tzinfo=received_at.tzinfo)
    limited = [
        t.conn.id
        for t in targets
        if t.preset is not None and t.preset.max_daily_loss_percent is not None
    ]
    every = [t.conn.id for t in targets]
    # What is held the other way (netting), and everything held (equity counts it). Read before
    # today's realised PnL, on purpose: the daily-loss rule adds the two, and a close committed
    # between the reads is then counted twice (still open here, realised there), never dropped
    # from both. For a loss limit, the first errs on the safe side.
    opposite, exposure = await positions.held_by(every, symbol, direction.opposite)
    realized = await OrderRepository(session).realized_since(limited, midnight)
    accounts: dict[int, Account] = {}
    for conn_id in set(held) | set(realized) | set(opposite) | set(exposure):
        total, for_symbol = held.get(conn_id, (0, 0))
        others = tuple(Held(pid, quantity) for pid, quantity in opposite.get(conn_id, []))
        open_ = exposure.get(conn_id, Exposure())
        accounts[conn_id] = Account(
            total,
            for_symbol,
            realized.get(conn_id, Decimal(0)),
            others,
            unrealized=open_.unrealized,
            held_value=open_.value,
        )
    return accounts


async def hold_limits(
    session: AsyncSession,
    symbol: str,
    direction: Direction,
    decided: Sequence[Decided],
    signal_id: int,
    received_at: datetime,
) -> list[Decided]:
    """In the transaction that records the entries: lock the accounts whose presets limit
    positions or the day's loss, count again what they hold and what is still in flight (other
    signals' pending and resting entries, committed before the lock was granted), and refuse
    what the limits no longer allow. The lock is held only until this commit, never while an
    order is in flight."""
    out = list(decided)
    limited = [i for i, d in enumerate(decided) if _limited(d)]
    if not limited:
        return out
    await OrderRepository(session).lock_accounts([decided[i].target.conn.id for i in limited])
    targets = [decided[i].target for i in limited]
    accounts = await load_accounts(session, targets, symbol, direction, received_at, signal_id)
    for i in limited:
        d = decided[i]
        assert d.entry is not None
        account = accounts.get(d.target.conn.id, Account())
        # What this signal closes the other way no longer counts against the reversal.
        closing = sum(1 for c in d.closes if c.whole)
        account = replace(account, open_positions=account.open_positions - closing)
        account = replace(account, open_for_symbol=account.open_for_symbol - closing)
        refusal = recheck(d.target, account, d.equity)
        if refusal is not None:
            refused = entries.Refusal(refusal.code, refusal.message)
            out[i] = replace(d, entry=replace(d.entry, refusal=refused, adapter=None))
    return out


def _limited(d: Decided) -> bool:
    return d.entry is not None and d.entry.refusal is None and has_limits(d.target.preset)


async def lock_limited(session: AsyncSession, groups: Sequence[Sequence[Decided]]) -> None:
    """Lock every account a signal's groups will check the limits of, all at once in id order,
    before any group does: two signals whose followers group their accounts differently still
    lock them in one order, and cannot deadlock."""
    ids = [d.target.conn.id for group in groups for d in group if _limited(d)]
    if ids:
        await OrderRepository(session).lock_accounts(ids)
