"""The fake Binance spot's user data stream, served on its WebSocket API (`/ws-api/v3`, the path
of ccxt.pro's `urls.api.ws['ws-api'].spot`, `wss://ws-api.binance.com:443/ws-api/v3`).

What ccxt 4.5.90's `watch_orders` on spot does (`ensure_user_data_stream_ws_subscribe_signature`)
and Binance's spot WebSocket API reference ("Request security", "User Data Stream requests",
"User Data Streams") say, as served here:
- a request is `{"id": .., "method": .., "params": {..}}`; the answer echoes the id:
  `{"id": .., "status": 200, "result": ..}`, or `{"id": .., "status": 4xx, "error": {"code",
  "msg"}}`;
- `userDataStream.subscribe.signature` with `apiKey`, `timestamp` (, `recvWindow`) and
  `signature`: HMAC-SHA256 (hex, the key's secret) of every other parameter sorted by name as
  `name=value` joined by `&`. An unknown key is -2015 (401), a wrong signature -1022, a
  missing or stale timestamp -1102 / -1021 (400). Answered `{"subscriptionId": n}`, n counting
  from 0 on each connection; `userDataStream.unsubscribe` (one id, or all) and
  `session.subscriptions` as documented;
- then each change of an order of that key (placed, traded, cancelled, expired) is pushed as
  `{"subscriptionId": n, "event": {"e": "executionReport", ..}}` with the field letters of the
  "Order Update" reference (one event per trade, `l`/`L`/`n`/`N` its own, `z`/`Z` cumulative; a
  cancel's `c` is the cancel's id and `C` the order's), and an OCO's list as `listStatus`.

An order belongs to the API key whose request placed it (`FakeOrder.api_key`). Changes are found
by watching the book every few milliseconds (whatever changed it: a fill, `set_price`, a test),
like the USDⓈ-M fake's stream. Not served: `session.logon`, `userDataStream.subscribe` on a
logged-on session, listen tokens, Ed25519/RSA keys, `outboundAccountPosition` / `balanceUpdate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

if TYPE_CHECKING:
    from tests.fakes.binance import FakeBinance, FakeOrder

WATCH_SECONDS = 0.002
EIGHT = Decimal("0.00000001")
PATH = "/ws-api/v3"
ERRORS = {
    -1021: "Timestamp for this request is outside of the recvWindow.",
    -1022: "Signature for this request is not valid.",
    -2015: "Invalid API-key, IP, or permissions for action.",
}


class WsApiError(Exception):
    def __init__(self, code: int, msg: str | None = None, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg or ERRORS[code], status


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _fmt(value: Decimal) -> str:
    return f"{value:.8f}"


def payload(params: dict[str, Any]) -> str:
    """What a WebSocket API request signs: its parameters but `signature`, sorted by name."""
    return "&".join(f"{k}={_text(v)}" for k, v in sorted(params.items()) if k != "signature")


@dataclass(eq=False)
class Session:
    ws: WebSocket
    subscriptions: dict[int, str] = field(default_factory=dict)  # subscriptionId -> API key
    next_id: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, message: dict[str, Any]) -> None:
        async with self.lock:
            await self.ws.send_text(json.dumps(message))


class UserDataStreams:
    def __init__(self, fake: FakeBinance) -> None:
        self.fake = fake
        self.sessions: list[Session] = []
        fake.app.router.routes.insert(0, WebSocketRoute(PATH, self._socket))
        self._watch: asyncio.Task[None] | None = None
        self.reset()

    def reset(self) -> None:
        """Nothing recorded; the book's next orders are news (open sessions stay)."""
        self.sent: list[dict[str, Any]] = []  # every event pushed (the event itself)
        self.requests: list[dict[str, Any]] = []  # every request received
        self.refused: list[dict[str, Any]] = []  # every error answered
        # order id -> (fills told, status told, working told)
        self._seen: dict[int, tuple[int, str, bool]] = {}
        self._lists: dict[int, str] = {}  # order list id -> listOrderStatus told
        self._execution_id = 0

    def subscribed(self, api_key: str | None = None) -> int:
        """How many subscriptions are open (for `api_key`, or any)."""
        return sum(
            1 for s in self.sessions for k in s.subscriptions.values() if api_key in (None, k)
        )

    def drop_all(self) -> None:
        """Close every session (a venue's disconnect): clients must reconnect."""
        for session in list(self.sessions):
            asyncio.get_running_loop().create_task(_close(session.ws))

    # --- the socket ------------------------------------------------------------------------

    async def _socket(self, socket: WebSocket) -> None:
        await socket.accept()
        session = Session(socket)
        self.sessions.append(session)
        try:
            while True:
                await self._request(session, await socket.receive_text())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.sessions.remove(session)

    async def _request(self, session: Session, text: str) -> None:
        try:
            message = json.loads(text)
            assert isinstance(message, dict)
        except (ValueError, AssertionError):
            await session.send(_error(None, WsApiError(-1000, "Malformed request.")))
            return
        self.requests.append(message)
        rid, method = message.get("id"), message.get("method")
        params = message.get("params") or {}
        try:
            if method == "userDataStream.subscribe.signature":
                result: Any = self._subscribe(session, params)
            elif method == "userDataStream.unsubscribe":
                result = self._unsubscribe(session, params)
            elif method == "session.subscriptions":
                result = [{"subscriptionId": i} for i in sorted(session.subscriptions)]
            else:
                raise WsApiError(-1000, f"Unknown method {method!r}.")  # not served here
        except WsApiError as e:
            answer = _error(rid, e)
            self.refused.append(answer)
            await session.send(answer)
            return
        await session.send({"id": rid, "status": 200, "result": result})

    def _subscribe(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        key = params.get("apiKey")
        for name in ("apiKey", "timestamp", "signature"):
            if name not in params:
                raise WsApiError(-1102, f"Mandatory parameter '{name}' was not sent.")
        secret = self.fake.api_secret if key == self.fake.api_key else None
        secret = secret or self.fake.more_keys.get(str(key))
        if secret is None:
            raise WsApiError(-2015, status=401)
        expected = hmac.new(secret.encode(), payload(params).encode(), hashlib.sha256)
        if not hmac.compare_digest(str(params["signature"]), expected.hexdigest()):
            raise WsApiError(-1022)
        lag = _now() - int(params["timestamp"])
        if lag < -1000 or lag > int(params.get("recvWindow", 5000)):
            raise WsApiError(-1021)
        if str(key) in session.subscriptions.values():  # one per account per connection
            raise WsApiError(-2210, "Invalid request: already subscribed to this account.")
        if not self.subscribed():  # what the book holds before anyone listens is not news
            self._changes()
        sid, session.next_id = session.next_id, session.next_id + 1
        session.subscriptions[sid] = str(key)
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._watch_book())
        return {"subscriptionId": sid}

    def _unsubscribe(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        sid = params.get("subscriptionId")
        if sid is None:
            session.subscriptions.clear()
        elif session.subscriptions.pop(int(sid), None) is None:
            raise WsApiError(-2211, f"Invalid request: no subscription {sid}.")
        return {}

    # --- the events ------------------------------------------------------------------------

    async def _watch_book(self) -> None:
        while self.subscribed():
            for key, event in self._changes():
                self.sent.append(event)
                for session in list(self.sessions):
                    for sid, owner in list(session.subscriptions.items()):
                        if owner == key:
                            with contextlib.suppress(Exception):
                                await session.send({"subscriptionId": sid, "event": event})
            await asyncio.sleep(WATCH_SECONDS)

    def _changes(self) -> list[tuple[str | None, dict[str, Any]]]:
        events: list[tuple[str | None, dict[str, Any]]] = []
        for order in self.fake.orders:
            told, status, working = self._seen.get(order.order_id, (-1, "", False))
            if told < 0:
                events.append((order.api_key, self._report(order, "NEW", "NEW")))
                told, status, working = 0, "NEW", order.working
            if order.working and not working and len(order.fills) == told and order.is_open:
                # A stop reached its price and rests on the book now (`w` true, `W` set).
                events.append((order.api_key, self._report(order, "NEW", "NEW")))
            for n in range(told, len(order.fills)):
                events.append((order.api_key, self._trade(order, n)))
                status = events[-1][1]["X"]
            if order.status != status and order.status in ("CANCELED", "EXPIRED", "REJECTED"):
                events.append((order.api_key, self._report(order, order.status, order.status)))
                status = order.status
            self._seen[order.order_id] = (len(order.fills), status, order.working)
        for ol in self.fake.oco.lists:
            list_status = ol.statuses[1]
            if self._lists.get(ol.order_list_id) != list_status:
                self._lists[ol.order_list_id] = list_status
                events.append((ol.legs[0].api_key, _list_status(ol)))
        return events

    def _report(self, o: FakeOrder, execution: str, status: str) -> dict[str, Any]:
        """An executionReport of `o` with nothing traded in it (NEW, CANCELED, EXPIRED)."""
        self._execution_id += 1
        now = _now()
        cancelled = execution == "CANCELED"
        done = [] if execution == "NEW" else o.fills  # a NEW report: nothing traded yet
        filled = sum((Decimal(f["qty"]) for f in done), Decimal(0))
        quote = sum((_cost(f) for f in done), Decimal(0))
        report = {
            "e": "executionReport",
            "E": now,
            "s": o.symbol,
            # A cancel's own id is `c`; the order's, `C` ("" on every other report).
            "c": "web_" + secrets.token_hex(11) if cancelled else o.client_order_id,
            "S": o.side,
            "o": o.type,
            "f": o.time_in_force or "GTC",
            "q": _fmt(o.orig_qty),
            "p": _fmt(o.price),
            "P": _fmt(o.stop_price),
            "F": _fmt(Decimal(0)),
            "g": o.order_list_id,
            "C": o.client_order_id if cancelled else "",
            "x": execution,
            "X": status,
            "r": "NONE",
            "i": o.order_id,
            "l": _fmt(Decimal(0)),
            "z": _fmt(filled),
            "L": _fmt(Decimal(0)),
            "n": "0",
            "N": None,
            "T": o.time if execution == "NEW" else now,
            "t": -1,
            "I": self._execution_id,
            "w": o.working and status in ("NEW", "PARTIALLY_FILLED"),
            "m": False,
            "M": False,
            "O": o.time,
            "Z": _fmt(quote),
            "Y": _fmt(Decimal(0)),
            "Q": _fmt(o.orig_quote_qty),
            "V": "EXPIRE_MAKER",
        }
        if o.working_time >= 0:
            report["W"] = o.working_time
        return report

    def _trade(self, o: FakeOrder, n: int) -> dict[str, Any]:
        """The executionReport of `o`'s `n`th fill (TRADE), cumulative figures as of it."""
        fill = o.fills[n]
        done = o.fills[: n + 1]
        filled = sum((Decimal(f["qty"]) for f in done), Decimal(0))
        status = "FILLED" if filled >= o.orig_qty else "PARTIALLY_FILLED"
        report = self._report(o, "TRADE", status)
        report.update(
            {
                "T": o.update_time,
                "l": fill["qty"],
                "z": _fmt(filled),
                "L": fill["price"],
                "n": fill["commission"],
                "N": fill["commissionAsset"],
                "t": fill["tradeId"],
                "w": status == "PARTIALLY_FILLED",
                "m": not o.is_taker,
                "Z": _fmt(sum((_cost(f) for f in done), Decimal(0))),
                "Y": _fmt(_cost(fill)),
            }
        )
        return report


def _list_status(ol: Any) -> dict[str, Any]:
    status_type, order_status = ol.statuses
    return {
        "e": "listStatus",
        "E": _now(),
        "s": ol.symbol,
        "g": ol.order_list_id,
        "c": "OCO",
        "l": status_type,
        "L": order_status,
        "r": "NONE",
        "C": ol.list_client_order_id,
        "T": ol.transaction_time,
        "O": [{"s": o.symbol, "i": o.order_id, "c": o.client_order_id} for o in ol.legs],
    }


def _cost(fill: dict[str, Any]) -> Decimal:
    # As the fake's book counts it (cummulativeQuoteQty): price x qty, 8 places, down.
    return (Decimal(fill["price"]) * Decimal(fill["qty"])).quantize(EIGHT, rounding=ROUND_DOWN)


def _error(rid: Any, e: WsApiError) -> dict[str, Any]:
    return {"id": rid, "status": e.status, "error": {"code": e.code, "msg": e.msg}}


def _now() -> int:
    return int(time.time() * 1000)


async def _close(socket: WebSocket) -> None:
    with contextlib.suppress(Exception):
        await socket.close(code=1001)
