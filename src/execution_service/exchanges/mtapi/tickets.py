"""Finding tickets: the one our order opened (by magic number and comment), and the one that now
carries a position after MT4 partial closes, in OpenedOrders and then OrderHistory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from execution_service.exchanges.base import InvalidOrder, OrderNotFound
from execution_service.exchanges.mtapi.gateway import Gateway
from execution_service.exchanges.mtapi.parsing import (
    FROM,
    TO,
    Ticket,
    as_int,
    comment,
    magic_number,
    mt_symbol,
    tickets,
)


class Tickets:
    """The tickets of one account, read through its gateway session."""

    def __init__(self, gateway: Gateway, *, history_days: int) -> None:
        self._gateway = gateway
        self._history_days = history_days

    async def opened(self) -> list[Ticket]:
        return tickets(await self._gateway.read("/OpenedOrders", {}), "/OpenedOrders")

    async def history(self) -> list[Ticket]:
        # Broker server time runs up to a few hours ahead of UTC: a day of margin on `to`.
        now = datetime.now(UTC).replace(tzinfo=None)
        window = {
            "from": (now - timedelta(days=self._history_days)).strftime("%Y-%m-%dT%H:%M:%S"),
            "to": (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        }
        return tickets(await self._gateway.read("/OrderHistory", window), "/OrderHistory")

    async def lookup(
        self, symbol: str, order_id: str | None, client_order_id: str | None
    ) -> tuple[Ticket, bool]:
        """A ticket by number or by our client order id, and whether it is still open."""
        if order_id:
            opened = await self.opened()
            found = next((t for t in opened if str(t.get("ticket")) == str(order_id)), None)
            if found is not None:
                return found, True
            history = await self.history()
            found = next((t for t in history if str(t.get("ticket")) == str(order_id)), None)
            if found is not None:
                return found, False
            raise OrderNotFound(f"mtapi has no ticket {order_id}")
        if client_order_id:
            hit = await self.find_by_client_id(mt_symbol(symbol), client_order_id)
            if hit is None:
                raise OrderNotFound(f"mtapi has no ticket for client order id {client_order_id}")
            return hit
        raise InvalidOrder("order_id or client_order_id is required")

    async def find_by_client_id(
        self, name: str, client_order_id: str
    ) -> tuple[Ticket, bool] | None:
        """The ticket our order opened: same symbol and magic, preferring one whose comment
        still starts with the id; else the lowest such ticket, the original (an MT4 partial
        close leaves the original "to #N" in history and an heir "from #M" with our magic)."""
        magic = magic_number(client_order_id)

        def ours(t: Ticket) -> bool:
            return as_int(t.get("magicNumber")) == magic and t.get("symbol") == name

        def named(t: Ticket) -> bool:
            return str(t.get("comment") or "").startswith(client_order_id)

        opened = [(t, True) for t in await self.opened() if ours(t)]
        if any(named(t) for t, _ in opened):
            return next((t, o) for t, o in opened if named(t))
        found = opened + [(t, False) for t in await self.history() if ours(t)]
        pool = [(t, o) for t, o in found if named(t)] or found
        return min(pool, key=lambda c: as_int(c[0].get("ticket"))) if pool else None

    async def live_ticket(self, order_id: str) -> Ticket:
        """The open ticket now carrying what ticket `order_id` opened: itself, or its heir after
        MT4 partial closes (heirs say "from #<old>"; the closed parts say "to #<heir>")."""
        opened = {str(t.get("ticket")): t for t in await self.opened()}
        heirs = {m.group(1): t for t in opened.values() if (m := FROM.match(comment(t)))}
        history: dict[str, Ticket] | None = None
        current = str(order_id)
        for _ in range(100):  # a chain is one link per partial close
            if current in opened:
                return opened[current]
            if current in heirs:
                return heirs[current]
            if history is None:
                history = {str(t.get("ticket")): t for t in await self.history()}
            link = TO.match(comment(history.get(current, {})))
            if link is None:
                break
            current = link.group(1)
        raise OrderNotFound(f"ticket {order_id} has nothing left open")
