"""Rows written set-based (`setbased`: unnest arrays on PostgreSQL, a multi-row INSERT or
an executemany UPDATE on SQLite) come back as given, on both databases: money exact to the last
of 30 digits, JSON documents and JSON null, zone-aware moments, vocabularies, NULLs, and the
ids in the order the rows were given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, UniqueConstraint, select
from sqlalchemy.exc import StatementError

from execution_service import setbased
from execution_service.context import AppContext
from execution_service.db import Money, UtcDateTime, Vocabulary
from execution_service.enums import OrderStatus

_probe = Table(
    "setbased_probe",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("money", Money),
    Column("doc", JSON),
    Column("at", UtcDateTime),
    Column("status", Vocabulary(OrderStatus, 20)),
    Column("note", String(40)),
    prefixes=["TEMPORARY"],
)

LONG = Decimal("12345678901234567890.1234567891")  # 30 significant digits
TINY = Decimal("-0.000000000000000000000123456789012345")
AT = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)


def _rows() -> list[dict[str, Any]]:
    return [
        # JSON lists (a take-profit ladder) of different lengths, the first row's among them:
        # each one value, not a row of the array
        {"money": LONG, "doc": [{"price": "1", "close_percent": "50"}, {"price": "2"}], "at": AT,
         "status": "pending", "note": "l2"},
        {"money": LONG, "doc": {"a": "1", "b": [1, 2]}, "at": AT, "status": "pending", "note": "x"},
        {"money": None, "doc": None, "at": None, "status": OrderStatus.filled, "note": None},
        {"money": TINY, "doc": {"c": None}, "at": AT + timedelta(days=1), "status": "rejected",
         "note": "z"},
        {"money": LONG, "doc": [{"price": "3"}], "at": AT, "status": "pending", "note": "l1"},
    ] * 40  # fmt: skip


def _read(row: Any) -> dict[str, Any]:
    return {k: getattr(row, k) for k in ("money", "doc", "at", "status", "note")}


async def test_rows_round_trip_exactly_and_in_order(ctx: AppContext) -> None:
    rows = _rows()
    async with ctx.session_factory() as session:
        conn = await session.connection()
        await conn.run_sync(lambda sync: _probe.create(sync))
        ids = await setbased.insert_rows(session, _probe, rows)
        await setbased.insert_many(session, _probe, rows[:3])
        stored = (await session.execute(select(_probe).order_by(_probe.c.id))).all()
        assert [r.id for r in stored[: len(rows)]] == ids == sorted(ids)
        assert len(set(ids)) == len(rows)
        assert [_read(r) for r in stored] == [_read_given(r) for r in rows + rows[:3]]
        assert stored[0].money == LONG and str(stored[0].money) == str(LONG)
        assert stored[3].money == TINY

        # Each row's new values by id, given in another order than the rows are stored.
        changes = [
            {
                "row_id": i,
                "money": LONG + k,
                # a list first (SQLAlchemy would take it for a second dimension), then a dict
                "doc": {"k": k} if k % 2 else [{"k": k, "done": True}] * (1 + k % 3),
                "status": "filled",
                "note": None,
            }
            for k, i in enumerate(reversed(ids))
        ]
        await setbased.update_rows(session, _probe, changes)
        after = {r.id: r for r in (await session.execute(select(_probe))).all()}
        for change in changes:
            row = after[change["row_id"]]
            assert (row.money, row.doc, row.status, row.note) == (
                change["money"],
                change["doc"],
                OrderStatus.filled,
                None,
            )
        await session.rollback()


def _read_given(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "status": OrderStatus(row["status"])}


async def test_a_value_every_row_shares_is_written_to_each(ctx: AppContext) -> None:
    """Such a column is sent once (a parameter, not an array): the rows are the same."""
    rows = [
        {"money": LONG, "doc": None, "at": AT, "status": OrderStatus.open, "note": f"n{i}"}
        for i in range(50)
    ]
    shared = [{**r, "note": "same"} for r in rows]
    shared[0]["doc"] = {"k": 1}  # the others' None in an array
    async with ctx.session_factory() as session:
        conn = await session.connection()
        await conn.run_sync(lambda sync: _probe.create(sync, checkfirst=True))
        ids = await setbased.insert_rows(session, _probe, rows)
        await setbased.insert_many(session, _probe, shared)
        await setbased.update_rows(session, _probe, [{"row_id": i, "note": "x"} for i in ids])
        stored = (await session.execute(select(_probe).order_by(_probe.c.id))).all()
        assert [_read(r) for r in stored] == [
            *({**r, "note": "x"} for r in rows),
            *shared,
        ]
        # JSON null either way, as a mixed column's None is (not SQL NULL in one, 'null' in
        # the other).
        nulls = list(await session.scalars(select(_probe.c.doc.is_(None)).order_by(_probe.c.id)))
        assert len(set(nulls[:50] + nulls[51:])) == 1
        await session.rollback()


async def test_nothing_to_write_writes_nothing(ctx: AppContext) -> None:
    async with ctx.session_factory() as session:
        assert await setbased.insert_rows(session, _probe, []) == []
        await setbased.insert_many(session, _probe, [])
        await setbased.update_rows(session, _probe, [])


_keyed = Table(
    "setbased_keyed",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("owner", Integer),
    Column("name", String(40)),
    Column("money", Money),
    UniqueConstraint("owner", "name"),
    prefixes=["TEMPORARY"],
)


async def test_ids_follow_the_rows_when_matched_by_a_unique_key(ctx: AppContext) -> None:
    """On a bare connection (the paper venue's batch), SQLite matching its RETURNING rows by
    the key: each row's id is the one it was stored under, in the order given."""
    rows = [{"owner": k % 7, "name": f"n{(k * 37) % 101}", "money": LONG + k} for k in range(101)]
    async with ctx.session_factory() as session:
        conn = await session.connection()
        await conn.run_sync(lambda sync: _keyed.create(sync, checkfirst=True))
        ids = await setbased.insert_rows(conn, _keyed, rows, key=("owner", "name"))
        stored = {r.id: r for r in await conn.execute(select(_keyed))}
        assert [(stored[i].owner, stored[i].name, stored[i].money) for i in ids] == [
            (r["owner"], r["name"], r["money"]) for r in rows
        ]
        assert ids == sorted(ids)
        await session.rollback()


async def test_a_value_outside_its_vocabulary_is_refused(ctx: AppContext) -> None:
    rows = [
        {"money": None, "doc": None, "at": AT, "status": s, "note": None} for s in ("open", "opne")
    ]
    async with ctx.session_factory() as session:
        conn = await session.connection()
        await conn.run_sync(lambda sync: _probe.create(sync, checkfirst=True))
        with pytest.raises(StatementError, match="opne"):
            await setbased.insert_many(session, _probe, rows)
        await session.rollback()
