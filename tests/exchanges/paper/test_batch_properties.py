"""Property test: the batch (`create_orders`, set-based on plain values) and the single-order
path (`PaperAdapter.create_order`, ORM rows) agree, order by order and row by row, on random
accounts and orders.

Each example resets a fixed set of account pairs (one side filled one order at a time, the other
in one batch) to the same drawn state (balances and holdings with many digits, a price, fee and
slippage), places the same prelude of orders on both sides one at a time (so the batch meets
client order ids already in the book), then the same orders: one by one on one side, as one
batch on the other. Mixed accounts (swap at leverage 2, spot, swap at 3, one without a price),
two symbols sharing a quote balance, several orders per account, resting and marketable limits,
refusals for funds in the middle, replayed client order ids, invalid amounts."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import delete, select, update

from execution_service.context import AppContext
from execution_service.exchanges.base import ExchangeError, OrderResult
from execution_service.exchanges.paper import ledger
from execution_service.exchanges.paper.adapter import PaperAdapter, PaperTerms
from execution_service.exchanges.paper.batch import (
    PaperAccount,
    PaperOrderRequest,
    create_orders,
)
from execution_service.models import MarketDataLatest, PaperBalance, PaperHolding, PaperOrder
from tests.factories import Actor

SYMBOLS = ("BTC/USDT", "ETH/USDT", "BTC/EUR")  # the last: a quote the accounts do not hold
KINDS = (  # (market type, preset leverage, priced)
    ("swap", "2", True),
    ("spot", "5", True),  # spot ignores the preset's leverage
    ("swap", "3", True),
    ("swap", "1", False),  # its data connection has no price: NoPrice
)


def money(low: str, high: str, places: int) -> st.SearchStrategy[D]:
    return st.decimals(min_value=D(low), max_value=D(high), places=places)


@dataclass
class Pairs:
    dc: int  # the priced data connection
    singles: list[tuple[int, int]]  # (connection, data connection) per kind
    batched: list[tuple[int, int]]


@pytest.fixture
async def pairs(user: Actor, ctx: AppContext) -> Pairs:
    dc = (await user.data_connection())["id"]
    for symbol in SYMBOLS:
        await user.push_price(dc, symbol, "100")
    nodc = (await user.data_connection())["id"]
    sides: list[list[tuple[int, int]]] = [[], []]
    for market_type, leverage, priced in KINDS:
        preset = await user.preset(leverage=leverage)
        for side in sides:
            source = dc if priced else nodc
            conn = await user.paper_connection(
                preset_id=preset["id"], data_connection_id=source, market_type=market_type
            )
            side.append((conn["id"], source))
    return Pairs(dc, *sides)


def mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` four times in five, else `rare`."""
    return st.integers(0, 4).flatmap(lambda k: rare if k == 0 else usual)


accounts = st.fixed_dictionaries(
    {
        "free": mostly(money("2000", "100000", 12), money("0", "500", 12)),
        "used": money("0", "1000", 9),
        # a holding of BTC/USDT: signed quantity, its average price and margin (or none)
        "holding": st.none()
        | st.tuples(money("-50", "50", 10), money("1", "300", 14), money("0", "5000", 11)),
        "fee_rate": st.sampled_from([D(0), D("0.001"), D("0.000375")]),
        "slippage_bps": st.sampled_from([D(0), D("5"), D("12.5")]),
    }
)

orders = st.fixed_dictionaries(
    {
        "account": st.sampled_from([0, 0, 0, 1, 1, 2, 2, 3]),
        "symbol": mostly(st.sampled_from(SYMBOLS[:2]), st.just(SYMBOLS[2])),
        "side": st.sampled_from(["buy", "sell"]),
        "type": st.sampled_from(["market", "market", "limit"]),
        # an invalid 0 and amounts too large for the account, now and then
        "amount": mostly(money("0.00000001", "30", 10), money("0", "3000", 4)),
        "offset": money("-0.2", "0.2", 6),  # a limit's distance from the last price
        "cid": st.sampled_from([f"c{i}" for i in range(10)]),  # few ids: replays
    }
)


def _answer(a: OrderResult | ExchangeError) -> tuple[Any, ...]:
    if isinstance(a, ExchangeError):
        return (type(a).__name__, a.message)
    fields = (a.client_order_id, a.symbol, a.side, a.type, a.status, a.amount, a.filled)
    return (*fields, a.average, a.price, a.fee, a.fee_currency, a.raw)


async def _reset(ctx: AppContext, pairs: Pairs, state: list[dict[str, Any]], price: D) -> None:
    ids = [c for c, _ in pairs.singles + pairs.batched]
    async with ctx.session_factory() as session, session.begin():
        await session.execute(delete(PaperOrder).where(PaperOrder.connection_id.in_(ids)))
        await session.execute(delete(PaperHolding).where(PaperHolding.connection_id.in_(ids)))
        await session.execute(
            update(MarketDataLatest)
            .where(MarketDataLatest.data_connection_id == pairs.dc)
            .values(close=price)
        )
        for side in (pairs.singles, pairs.batched):
            for (conn_id, _), account in zip(side, state, strict=True):
                await session.execute(
                    update(PaperBalance)
                    .where(PaperBalance.connection_id == conn_id)
                    .values(free=account["free"], used=account["used"])
                )
                if account["holding"] is not None:
                    quantity, average, margin = account["holding"]
                    session.add(
                        PaperHolding(
                            connection_id=conn_id,
                            symbol="BTC/USDT",
                            quantity=quantity,
                            average_price=average,
                            margin=margin,
                        )
                    )


def _args(order: dict[str, Any], price: D) -> tuple[Any, ...]:
    limit = price * (1 + order["offset"]) if order["type"] == "limit" else None
    return (order["symbol"], order["side"], order["type"], order["amount"], limit, order["cid"])


async def _one_by_one(
    adapters: list[PaperAdapter], plan: list[dict[str, Any]], price: D
) -> list[OrderResult | ExchangeError]:
    out: list[OrderResult | ExchangeError] = []
    for order in plan:
        try:
            out.append(await adapters[order["account"]].create_order(*_args(order, price)))
        except ExchangeError as exc:
            out.append(exc)
    return out


def _stored(o: PaperOrder) -> tuple[Any, ...]:
    fields = (o.client_order_id, o.symbol, o.side, o.type, o.amount, o.price, o.status)
    return (*fields, o.filled, o.average, o.fee, o.fee_currency, o.reserved)


async def _book(ctx: AppContext, conn_ids: list[int]) -> list[tuple[Any, ...]]:
    """Every row of the accounts, by account index (not by id, which differs per side)."""
    at = {c: i for i, c in enumerate(conn_ids)}
    async with ctx.session_factory() as session:
        balances = await session.scalars(
            select(PaperBalance).where(PaperBalance.connection_id.in_(conn_ids))
        )
        holdings = await session.scalars(
            select(PaperHolding).where(PaperHolding.connection_id.in_(conn_ids))
        )
        stored = await session.scalars(
            select(PaperOrder).where(PaperOrder.connection_id.in_(conn_ids))
        )
        return sorted(
            [
                *((at[b.connection_id], b.currency, b.free, b.used) for b in balances),
                *(
                    (at[h.connection_id], h.symbol, h.quantity, h.average_price, h.margin)
                    for h in holdings
                ),
                *((at[o.connection_id], *_stored(o)) for o in stored),
            ],
            key=repr,
        )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    state=st.lists(accounts, min_size=len(KINDS), max_size=len(KINDS)),
    price=money("50", "150", 11),
    prelude=st.lists(orders, min_size=1, max_size=6),
    plan=st.lists(orders, min_size=3, max_size=16),
)
async def test_the_batch_books_what_single_orders_book(
    ctx: AppContext,
    pairs: Pairs,
    monkeypatch: pytest.MonkeyPatch,
    state: list[dict[str, Any]],
    price: D,
    prelude: list[dict[str, Any]],
    plan: list[dict[str, Any]],
) -> None:
    await _reset(ctx, pairs, state, price)
    monkeypatch.setattr(ledger, "SQLITE_CHUNK", 2)  # SQLite's lookup: several statements

    def adapters(side: list[tuple[int, int]]) -> list[PaperAdapter]:
        return [
            PaperAdapter(
                conn_id,
                dc,
                ctx.session_factory,
                terms=PaperTerms(a["fee_rate"], a["slippage_bps"]),
            )
            for (conn_id, dc), a in zip(side, state, strict=True)
        ]

    singles, batched = adapters(pairs.singles), adapters(pairs.batched)
    for side in (singles, batched):  # the same book before: these ids are then known
        await _one_by_one(side, prelude, price)
    one_by_one = await _one_by_one(singles, plan, price)
    light = [
        PaperAccount(a.connection_id, a.data_connection_id, a.fee_rate, a.slippage_bps)
        for a in batched
    ]
    requests = [
        PaperOrderRequest(light[o["account"]], *_args(o, price))
        if i % 2
        # a PaperAdapter serves as the account as well
        else PaperOrderRequest(batched[o["account"]], *_args(o, price))
        for i, o in enumerate(plan)
    ]
    together = await create_orders(ctx.session_factory, requests)

    assert [_answer(a) for a in together] == [_answer(a) for a in one_by_one]
    async with ctx.session_factory() as session:  # each answer's id is its own order's row
        rows = await session.execute(
            select(PaperOrder.id, PaperOrder.connection_id, PaperOrder.client_order_id)
        )
        stored = {str(i): (conn_id, cid) for i, conn_id, cid in rows}
    for order, answer in zip(plan, together, strict=True):
        if isinstance(answer, OrderResult):
            expected = (batched[order["account"]].connection_id, order["cid"])
            assert stored[answer.order_id] == expected
    assert await _book(ctx, [c for c, _ in pairs.batched]) == await _book(
        ctx, [c for c, _ in pairs.singles]
    )
