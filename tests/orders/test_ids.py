"""Client order ids: readable where the venue takes them, compact where it takes letters and
digits only, and unique either way."""

from __future__ import annotations

import itertools

import pytest

from execution_service.exchanges.capabilities import ClientIdFormat
from execution_service.orders.ids import entry_client_order_id, exit_client_order_id

OKX = ClientIdFormat(max_length=32, alphabet=r"[A-Za-z0-9]+")
TINY = ClientIdFormat(max_length=6, alphabet=r"[A-Za-z0-9]+")


@pytest.mark.parametrize(
    ("fmt", "entry", "exit_id"),
    [
        (ClientIdFormat(), "es-4-1-e", "es-p12-x3"),  # Binance, paper: the readable form
        (OKX, "es4x1e", "esp12x3"),  # letters and digits only
    ],
)
def test_ids_fit_the_venue(fmt: ClientIdFormat, entry: str, exit_id: str) -> None:
    assert entry_client_order_id("es", 4, 1, fmt) == entry
    assert exit_client_order_id("es", 12, 3, fmt) == exit_id
    assert fmt.accepts(entry) and fmt.accepts(exit_id)


def test_a_venue_that_takes_neither_form_is_refused_loudly() -> None:
    with pytest.raises(ValueError, match="accepts neither"):
        entry_client_order_id("es", 123456, 7890, TINY)


def test_compact_ids_stay_unique() -> None:
    numbers = range(1, 40)
    entries = {
        entry_client_order_id("es", s, c, OKX) for s, c in itertools.product(numbers, numbers)
    }
    exits = {exit_client_order_id("es", p, n, OKX) for p, n in itertools.product(numbers, numbers)}
    assert len(entries) == len(numbers) ** 2 and len(exits) == len(numbers) ** 2
    assert not entries & exits
