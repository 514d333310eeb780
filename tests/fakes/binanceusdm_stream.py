"""The fake Binance USDⓈ-M's user data stream: a listen key from `POST /fapi/v1/listenKey` (the
API key header, no signature; `PUT` keeps it alive, `DELETE` closes it), then a websocket at
`/private/ws?listenKey=<key>` (Binance's current private endpoint; `/ws/<key>` too) pushing `ORDER_TRADE_UPDATE` for orders and `ALGO_UPDATE` for algo
(conditional) orders as they change, in the payloads of Binance's "User Data Streams"
reference (the field letters ccxt.pro's binance `handle_order_update` reads).

Changes are found by watching the book every few milliseconds (what a test or a price move did
to it), so every way an order changes (placed, filled, fired, cancelled, expired) is pushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from typing import TYPE_CHECKING, Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes.binanceusdm_algo import TYPES, algo_status
from tests.fakes.venue import Call, Order, Refusal, Trigger, now_ms, plain

if TYPE_CHECKING:
    from tests.fakes.binanceusdm import FakeBinanceUsdm

WATCH_SECONDS = 0.002
_ORDER_STATUS = {
    "new": "NEW",
    "partially_filled": "PARTIALLY_FILLED",
    "filled": "FILLED",
    "canceled": "CANCELED",
}


class UserDataStream:
    def __init__(self, fake: FakeBinanceUsdm) -> None:
        self.fake = fake
        self.keys: set[str] = set()
        self.sockets: dict[str, list[WebSocket]] = {}
        self.sent: list[dict[str, Any]] = []  # every event pushed, for tests
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._watch: asyncio.Task[None] | None = None
        # Binance's current private endpoint (`/private/ws?listenKey=`), and the older one.
        fake.app.router.routes.insert(0, WebSocketRoute("/private/ws", self._socket))
        fake.app.router.routes.insert(0, WebSocketRoute("/ws/{key}", self._socket))

    @property
    def routes(self) -> dict[tuple[str, str], tuple[bool, Any]]:
        return {
            ("POST", "/fapi/v1/listenKey"): (False, self._new_key),
            ("PUT", "/fapi/v1/listenKey"): (False, self._keep_key),
            ("DELETE", "/fapi/v1/listenKey"): (False, self._close_key),
        }

    def drop_all(self) -> None:
        """Close every stream's socket (a venue's disconnect): clients must reconnect."""
        for sockets in self.sockets.values():
            for socket in sockets:
                asyncio.get_running_loop().create_task(_close(socket))

    # --- listen keys -----------------------------------------------------------------------

    def _api_key(self, call: Call) -> None:
        if call.request.headers.get("x-mbx-apikey") != self.fake.api_key:
            raise Refusal("auth", "API-key format invalid.")

    async def _new_key(self, call: Call) -> dict[str, Any]:
        self._api_key(call)
        key = secrets.token_urlsafe(48)
        self.keys.add(key)
        return {"listenKey": key}

    async def _keep_key(self, call: Call) -> dict[str, Any]:
        self._api_key(call)
        return {}

    async def _close_key(self, call: Call) -> dict[str, Any]:
        self._api_key(call)
        return {}

    # --- the socket ------------------------------------------------------------------------

    async def _socket(self, socket: WebSocket) -> None:
        key = socket.path_params.get("key") or socket.query_params.get("listenKey", "")
        if key not in self.keys:
            await socket.close(code=4001)
            return
        await socket.accept()
        self.sockets.setdefault(key, []).append(socket)
        if self._watch is None or self._watch.done():
            self._snapshot()
            self._watch = asyncio.get_running_loop().create_task(self._watch_book())
        try:
            while True:
                await socket.receive_text()  # pings and pongs are the server's; nothing to do
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.sockets[key].remove(socket)

    async def _watch_book(self) -> None:
        while any(self.sockets.values()):
            for event in self._changes():
                self.sent.append(event)
                text = json.dumps(event)
                for sockets in list(self.sockets.values()):
                    for socket in list(sockets):
                        with contextlib.suppress(Exception):
                            await socket.send_text(text)
            await asyncio.sleep(WATCH_SECONDS)

    def _snapshot(self) -> None:
        for event in self._changes():  # what was there before anyone listened: not news
            del event

    def _changes(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for order in self.fake.book.orders:
            state = (order.status, order.filled)
            if self._seen.get(f"o{order.id}") != state:
                self._seen[f"o{order.id}"] = state
                events.append(self._order_event(order))
        for trigger in self.fake.book.triggers:
            state = (algo_status(self.fake, trigger),)
            if self._seen.get(f"a{trigger.id}") != state:
                self._seen[f"a{trigger.id}"] = state
                events.append(self._algo_event(trigger, state[0]))
        return events

    def _order_event(self, o: Order) -> dict[str, Any]:
        last = o.fills[-1] if o.fills else None
        now = now_ms()
        return {
            "e": "ORDER_TRADE_UPDATE",
            "E": now,
            "T": now,
            "o": {
                "s": o.inst.id,
                "c": o.client_id,
                "S": o.side.upper(),
                "o": o.type.upper(),
                "f": "GTC",
                "q": plain(o.qty),
                "p": plain(o.price) if o.price is not None else "0",
                "ap": plain(o.average) if o.average is not None else "0",
                "sp": "0",
                "x": "TRADE" if last is not None else "NEW",
                "X": _ORDER_STATUS.get(o.status, "EXPIRED"),
                "i": int(o.id),
                "l": plain(last.qty) if last else "0",
                "z": plain(o.filled),
                "L": plain(last.price) if last else "0",
                "N": o.fee_ccy if last else "USDT",
                "n": plain(last.fee) if last else "0",
                "T": last.time if last else now,
                "t": last.id if last else 0,
                "b": "0",
                "a": "0",
                "m": False,
                "R": o.reduce_only,
                "wt": "CONTRACT_PRICE",
                "ot": o.type.upper(),
                "ps": "BOTH",
                "cp": False,
                "rp": plain(last.pnl) if last else "0",
                "pP": False,
                "si": 0,
                "ss": 0,
                "V": "EXPIRE_MAKER",
                "pm": "NONE",
                "gtd": 0,
            },
        }

    def _algo_event(self, t: Trigger, status: str) -> dict[str, Any]:
        order = self.fake.book.find(t.order_id) if t.order_id else None
        now = now_ms()
        return {
            "e": "ALGO_UPDATE",
            "T": now,
            "E": now,
            "o": {
                "caid": t.client_id,
                "aid": int(t.id),
                "at": "CONDITIONAL",
                "o": TYPES[t.kind],
                "s": t.inst.id,
                "S": t.side.upper(),
                "ps": "BOTH",
                "f": "GTC",
                "q": plain(t.qty) if t.qty is not None else "0",
                "X": status,
                "ai": order.id if order is not None else "",
                "ap": plain(order.average) if order and order.average is not None else "0",
                "aq": plain(order.filled) if order is not None else "0",
                "act": "MARKET" if order is not None else "0",
                "tp": plain(t.trigger) if t.trigger is not None else "0",
                "p": "0",
                "V": "EXPIRE_MAKER",
                "wt": "CONTRACT_PRICE",
                "pm": "NONE",
                "cp": t.qty is None,
                "pP": False,
                "R": t.reduce_only,
                "tt": 0,
                "gtd": 0,
            },
        }


async def _close(socket: WebSocket) -> None:
    with contextlib.suppress(Exception):
        await socket.close(code=1001)
