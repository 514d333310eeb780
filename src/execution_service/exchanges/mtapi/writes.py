"""The two gateway writes that must not double-trade: OrderSend and a partial OrderClose are sent
again after an expired session only when they provably were not placed the first time (and
never retried on any other failure)."""

from __future__ import annotations

from decimal import Decimal

from execution_service.exchanges.base import TemporaryError
from execution_service.exchanges.mtapi.gateway import Gateway, TokenExpired, expect
from execution_service.exchanges.mtapi.parsing import Ticket
from execution_service.exchanges.mtapi.tickets import Tickets
from execution_service.exchanges.values import plain


async def order_send(
    gateway: Gateway, tickets: Tickets, name: str, client_order_id: str, params: dict[str, str]
) -> tuple[Ticket, bool]:
    """The ticket OrderSend opened for `client_order_id` on symbol `name`, and whether it is
    still open."""
    token = await gateway.session()
    try:
        body = await gateway.get("/OrderSend", {"id": token, **params})
        return expect(body, dict, "/OrderSend"), True
    except TokenExpired:
        pass
    # INVALID_TOKEN is the gateway refusing the session before it forwards anything to the
    # broker, so the order was not placed and sending it again is safe. Belt and braces, it
    # is first looked up by magic/comment after reconnecting: if a gateway ever answered
    # INVALID_TOKEN having forwarded the order, the lookup finds it and nothing is resent.
    await gateway.reconnect(token)
    found = await tickets.find_by_client_id(name, client_order_id)
    if found is not None:
        return found
    try:
        body = await gateway.get("/OrderSend", {"id": await gateway.session(), **params})
    except TokenExpired:
        raise TemporaryError("mtapi refused a fresh session token on OrderSend") from None
    return expect(body, dict, "/OrderSend"), True


async def order_close(
    gateway: Gateway,
    tickets: Tickets,
    order_id: str,
    live: Ticket,
    lots: Decimal,
    slippage: str,
) -> Ticket:
    """The closed ticket after closing `lots` of `live`, the ticket now carrying `order_id`."""
    params = {"ticket": str(live.get("ticket")), "lots": plain(lots)}
    params["slippage"] = slippage
    token = await gateway.session()
    try:
        return expect(await gateway.get("/OrderClose", {"id": token, **params}), dict, "close")
    except TokenExpired:
        pass
    # As for OrderSend the close was not forwarded; but a partial close sent twice closes
    # twice, so it is resent only if the position is exactly as it was before.
    await gateway.reconnect(token)
    now = await tickets.live_ticket(order_id)
    if now.get("ticket") != live.get("ticket") or now.get("lots") != live.get("lots"):
        raise TemporaryError(f"ticket {order_id} changed while reconnecting: outcome unknown")
    body = await gateway.call("/OrderClose", params)
    return expect(body, dict, "/OrderClose")
