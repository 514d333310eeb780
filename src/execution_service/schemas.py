"""Pydantic types every domain shares: decimals as strings, pages, ownership fields."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

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

Name = Annotated[str, Field(min_length=1, max_length=100)]
Symbol = Annotated[
    str, Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9]+/[A-Za-z0-9]+(:[A-Za-z0-9]+)?$")
]
OwnerId = Annotated[int, Field(ge=0, le=2**62)]
Timestamp = datetime

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


def _page_params(
    limit: Annotated[int, Query(ge=1, le=500, description="at most 500")] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


PageDep = Annotated[PageParams, Depends(_page_params)]


RowId = Annotated[int, Path(ge=1, le=2**31 - 1, description="row id")]
RefId = Annotated[int, Field(ge=1, le=2**31 - 1)]
