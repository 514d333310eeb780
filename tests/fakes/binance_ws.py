"""Binance's market streams over websocket, served beside a fake's REST API: spot's raw streams
at `/ws/<n>` (ccxt.pro's `urls.api.ws.spot`, `wss://stream.binance.com:9443/ws`, plus the
stream number it appends) and USDⓈ-M's at `/market/ws/<n>` (`wss://fstream.binance.com/ws`,
which ccxt.pro rewrites to its `/market/ws` category).

What Binance's "WebSocket Streams" reference says, as far as ccxt.pro reads it:
- live subscribing: `{"method": "SUBSCRIBE", "params": ["btcusdt@miniTicker"], "id": 1}` is
  answered `{"result": null, "id": 1}`; `UNSUBSCRIBE` the same; `LIST_SUBSCRIPTIONS` answers
  the streams in `result`; anything else is refused with Binance's `{"code", "msg", "id"}`;
- `<symbol>@miniTicker` pushes `24hrMiniTicker` events (what `watch_tickers` subscribes to by
  default), `<symbol>@ticker` `24hrTicker` ones, `!miniTicker@arr` / `!ticker@arr` an array of
  every symbol's; field letters as in the reference (`E` event time, `s` symbol, `c` last, ...);
- an event goes out when the symbol's price changes (whatever changed it: `set_price`, a fill),
  at once, and every `push_seconds` besides (Binance's 1000 ms update speed), for each symbol
  subscribed; a new subscription gets its symbols' tickers at once;
- ping frames are answered with pongs (uvicorn's websocket protocol does it), and the server
  pings every 20 s as Binance spot does (uvicorn's default interval).

Switches for tests: `quiet` (connected, but nothing pushed: a silent stream), `drop_all()` (every
socket closed by the server: clients reconnect), `go_down()` / `come_up()` (sockets closed and
new ones refused, while the REST API keeps answering).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

WATCH_SECONDS = 0.002  # how often prices are compared for a change
KINDS = {"miniTicker": "24hrMiniTicker", "ticker": "24hrTicker"}


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(eq=False)
class _Socket:
    ws: WebSocket
    path: str
    streams: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, message: Any) -> None:
        async with self.lock:
            await self.ws.send_text(json.dumps(message))


class MarketStreams:
    def __init__(
        self,
        app: Starlette,
        prices: Callable[[], Mapping[str, Decimal]],
        fmt: Callable[[Decimal], str],
        *,
        path: str,
        spot: bool,
        push_seconds: float = 1.0,
    ) -> None:
        self._prices, self._fmt, self._spot = prices, fmt, spot
        self.push_seconds = push_seconds
        for route in (f"{path}/{{stream}}", path):
            app.router.routes.insert(0, WebSocketRoute(route, self._socket))
        self.sockets: list[_Socket] = []
        self._watch: asyncio.Task[None] | None = None
        self.reset()

    def reset(self) -> None:
        """No switch on, nothing recorded (open sockets stay: `drop_all` closes them)."""
        self.down = False
        self.quiet = False
        self.sent: list[dict[str, Any]] = []  # every event pushed, oldest first
        self.commands: list[dict[str, Any]] = []  # every message received from clients
        self.connections = 0  # sockets accepted so far

    # --- switches ----------------------------------------------------------------------------

    @property
    def subscriptions(self) -> set[str]:
        """Every stream some open socket is subscribed to."""
        return {s for socket in self.sockets for s in socket.streams}

    def drop_all(self) -> None:
        """Close every socket (a venue's disconnect, or its 24-hour cut): clients reconnect."""
        for socket in list(self.sockets):
            asyncio.get_running_loop().create_task(_close(socket.ws))

    def go_down(self) -> None:
        """Close every socket and refuse new ones (the REST API still answers)."""
        self.down = True
        self.drop_all()

    def come_up(self) -> None:
        self.down = False

    # --- sockets -----------------------------------------------------------------------------

    async def _socket(self, ws: WebSocket) -> None:
        if self.down:
            await ws.close(code=1013)  # before accepting: the handshake fails (HTTP 403)
            return
        await ws.accept()
        self.connections += 1
        socket = _Socket(ws, ws.url.path)
        self.sockets.append(socket)
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._push_changes())
        try:
            while True:
                await self._command(socket, await ws.receive_text())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.sockets.remove(socket)

    async def _command(self, socket: _Socket, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            await socket.send({"code": 3, "msg": "Invalid JSON: expected value", "id": None})
            return
        self.commands.append(message)
        method, ident = message.get("method"), message.get("id")
        params = message.get("params") or []
        if method == "SUBSCRIBE":
            socket.streams.update(params)
            await socket.send({"result": None, "id": ident})
            if not self.quiet:  # the first ticker at once, not a second later
                for event in self._events([p for p in params if isinstance(p, str)]):
                    await self._send(socket, event)
        elif method == "UNSUBSCRIBE":
            socket.streams.difference_update(params)
            await socket.send({"result": None, "id": ident})
        elif method == "LIST_SUBSCRIPTIONS":
            await socket.send({"result": sorted(socket.streams), "id": ident})
        else:
            msg = f"Invalid request: unknown variant {method}, expected one of SUBSCRIBE, "
            msg += "UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY"
            await socket.send({"code": 2, "msg": msg, "id": ident})

    async def _push_changes(self) -> None:
        last: dict[str, Decimal] = dict(self._prices())
        pushed = time.monotonic()
        while self.sockets:
            await asyncio.sleep(WATCH_SECONDS)
            prices = dict(self._prices())
            due = time.monotonic() - pushed >= self.push_seconds
            changed = set(prices) if due else {s for s, p in prices.items() if last.get(s) != p}
            last, pushed = prices, (time.monotonic() if due else pushed)
            if not changed or self.quiet:
                continue
            for socket in list(self.sockets):
                streams = [s for s in socket.streams if _symbol(s) in changed or "!" in s]
                for event in self._events(streams, changed):
                    with contextlib.suppress(Exception):  # a socket closing meanwhile
                        await self._send(socket, event)

    async def _send(self, socket: _Socket, event: Any) -> None:
        self.sent.append(event if isinstance(event, dict) else {"arr": event})
        await socket.send(event)

    # --- events ------------------------------------------------------------------------------

    def _events(self, streams: list[str], only: set[str] | None = None) -> list[Any]:
        prices = self._prices()
        events: list[Any] = []
        for stream in streams:
            name, _, kind = stream.partition("@")
            if name.startswith("!"):  # !miniTicker@arr: every symbol's, one array
                kind = name[1:]
                symbols = sorted(only if only is not None else prices)
                events.append([self._ticker(kind, s, prices[s]) for s in symbols if s in prices])
                continue
            symbol = name.upper()
            if kind in KINDS and symbol in prices and (only is None or symbol in only):
                events.append(self._ticker(kind, symbol, prices[symbol]))
        return events

    def _ticker(self, kind: str, symbol: str, price: Decimal) -> dict[str, Any]:
        last, now = self._fmt(price), now_ms()
        volume = self._fmt(Decimal(1000))
        if kind == "miniTicker":
            return {
                "e": "24hrMiniTicker",
                "E": now,
                "s": symbol,
                "c": last,
                "o": last,
                "h": last,
                "l": last,
                "v": volume,
                "q": self._fmt(Decimal(1000) * price),
            }
        zero = self._fmt(Decimal(0))
        event: dict[str, Any] = {
            "e": "24hrTicker",
            "E": now,
            "s": symbol,
            "p": zero,
            "P": "0.000",
            "w": last,
        }
        if self._spot:  # USDⓈ-M's ticker has no previous close, best bid or best ask
            event |= {"x": last, "c": last, "Q": self._fmt(Decimal("0.1"))}
            event |= {"b": last, "B": self._fmt(Decimal(1)), "a": last, "A": self._fmt(Decimal(1))}
        else:
            event |= {"c": last, "Q": self._fmt(Decimal("0.1"))}
        event |= {"o": last, "h": last, "l": last, "v": volume, "q": self._fmt(1000 * price)}
        event |= {"O": now - 86_400_000, "C": now, "F": 1, "L": 1000, "n": 1000}
        return event


def _symbol(stream: str) -> str:
    return stream.partition("@")[0].upper()


async def _close(ws: WebSocket) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code=1001)
