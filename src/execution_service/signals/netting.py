"""Netting, one account and one symbol at a time: a signal opposite to what the account holds
reduces or closes it first, and only the rest may open the other way. Pure, no I/O.

- With a `quantity` on the signal, that much is traded: it closes the opposite positions oldest
  first, and what is left opens a reversed position if the preset allows it.
- Without one, the opposite positions are closed whole, and a reversed position sized as usual
  opens if the preset allows it.
- Reversing is for swap and margin accounts only: a spot account cannot hold the other side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Held:
    """An open position of the account in the symbol, the other way than the signal."""

    position_id: int
    quantity: Decimal


@dataclass(frozen=True)
class NetClose:
    position_id: int
    quantity: Decimal | None  # None: all of it
    whole: bool


@dataclass(frozen=True)
class Netting:
    closes: tuple[NetClose, ...] = ()
    opens: bool = True  # a position opens in the signal's direction
    quantity: Decimal | None = None  # its quantity, where the signal said (else sized as usual)


def net(opposite: Sequence[Held], quantity: Decimal | None, reverse: bool) -> Netting:
    """`opposite` oldest first; `reverse`: the preset allows reversing on this account."""
    if not opposite:
        return Netting(quantity=quantity)
    if quantity is None:
        closes = tuple(NetClose(h.position_id, None, True) for h in opposite)
        return Netting(closes, opens=reverse)
    left = quantity
    closes_: list[NetClose] = []
    for held in opposite:
        if left <= 0:
            break
        take = min(left, held.quantity)
        whole = take >= held.quantity
        closes_.append(NetClose(held.position_id, None if whole else take, whole))
        left -= take
    opens = reverse and left > 0
    return Netting(tuple(closes_), opens=opens, quantity=left if opens else None)
