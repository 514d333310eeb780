from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, TypeAdapter, ValidationError

from execution_service.analytics import service
from execution_service.analytics.schemas import DailyRead, EquityPoint, EquityRead, SummaryRead
from execution_service.deps import PageDep, PrincipalDep, SessionDep
from execution_service.schemas import Page, in_range, iso_instant, problems

router = APIRouter(prefix="/analytics", tags=["analytics"])

ConnectionFilter = Annotated[
    int | None,
    Query(ge=1, le=2**31 - 1, description="default: every connection the caller may see"),
]
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INSTANT: TypeAdapter[datetime] = TypeAdapter(datetime)


def _day_or_instant(value: Any) -> Any:
    """A bare date (2026-01-05) is a whole day; any other text is an instant. Left to itself,
    pydantic reads 2026-01-05T00:00:00Z as a date too, making an exclusive midnight a day."""
    if isinstance(value, str) and not _DAY.match(value):
        try:
            return in_range(_INSTANT.validate_python(iso_instant(value)))
        except ValidationError:
            raise ValueError("expected a date (YYYY-MM-DD) or an ISO 8601 datetime") from None
    return value  # a date: 9999-12-31 is the end of time, unbounded (the service handles it)


DayOrInstant = Annotated[date | datetime | None, BeforeValidator(_day_or_instant)]
Since = Annotated[DayOrInstant, Query(description="a date or datetime (UTC), inclusive")]
Until = Annotated[
    DayOrInstant,
    Query(description="a datetime (UTC, exclusive) or a date (that whole day included)"),
]
Format = Annotated[Literal["json", "csv"], Query(alias="format")]
CSV_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv(
    name: str, rows: Sequence[BaseModel], columns: list[str], headers: dict[str, str] | None = None
) -> Response:
    # Only numbers, dates and booleans go in: no user text, so nothing for a spreadsheet to run.
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        data = row.model_dump(mode="json")  # decimals as plain strings, times as ISO 8601
        writer.writerow([_cell(data[c]) for c in columns])
    disposition = f'attachment; filename="analytics-{name}.csv"'
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": disposition, **(headers or {})},
    )


@router.get("/daily", response_model=Page[DailyRead], responses={**CSV_DOC, **problems(404)})
async def daily(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    connection_id: ConnectionFilter = None,
    since: Since = None,
    until: Until = None,
    fmt: Format = "json",
) -> Page[DailyRead] | Response:
    """One row per connection per UTC day, oldest first. The CSV is the same page, with the
    number of rows in the `X-Total-Count` header."""
    period = service.Range.of(since, until)
    rows, total = await service.daily(
        session, principal, connection_id, period, page.limit, page.offset
    )
    items = [DailyRead.model_validate(r) for r in rows]
    if fmt == "csv":
        columns = list(DailyRead.model_fields)
        return _csv("daily", items, columns, {"X-Total-Count": str(total)})
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/summary", response_model=SummaryRead, responses={**CSV_DOC, **problems(404)})
async def summary(
    session: SessionDep,
    principal: PrincipalDep,
    connection_id: ConnectionFilter = None,
    since: Since = None,
    until: Until = None,
    fmt: Format = "json",
) -> SummaryRead | Response:
    """Performance of the trades closed in the range, from the positions themselves."""
    period = service.Range.of(since, until)
    stats, starting = await service.summary(session, principal, connection_id, period)
    result = SummaryRead(
        connection_id=connection_id,
        since=period.start,
        until=period.end,
        starting_equity=starting,
        **asdict(stats),
    )
    if fmt == "csv":
        return _csv("summary", [result], list(SummaryRead.model_fields))
    return result


@router.get("/equity", response_model=EquityRead, responses={**CSV_DOC, **problems(404)})
async def equity(
    session: SessionDep,
    principal: PrincipalDep,
    connection_id: ConnectionFilter = None,
    since: Since = None,
    until: Until = None,
    fmt: Format = "json",
) -> EquityRead | Response:
    """The starting point, then one point per closed position in close order."""
    period = service.Range.of(since, until)
    starting, points = await service.equity(session, principal, connection_id, period)
    items = [EquityPoint.model_validate(p, from_attributes=True) for p in points]
    if fmt == "csv":
        return _csv("equity", items, list(EquityPoint.model_fields))
    return EquityRead(
        connection_id=connection_id,
        since=period.start,
        until=period.end,
        starting_equity=starting,
        points=items,
    )
