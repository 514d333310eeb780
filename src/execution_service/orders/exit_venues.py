"""What an exit needs to know of its (connection, symbol) at the venue, and how much it sells.

An exit's quantity is rounded down to the market's amount step. A partial exit whose remainder
the venue would not take (under its minimum amount or notional) closes everything instead. On a
spot account the exit sells what is actually held: when the base asset held falls short of the
position by at most `tolerance` (fees in the base asset, rounding), it sells what is held.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.decimals import HUNDRED, round_down
from execution_service.enums import MarketType
from execution_service.exchanges.base import ExchangeAdapter, ExchangeError, Market
from execution_service.exchanges.budget import soon
from execution_service.exchanges.capabilities import ClientIdFormat
from execution_service.models import ExecutionConnection
from execution_service.orders.ids import READABLE
from execution_service.positions.repository import PositionLike


@dataclass(frozen=True)
class ExitVenue:
    market: Market | None = None  # None: unknown (the exit is sent as asked, and recorded)
    held: Decimal | None = None  # spot: the base asset the account holds free; else None
    client_ids: ClientIdFormat = READABLE


Venues = dict[tuple[int, str], ExitVenue]


@dataclass(frozen=True)
class ExitSize:
    quantity: Decimal
    full: bool


def size_exit(
    held_by_position: Decimal,
    requested: Decimal | None,
    full: bool,
    venue: ExitVenue,
    price: Decimal | None,
    tolerance_percent: Decimal,
) -> ExitSize:
    """Pure. `requested` None: all of it."""
    amount = held_by_position if requested is None else min(requested, held_by_position)
    market = venue.market
    if not full and market is not None:
        rest = held_by_position - amount
        value = rest * (price or 0) * (market.contract_size or 1)  # a contract's worth its size
        too_small = rest < (market.min_amount or 0) or (
            market.min_cost is not None and price is not None and value < market.min_cost
        )
        if too_small:  # the venue would not take what is left: it goes with this exit
            amount, full = held_by_position, True
    held = venue.held
    if held is not None and held < amount:
        shortfall = amount - held
        if shortfall <= amount * tolerance_percent / HUNDRED:
            amount = held  # sell what is there; the rest is recorded as dust
    step = market.amount_step if market is not None else None
    return ExitSize(round_down(amount, step), full)


# How long a batch of exits (the monitor's, a kill switch) waits for the venue's request budget
# to read what a spot account holds. Past it the exit sells the position's own quantity (which
# already nets a fee taken in the base asset): a crash through 1,000 Binance spot accounts' stops
# must not spend 20,000 weight, three minutes of the IP's budget, on reads before the exits.
HELD_WAIT_SECONDS = 0.25  # not money
# ... and for its answer: one account whose venue answers in seconds must not hold up every other
# account's exits in the batch (issue #20). A late answer still lands in the account's cache.
HELD_ANSWER_SECONDS = 0.5  # not money


async def look_up(
    ctx: AppContext, positions: Sequence[PositionLike], conns: dict[int, ExecutionConnection]
) -> tuple[dict[int, ExchangeAdapter], Venues]:
    """One adapter per connection and what each (connection, symbol) needs, every connection
    at once under the fan-out's bound. A connection without an adapter is left out: its exits
    are still claimed, and refused when sent."""
    adapters: dict[int, ExchangeAdapter] = {}
    venues: Venues = {}
    bound = asyncio.Semaphore(ctx.settings.signal_concurrency)
    keys = list(dict.fromkeys((p.execution_connection_id, p.symbol) for p in positions))

    async def one(key: tuple[int, str]) -> None:
        conn = conns[key[0]]
        caps = ctx.adapters.capabilities(conn)
        market, held = None, None  # unknown: the exit is still attempted and recorded
        async with bound:
            try:
                adapter = await ctx.adapters.for_connection(conn)
                adapters[conn.id] = adapter
                market = await adapter.market(key[1])
                # Within the budget's background share, leaving the rest to the exits.
                with soon(HELD_WAIT_SECONDS, fallback=True):
                    held = await _within(spot_held(adapter, conn, market), HELD_ANSWER_SECONDS)
            except (CredentialsError, ExchangeError):
                pass
        venues[key] = ExitVenue(market, held, caps.client_ids)

    # A simulated venue has no I/O to wait for and nothing held to read: no task each.
    simulated = [k for k in keys if ctx.adapters.capabilities(conns[k[0]]).simulated]
    for key in simulated:
        venues[key] = await _simulated(ctx, conns[key[0]], key[1], adapters)
    chosen = set(simulated)
    await asyncio.gather(*(one(k) for k in keys if k not in chosen))
    return adapters, venues


async def _simulated(
    ctx: AppContext, conn: ExecutionConnection, symbol: str, adapters: dict[int, ExchangeAdapter]
) -> ExitVenue:
    """A simulated venue's market (it books exactly what it filled: nothing held to read)."""
    client_ids = ctx.adapters.capabilities(conn).client_ids
    try:
        adapter = adapters.get(conn.id) or await ctx.adapters.for_connection(conn)
        adapters[conn.id] = adapter
        market = await adapter.market(symbol)
    except (CredentialsError, ExchangeError):
        return ExitVenue(client_ids=client_ids)
    return ExitVenue(market, None, client_ids)


async def _within(read: Coroutine[Any, Any, Decimal | None], seconds: float) -> Decimal | None:
    """The read's answer if it comes within `seconds`, else None (unknown); a late one goes on
    (not cancelled: a balance read others may share), its failure dropped."""
    task = asyncio.ensure_future(read)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        return task.result()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return None


async def spot_held(
    adapter: ExchangeAdapter, conn: ExecutionConnection, market: Market
) -> Decimal | None:
    """On a real spot account, the base asset it holds free (None elsewhere: a simulated venue
    books exactly what it filled; derivatives and broker tickets hold no coins)."""
    caps = adapter.capabilities
    if conn.market_type != MarketType.spot or caps.simulated or caps.positions_are_tickets:
        return None
    balances = await adapter.fetch_balance()
    entry = balances.get(market.base)
    return entry.free if entry is not None else Decimal(0)
