"""Values as exchanges and gateways send them, read without floats (shared by the adapters)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


def to_decimal(value: Any) -> Decimal | None:
    """Decimal from an exchange string/int, or from a library float via its shortest repr; None
    for what is missing, not a number, or not finite."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        result = Decimal(value if isinstance(value, str | int | Decimal) else str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return result if result.is_finite() else None


def first(*values: Decimal | None) -> Decimal | None:
    return next((v for v in values if v is not None), None)


def plain(value: Decimal) -> str:
    """Positional notation, never "1E-5": what exchanges and query strings expect."""
    return f"{value:f}"


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` header in seconds (a wait, not money); None for an HTTP-date or nothing,
    so the caller falls back to its own backoff."""
    try:
        return float(value) if value is not None else None  # not money
    except ValueError:
        return None
