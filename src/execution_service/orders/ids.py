"""Client order ids: deterministic from what the order is for, so a lost answer is found again
at the venue by the same id and an order is never sent twice under two names.

The readable form (`es-12-3-e`) is used where the venue accepts it; a venue that takes letters
and digits only (OKX: at most 32) gets the compact form (`es12x3e`), unique the same way: the
numbers are separated by a letter, and entries end in `e` where exits start with `p`."""

from __future__ import annotations

import re

from execution_service.exchanges.capabilities import ClientIdFormat

READABLE = ClientIdFormat()


def _fit(fmt: ClientIdFormat, readable: str, compact: str) -> str:
    for candidate in (readable, compact):
        if fmt.accepts(candidate):
            return candidate
    raise ValueError(f"the venue accepts neither {readable!r} nor {compact!r} as a client id")


def _letters_and_digits(prefix: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", prefix)


def entry_client_order_id(
    prefix: str, signal_id: int, connection_id: int, fmt: ClientIdFormat = READABLE
) -> str:
    """The entry order of a signal on one connection."""
    return _fit(
        fmt,
        f"{prefix}-{signal_id}-{connection_id}-e",
        f"{_letters_and_digits(prefix)}{signal_id}x{connection_id}e",
    )


def exit_client_order_id(
    prefix: str, position_id: int, n: int, fmt: ClientIdFormat = READABLE
) -> str:
    """The n-th exit order of a position (a partial take-profit, then the rest, ...)."""
    return _fit(
        fmt,
        f"{prefix}-p{position_id}-x{n}",
        f"{_letters_and_digits(prefix)}p{position_id}x{n}",
    )


def protect_client_order_id(
    prefix: str, position_id: int, n: int, fmt: ClientIdFormat = READABLE
) -> str:
    """The n-th protective order of a position (its SL and TP legs resting at the venue, and the
    OCO list holding them: each its own n)."""
    return _fit(
        fmt,
        f"{prefix}-p{position_id}-s{n}",
        f"{_letters_and_digits(prefix)}p{position_id}s{n}",
    )
