"""Pydantic types every domain shares: decimals as strings, pages, ownership fields."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    WithJsonSchema,
)

from execution_service.decimals import to_str

# Decimals leave as strings ("0.00123") and come in as strings or numbers, never NaN/Infinity.
# Input is bounded (18 decimal places, 38 digits); output carries whatever was stored.
DecimalOut = Annotated[
    Decimal,
    PlainSerializer(to_str, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "format": "decimal", "examples": ["0.00123"]}, mode="serialization"
    ),
]
DecimalIn = Annotated[
    Decimal,
    Field(allow_inf_nan=False, max_digits=38, decimal_places=18),
    PlainSerializer(to_str, return_type=str, when_used="json"),
]
PositiveDecimal = Annotated[DecimalIn, Field(gt=0)]
NonNegativeDecimal = Annotated[DecimalIn, Field(ge=0)]
Percent = Annotated[DecimalIn, Field(gt=0, le=100)]


def printable(value: str) -> str:
    """Refuse control, format (bidi overrides, zero-width) and line-separator characters: a
    name is shown in dashboards, logs and terminals, where `\u202e` reverses what follows."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp"):
            raise ValueError(f"the name holds a control or format character (U+{ord(ch):04X})")
    if not value.strip():
        raise ValueError("the name is blank")
    return value


Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(printable)]
# A unified market symbol (BTC/USDT, BTC/USDT:USDT), or a broker's or leader's own name for one
# (XAUUSD, GOLD.m, US30#, BTCUSDT), which a follower's `symbol_map` may translate.
Symbol = Annotated[
    str,
    Field(
        min_length=2,
        max_length=64,
        pattern=r"^([A-Za-z0-9]+/[A-Za-z0-9]+(:[A-Za-z0-9]+)?|[A-Za-z0-9][A-Za-z0-9._#-]{1,31})$",
    ),
]
# Strict: a JSON integer only (`true` or "42" is refused, not read as 1 or 42).
OwnerId = Annotated[int, Strict(), Field(ge=0, le=2**62)]
# A JSON boolean only (`0` or "no" is refused, not read as false).
Flag = Annotated[bool, Strict()]
Timestamp = datetime


def iso_instant(value: Any) -> Any:
    """Refuse a bare number where a datetime is expected: pydantic reads `0` as a Unix time,
    which is never what `since=0` meant."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and _NUMBER.fullmatch(value.strip())
    ):
        raise ValueError("expected an ISO 8601 datetime, not a number")
    return value


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def in_range(value: datetime) -> datetime:
    """A datetime the service can store and compute with: `9999-12-31T23:59:59-12:00` is valid
    ISO 8601 but lies past year 9999 in UTC, and converting it raised a 500 (issue #15)."""
    try:
        utc = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("the datetime is out of range") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError("the datetime must lie between 1970-01-01 and 9000-01-01 (UTC)")
    return value


# A datetime in a query string: ISO 8601 text only, within range.
Instant = Annotated[datetime, BeforeValidator(iso_instant), AfterValidator(in_range)]

T = TypeVar("T")


class Model(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Body(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class PageParams(BaseModel):
    limit: int
    offset: int


RefId = Annotated[int, Strict(), Field(ge=1, le=2**31 - 1)]


# --- errors: RFC 9457 problem details ---------------------------------------------------------

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemError(BaseModel):
    loc: list[str | int] = Field(description='e.g. ["body", "symbol"]; empty: the whole request')
    msg: str


class Problem(BaseModel):
    """Every error answer (`application/problem+json`). More members may follow `code`."""

    type: str = Field(examples=["https://execution-service.dev/problems/not_found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["connection 7 not found"])
    code: str = Field(description="stable, machine-readable", examples=["not_found"])


class ValidationProblem(Problem):
    """A 422: the request was understood but refused; `errors` says where and why."""

    errors: list[ProblemError]


_PROBLEMS: dict[int, str] = {
    401: "No API key, or not a valid one",
    403: "The key's role may not do this",
    404: "No such row visible to this key (another owner's row is a 404 too)",
    409: "The request conflicts with the row's current state",
    413: "The body is over the limit (EXEC_MAX_BODY_BYTES)",
    422: "The request is invalid: see `errors`",
    429: "Too many requests: wait `Retry-After` seconds",
    502: "The exchange or broker behind the connection failed",
    503: "The venue's request budget has no room now; nothing was sent: wait `Retry-After`",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting these error statuses as problem details. FastAPI files the
    model under `application/json`; `openapi.py` moves it to `application/problem+json`."""
    return {
        status: {
            "model": ValidationProblem if status == 422 else Problem,
            "description": _PROBLEMS[status],
            **({"headers": _RETRY_AFTER} if status in (429, 503) else {}),
        }
        for status in statuses
    }


# Every /api/v1 operation may answer these: authentication, validation, rate limits.
API_PROBLEMS = problems(401, 422, 429)
