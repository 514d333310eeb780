"""The paper exchange's arithmetic (a pure function), and its batch: `create_orders` over many
accounts gives, order by order, what `create_order` gives one at a time."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import select

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.enums import OrderStatus
from execution_service.exchanges.base import ExchangeError, InsufficientFunds, OrderResult
from execution_service.exchanges.paper import ledger
from execution_service.exchanges.paper.batch import PaperOrderRequest, create_orders
from execution_service.exchanges.paper.booking import Account, Terms, book_fill
from execution_service.exchanges.paper.ledger import HoldingRow, Ledger, OrderRow
from execution_service.exchanges.paper.repository import PaperRepository
from execution_service.models import ExecutionConnection, PaperBalance, PaperHolding, PaperOrder
from tests.factories import Actor

ONE = D(1)


def _order(side: str, amount: str) -> PaperOrder:
    return PaperOrder(side=side, amount=D(amount), symbol="BTC/USDT", type="market")


@pytest.mark.parametrize(
    ("account", "side", "amount", "price", "fee", "leverage", "after"),
    [
        # open a long: margin reserved, fee paid
        (
            Account(D(1000), D(0)),
            "buy",
            "2",
            "100",
            "1",
            ONE,
            Account(D(799), D(200), D(2), D(100), D(200)),
        ),
        # add to it: average moves, margin grows
        (
            Account(D(800), D(200), D(2), D(100), D(200)),
            "buy",
            "2",
            "110",
            "0",
            ONE,
            Account(D(580), D(420), D(4), D(105), D(420)),
        ),
        # reduce it at a profit: half the margin back plus the PnL
        (
            Account(D(800), D(200), D(2), D(100), D(200)),
            "sell",
            "1",
            "120",
            "0",
            ONE,
            Account(D(920), D(100), D(1), D(100), D(100)),
        ),
        # close it at a loss: average and margin reset
        (
            Account(D(800), D(200), D(2), D(100), D(200)),
            "sell",
            "2",
            "90",
            "0",
            ONE,
            Account(D(980), D(0), D(0), D(0), D(0)),
        ),
        # flip to short: close 2, open 1 short at the fill price
        (
            Account(D(800), D(200), D(2), D(100), D(200)),
            "sell",
            "3",
            "100",
            "0",
            ONE,
            Account(D(900), D(100), D(-1), D(100), D(100)),
        ),
        # leverage 5: a fifth of the notional is reserved
        (
            Account(D(1000), D(0)),
            "buy",
            "10",
            "100",
            "0",
            D(5),
            Account(D(800), D(200), D(10), D(100), D(200)),
        ),
    ],
)
def test_book_fill(
    account: Account, side: str, amount: str, price: str, fee: str, leverage: D, after: Account
) -> None:
    booked = book_fill(account, _order(side, amount), D(price), D(fee), Terms(leverage))
    assert (booked.account, booked.fee) == (after, D(fee))


@pytest.mark.parametrize(
    ("account", "side", "amount", "price", "fee", "terms", "after", "charged"),
    [
        # A close is never refused for its fee: it pays what the account has. Short 1 @ 100
        # bought back at 100: margin 100 back, PnL 0 -> 100 free; the fee of 101 takes all 100.
        (
            Account(D(0), D(100), D(-1), D(100), D(100), "USDT"),
            "buy",
            "1",
            "100",
            "101",
            Terms(),
            Account(D(0), D(0), D(0), D(0), D(0), "USDT"),
            "100",
        ),
        # Isolated margin: 1 @ 10000 at 10x posts 1000; a gap to 8500 would lose 1500, the close
        # loses the 1000 posted and no more (0 + 1000 - 1000 = 0 free, never below).
        (
            Account(D(0), D(1000), D(1), D(10000), D(1000), "USDT"),
            "sell",
            "1",
            "8500",
            "0",
            Terms(D(10)),
            Account(D(0), D(0), D(0), D(0), D(0), "USDT"),
            "0",
        ),
        # Spot borrows nothing: the preset's 5x is ignored, 1 @ 100 spends 100 (+ fee 1).
        (
            Account(D(1000), D(0), quote="USDT"),
            "buy",
            "1",
            "100",
            "1",
            Terms(D(5), spot=True),
            Account(D(899), D(100), D(1), D(100), D(100), "USDT"),
            "1",
        ),
    ],
)
def test_book_fill_margin_and_spot(
    account: Account,
    side: str,
    amount: str,
    price: str,
    fee: str,
    terms: Terms,
    after: Account,
    charged: str,
) -> None:
    booked = book_fill(account, _order(side, amount), D(price), D(fee), terms)
    assert (booked.account, booked.fee) == (after, D(charged))


def test_a_spot_account_does_not_short() -> None:
    # Holds 0.5: selling 1 would leave -0.5, a short, which a spot account cannot hold.
    account = Account(D(1000), D(50), D("0.5"), D(100), D(50), "USDT")
    with pytest.raises(InsufficientFunds, match="does not short"):
        book_fill(account, _order("sell", "1"), D(100), D(0), Terms(spot=True))


@pytest.mark.parametrize(
    ("account", "amount", "fee"),
    [
        (Account(D(100), D(0), quote="USDT"), "2", "0"),  # margin 200 > 100 free
        (Account(D(200), D(0), quote="USDT"), "2", "1"),  # margin fits, not with the fee
        # reverse a short of 1 into a long of 1: the opening half must be paid for in full
        (Account(D(0), D(100), D(-1), D(100), D(100), "USDT"), "2", "1"),
    ],
)
def test_book_fill_refuses_what_the_account_cannot_pay(
    account: Account, amount: str, fee: str
) -> None:
    with pytest.raises(InsufficientFunds):
        book_fill(account, _order("buy", amount), D(100), D(fee), Terms())


async def _accounts(user: Actor, ctx: AppContext, n: int, **paper: Any) -> list[Any]:
    preset = await user.preset(leverage="2")
    dc = await user.data_connection()
    await user.push_price(dc["id"], "BTC/USDT", "100")
    nodc = await user.data_connection()  # no price on this one
    adapters = []
    for i in range(n):
        body = {"paper": {"balance": {"USDT": "1000"}, "fee_rate": "0.001", **paper}}
        conn = await user.paper_connection(  # swap: the plan shorts, at leverage 2
            preset_id=preset["id"],
            data_connection_id=(nodc if i == n - 1 else dc)["id"],
            market_type="swap",
            **body,
        )
        async with ctx.session_factory() as session:
            row = await session.get(ExecutionConnection, conn["id"])
        assert row is not None
        adapters.append(ctx.adapters.paper(row))
    return adapters


def _plan(adapters: list[Any]) -> list[tuple[int, str, str, str, str | None, str]]:
    """(account index, side, type, amount, price, client order id): fills, a resting limit, a
    marketable limit, a refusal for funds, a repeated client order id, two orders on one account
    (the second reduces the first), an invalid amount and an account without a price."""
    return [
        (0, "buy", "market", "3", None, "c-0"),
        (1, "sell", "limit", "1", "150", "c-1"),
        (2, "buy", "limit", "1", "120", "c-2"),
        (3, "buy", "market", "50", None, "c-3"),
        (0, "buy", "market", "3", None, "c-0"),
        (1, "buy", "market", "4", None, "c-1b"),
        (1, "sell", "market", "1", None, "c-1c"),
        (2, "buy", "market", "0", None, "c-2b"),
        (len(adapters) - 1, "buy", "market", "1", None, "c-x"),
    ]


def _answer(a: OrderResult | ExchangeError) -> tuple[Any, ...]:
    if isinstance(a, ExchangeError):
        return (type(a).__name__, a.message)
    return (a.client_order_id, a.status, a.amount, a.filled, a.average, a.price, a.fee)


async def _book(ctx: AppContext, conn_ids: list[int]) -> list[tuple[Any, ...]]:
    async with ctx.session_factory() as session:
        balances = await session.scalars(
            select(PaperBalance)
            .where(PaperBalance.connection_id.in_(conn_ids))
            .order_by(PaperBalance.connection_id)
        )
        holdings = await session.scalars(
            select(PaperHolding)
            .where(PaperHolding.connection_id.in_(conn_ids))
            .order_by(PaperHolding.connection_id)
        )
        return [
            *((conn_ids.index(b.connection_id), b.currency, b.free, b.used) for b in balances),
            *(
                (conn_ids.index(h.connection_id), h.symbol, h.quantity, h.average_price, h.margin)
                for h in holdings.all()
            ),
        ]


async def test_a_batch_books_exactly_what_single_orders_book(
    user: Actor, other_user: Actor, ctx: AppContext
) -> None:
    singles = await _accounts(user, ctx, 5, slippage_bps="10")
    batched = await _accounts(other_user, ctx, 5, slippage_bps="10")
    one_by_one: list[OrderResult | ExchangeError] = []
    for i, side, type_, amount, price, cid in _plan(singles):
        try:
            one_by_one.append(
                await singles[i].create_order(
                    "BTC/USDT", side, type_, D(amount), D(price) if price else None, cid
                )
            )
        except ExchangeError as exc:
            one_by_one.append(exc)
    requests = [
        PaperOrderRequest(
            batched[i], "BTC/USDT", side, type_, D(amount), D(price) if price else None, cid
        )
        for i, side, type_, amount, price, cid in _plan(batched)
    ]
    together = await create_orders(ctx.session_factory, requests)

    assert [_answer(a) for a in together] == [_answer(a) for a in one_by_one]
    kinds = [_answer(a)[:2] for a in together]
    assert kinds[0] == ("c-0", "filled") and kinds[1] == ("c-1", "open")
    assert kinds[3][0] == "InsufficientFunds" and kinds[7][0] == "InvalidOrder"
    assert kinds[8][0] == "NoPrice"
    assert _answer(together[4]) == _answer(together[0])  # the same client order id: one order
    assert await _book(ctx, [a.connection_id for a in batched]) == await _book(
        ctx, [a.connection_id for a in singles]
    )


async def test_latest_prices_are_each_data_connections_latest_price(
    user: Actor, ctx: AppContext
) -> None:
    """One statement for many data connections gives what one lookup each gives."""
    early, late = "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z"
    a, b, empty = [await user.data_connection() for _ in range(3)]
    await user.push_price(a["id"], "BTC/USDT", "101", timestamp=late)
    await user.push_price(a["id"], "BTC/USDT", "100", timestamp=early)  # older, sent later
    await user.push_price(b["id"], "BTC/USDT", "200", timestamp=early)
    await user.push_price(b["id"], "ETH/USDT", "3", timestamp=late)  # another symbol
    sources = [a["id"], b["id"], empty["id"], None]
    async with ctx.session_factory() as session:
        repo = PaperRepository(session)
        batch = await repo.latest_prices(sources, "BTC/USDT")
        one_by_one = {dc: await repo.latest_price(dc, "BTC/USDT") for dc in sources}
    assert {dc: row and row.close for dc, row in batch.items()} == {
        a["id"]: D(101),
        b["id"]: D(200),
        empty["id"]: None,
        None: None,
    }

    # The same latest point (the latest-price table's row: its key, price and time).
    def point(row: Any) -> Any:
        return row and (row.data_connection_id, row.symbol, row.close, row.timestamp)

    assert {dc: point(row) for dc, row in batch.items()} == {
        dc: point(row) for dc, row in one_by_one.items()
    }


async def test_latest_closes_are_the_pairs_asked_for(user: Actor, ctx: AppContext) -> None:
    """One statement for many (data connection, symbol) pairs gives each pair's latest close,
    and only the pairs asked for: a price of a pair not asked for, though its source and its
    symbol were, is left out."""
    a, b = [await user.data_connection() for _ in range(2)]
    await user.push_price(a["id"], "BTC/USDT", "101")
    await user.push_price(a["id"], "ETH/USDT", "3.5")
    await user.push_price(b["id"], "BTC/USDT", "200")
    await user.push_price(b["id"], "ETH/USDT", "4")  # asked for neither
    pairs = [(a["id"], "BTC/USDT"), (a["id"], "ETH/USDT"), (b["id"], "BTC/USDT")]
    pairs += [(b["id"], "XRP/USDT"), (None, "BTC/USDT"), (a["id"], "BTC/USDT")]
    async with ctx.session_factory() as session:
        closes = await PaperRepository(session).latest_closes(pairs)
    assert closes == {
        (a["id"], "BTC/USDT"): D(101),
        (a["id"], "ETH/USDT"): D("3.5"),
        (b["id"], "BTC/USDT"): D(200),
        (b["id"], "XRP/USDT"): None,
        (None, "BTC/USDT"): None,
    }


async def test_the_batch_statements_keep_every_digit(user: Actor, ctx: AppContext) -> None:
    """What the ledger writes (arrays on PostgreSQL, executemany on SQLite) reads back exactly:
    values of 20 and more significant digits, tiny and huge, and None where a column allows it."""
    conn_id = (await user.paper_connection())["id"]
    digits = [
        D("12345678901234567890.123456789012345678"),
        D("0.000000000000000000012345678901234567891"),
        D("-98765432109876543210.98765432109876543"),
        D("1E+2"),
    ]
    async with ctx.session_factory() as session, session.begin():
        ledger = Ledger(await session.connection())
        (balance,) = (await ledger.balances([conn_id], ["USDT"])).values()
        balance.free, balance.used = digits[0], digits[1]
        await ledger.update_balances([balance])
        held = HoldingRow(conn_id, "BTC/USDT", digits[2], digits[0], digits[1])
        await ledger.write_holdings([held])
        order = OrderRow(
            conn_id, "many-digits", "BTC/USDT", "sell", "limit", digits[1], digits[0],
            OrderStatus.open, "USDT", reserved=digits[3],
        )  # fmt: skip
        await ledger.insert_orders([order], utcnow())
    async with ctx.session_factory() as session, session.begin():
        ledger = Ledger(await session.connection())
        assert (await ledger.balances([conn_id], ["USDT"]))[(conn_id, "USDT")] == balance
        (again,) = (await ledger.holdings([conn_id], ["BTC/USDT"])).values()
        assert again.id is not None and (again.quantity, again.average_price, again.margin) == (
            digits[2],
            digits[0],
            digits[1],
        )
        again.quantity = D("-0.1")  # updated in place this time
        await ledger.write_holdings([again])
        stored = (await ledger.orders([(conn_id, "many-digits")]))[(conn_id, "many-digits")]
    assert stored.id == order.id and stored.updated_at == order.updated_at
    assert (stored.amount, stored.price, stored.reserved) == (digits[1], digits[0], D(100))
    assert (stored.average, stored.filled, stored.fee) == (None, D(0), D(0))
    assert (stored.side, stored.type, stored.status) == ("sell", "limit", OrderStatus.open)
    async with ctx.session_factory() as session:
        holding = await session.scalar(
            select(PaperHolding).where(PaperHolding.connection_id == conn_id)
        )
    assert holding is not None and holding.quantity == D("-0.1")


async def test_a_known_client_order_id_is_the_known_order(
    user: Actor, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orders sent before, one at a time, are found again by the batch (on SQLite across
    several lookups), whatever came of them; the new ones are placed beside them."""
    monkeypatch.setattr(ledger, "SQLITE_CHUNK", 2)
    adapters = await _accounts(user, ctx, 4)
    sent = [
        await adapters[i % 3].create_order("BTC/USDT", side, "market", D("0.5"), None, f"k-{i}")
        for i, side in enumerate(["buy", "sell", "buy", "buy", "sell", "buy"])
    ]
    replayed = [
        PaperOrderRequest(adapters[i % 3], "BTC/USDT", "sell", "market", D(7), None, f"k-{i}")
        for i in range(6)
    ]
    new = [
        PaperOrderRequest(adapters[i % 3], "BTC/USDT", "buy", "market", D(1), None, f"n-{i}")
        for i in range(3)
    ]
    answers = await create_orders(ctx.session_factory, [*new[:1], *replayed, *new[1:]])
    assert all(isinstance(a, OrderResult) for a in answers)
    results = [a for a in answers if isinstance(a, OrderResult)]
    assert [_answer(a) for a in results[1:7]] == [_answer(a) for a in sent]
    assert [a.order_id for a in results[1:7]] == [a.order_id for a in sent]
    fresh = [results[0], *results[7:]]
    assert [(a.client_order_id, a.status, a.amount) for a in fresh] == [
        (f"n-{i}", "filled", D(1)) for i in range(3)
    ]
    assert len({a.order_id for a in results}) == 9
