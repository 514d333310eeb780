"""The list endpoint builds its JSON from plain rows (money formatted by the database); the single
read goes through PositionRead. Both must say the same thing, byte for byte, for any stored value."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text, update

from execution_service.context import AppContext
from execution_service.decimals import to_str
from execution_service.models import ExecutionPosition
from execution_service.positions.schemas import MONEY_FIELDS, PositionRead
from tests.factories import Actor, paper_setup

FQ1 = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}

# Each case overwrites some columns of one open position; the rest keep the signal's values.
CASES: list[dict[str, Any]] = [
    {},
    {"quantity": Decimal("1.500"), "entry_price": Decimal("100.00"), "fees": Decimal("0E-8")},
    {"pnl": Decimal("-0.000000012345678901"), "pnl_percentage": Decimal("-12.3400")},
    {"current_price": Decimal("1E+5"), "sl_price": Decimal("1.0E+2"), "tp_price": Decimal("2E+5")},
    {"realized_pnl": Decimal("123456789012345678.123456789012345678")},
    {"sl_price": None, "tp_price": None, "current_price": None, "close_price": Decimal("7.10")},
    {"trailing_stop_percent": Decimal("2.50"), "break_even_trigger_rr": Decimal("1")},
    {
        "take_profits": [
            {"price": "110.50", "close_percent": "50.0"},
            {"price": 120, "close_percent": 50},
        ]
    },
    {"take_profits": []},
    {"last_price_update_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "closed_reason": "manual"},
    {"opened_at": datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC), "signal_id": None},
]


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
async def test_list_item_equals_single_read(
    user: Actor, ctx: AppContext, case: dict[str, Any]
) -> None:
    acct = await paper_setup(user, price="100", **FQ1)
    position_id = (await acct.signal())["executions"][0]["position_id"]
    if case:
        async with ctx.session_factory() as session:
            await session.execute(
                update(ExecutionPosition).where(ExecutionPosition.id == position_id).values(**case)
            )
            await session.commit()
    single = await user.get(f"/api/v1/positions/{position_id}")
    listed = await user.get("/api/v1/positions", params={"connection_id": acct.conn_id})
    assert single.status_code == listed.status_code == 200
    page = json.loads(listed.content)
    assert page["total"] == 1 and page["limit"] == 50 and page["offset"] == 0
    # The very bytes of the single read, inside the page.
    assert json.dumps(page["items"][0], separators=(",", ":")) == single.text
    assert single.text.encode() in listed.content
    for field, value in case.items():
        if field in MONEY_FIELDS:
            assert page["items"][0][field] == (None if value is None else to_str(value))


async def test_money_fields_are_the_decimal_fields_of_position_read() -> None:
    decimal_fields = {
        name
        for name, info in PositionRead.model_fields.items()
        if "Decimal" in str(info.annotation)
    }
    assert decimal_fields == MONEY_FIELDS


async def test_total_rides_with_the_page_and_past_the_end(user: Actor) -> None:
    acct = await paper_setup(user, price="100", **FQ1)
    ids = [(await acct.signal())["executions"][0]["position_id"] for _ in range(3)]
    url = "/api/v1/positions"
    params: dict[str, Any] = {"connection_id": acct.conn_id, "limit": 2}
    first = await user.ok("GET", url, params=params)
    assert [i["id"] for i in first["items"]] == ids[::-1][:2] and first["total"] == 3
    second = await user.ok("GET", url, params={**params, "offset": 2})
    assert [i["id"] for i in second["items"]] == ids[:1] and second["total"] == 3
    # Past the end there is no row to carry the total: counted on its own.
    beyond = await user.ok("GET", url, params={**params, "offset": 10})
    assert beyond == {"items": [], "total": 3, "limit": 2, "offset": 10}
    none = await user.ok("GET", url, params={"connection_id": acct.conn_id, "status": "closed"})
    assert none == {"items": [], "total": 0, "limit": 50, "offset": 0}


async def test_a_read_survives_a_database_restart(
    user: Actor, ctx: AppContext, is_postgres: bool
) -> None:
    """The read engine has no pre-ping: a pooled connection the server dropped is retried once
    on a fresh one instead of failing the request."""
    if not is_postgres:
        pytest.skip("terminating server connections is PostgreSQL's")
    acct = await paper_setup(user, price="100", **FQ1)
    await acct.signal()
    url, params = "/api/v1/positions", {"connection_id": acct.conn_id}
    before = await user.ok("GET", url, params=params)
    async with ctx.engine.connect() as conn:
        killed = await conn.scalar(
            text(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                " where datname = current_database() and pid <> pg_backend_pid()"
            )
        )
    assert killed
    assert await user.ok("GET", url, params=params) == before
