"""A signal on each of its targets: netting first (what is held the other way), then the
precheck, the venue's quote (the only I/O) and the pure decision of the entry, concurrently
under a bound. Every failure on one target is that target's refusal; it never reaches the
others."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from execution_service import observability
from execution_service.context import AppContext
from execution_service.enums import MarketType
from execution_service.exchanges.base import ExchangeAdapter, Market, Quotes
from execution_service.orders import entries
from execution_service.signals.decision import (
    Account,
    Decision,
    Quote as VenueQuote,
    Target,
    decide,
    may_reverse,
    precheck,
)
from execution_service.signals.netting import NetClose, Netting, net
from execution_service.signals.quotes import quote
from execution_service.signals.schemas import SignalCreate
from execution_service.signals.sizing import Rejection, Skip


@dataclass(frozen=True)
class Decided:
    """One target's outcome: the positions the other way it closes, and its entry (None when
    netting closes and nothing opens)."""

    target: Target
    entry: entries.EntryOrder | None
    equity: Decimal = Decimal(0)  # the account's, as the entry was sized against
    closes: tuple[NetClose, ...] = ()
    market: Market | None = None  # the symbol's market on the target's venue, where quoted
    adapter: ExchangeAdapter | None = None
    held: Decimal | None = None  # spot: the base asset held free (what netting can sell)
    symbol: str | None = None  # as this account trades it (a follower's map), if not the signal's


async def decide_all(
    ctx: AppContext,
    body: SignalCreate,
    targets: Sequence[Target],
    accounts: dict[int, Account],
    simulated: dict[int, Quotes],
) -> list[Decided]:
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)

    async def one(target: Target) -> Decided:
        observability.connection_id.set(target.conn.id)
        account = accounts.get(target.conn.id, Account())
        netting = net(account.opposite, body.quantity, may_reverse(target))
        if target.conn.close_only:  # closing trades only: netting closes, nothing opens
            if not netting.closes:
                return skipped(body, target, Skip("close_only", "the account is close-only"))
            netting = replace(netting, opens=False)
        if target.caps.simulated:  # its quote was read in bulk: nothing to wait for
            return await _one(ctx, body, target, account, netting, simulated.get(target.conn.id))
        async with bound:
            return await _one(ctx, body, target, account, netting, None)

    # Venues that answer over the network: a task each (gather), with its own copy of the log
    # context. Simulated ones answer from the bulk read without I/O: awaited in turn, without a
    # task each, which for 10,000 paper accounts costs more than their decisions.
    remote = [i for i, t in enumerate(targets) if not t.caps.simulated]
    out: list[Decided | None] = [None] * len(targets)
    asked = asyncio.gather(*(one(targets[i]) for i in remote))
    await asyncio.sleep(0)  # their requests leave before the simulated ones are decided
    token = observability.connection_id.set(None)
    try:
        for i, target in enumerate(targets):
            if target.caps.simulated:
                out[i] = await one(target)
    except BaseException:
        asked.cancel()
        raise
    finally:
        observability.connection_id.reset(token)
    for i, decided in zip(remote, await asked, strict=True):
        out[i] = decided
    return [d for d in out if d is not None]


def skipped(body: SignalCreate, target: Target, skip: Skip) -> Decided:
    """A target a follower's rules exclude: recorded `skipped` with why, never sent."""
    refusal = entries.Refusal(skip.code, skip.message, skipped=True)
    entry = entries.EntryOrder(
        target.conn,
        target.caps,
        Decimal(0),
        body.entry_price,
        None,
        refusal,
        symbol=body.symbol,
        direction=body.direction.value,
    )
    return Decided(target, entry, symbol=body.symbol)


async def _one(
    ctx: AppContext,
    body: SignalCreate,
    target: Target,
    account: Account,
    netting: Netting,
    simulated: Quotes | None,
) -> Decided:
    adapter, market, held = None, None, None
    decision = Decision()
    closes: tuple[NetClose, ...] = ()
    refusal = precheck(body, target, netting)
    if refusal is None:
        try:
            venue, adapter = await quote(ctx, body, target, simulated)
        except Rejection as exc:
            refusal = exc
        else:
            # The account can be traded: what is held the other way is closed, whatever
            # becomes of the reversal below.
            market, closes = venue.market, netting.closes
            held = _spot_held(target, venue)
            if netting.opens:
                decision = decide(body, target, venue, account, netting.quantity)
                refusal = decision.refusal
    if refusal is None and not netting.opens:
        return Decided(
            target,
            None,
            closes=closes,
            market=market,
            adapter=adapter,
            held=held,
            symbol=body.symbol,
        )
    order = decision.order
    if refusal is not None and order.price is None:
        order.price = body.entry_price
    skip = isinstance(refusal, Skip)
    entry = entries.EntryOrder(
        target.conn,
        target.caps,
        order.quantity,
        order.price,
        order.plan,
        entries.Refusal(refusal.code, refusal.message, skip) if refusal else None,
        adapter if refusal is None else None,
        symbol=body.symbol,
        direction=body.direction.value,
    )
    return Decided(target, entry, order.equity, closes, market, adapter, held, body.symbol)


def _spot_held(target: Target, venue: VenueQuote) -> Decimal | None:
    """What a real spot account holds of the base asset, from the quote's balances."""
    caps = target.caps
    if target.conn.market_type != MarketType.spot or caps.simulated or caps.positions_are_tickets:
        return None
    entry = venue.balances.get(venue.market.base)
    return entry.free if entry is not None else Decimal(0)
