"""A fake OKX (API v5, trading account: spot and USDT-margined perpetual swaps) that real ccxt
talks to over loopback.

Shaped on ccxt's own static test data for OKX (`ts/src/test/static/{markets,request,response}/
okx.json`) and OKX's v5 reference: instruments as `public/instruments` lists them (BTC-USDT-SWAP
is 0.01 BTC a contract), every answer `{"code", "msg", "data": [...]}`, and an order's refusal
nested in `data[0].sCode / sMsg` under a top-level "All operations failed". Private requests are
checked as OKX checks them: OK-ACCESS-KEY, OK-ACCESS-PASSPHRASE, OK-ACCESS-TIMESTAMP (ISO 8601,
within 30 s) and OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, timestamp + method + path + body)).
`clOrdId` takes letters and digits only, at most 32. Orders answer with their ids only (`sCode`
"0"); their state is read from `trade/order`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.responses import JSONResponse, Response

from tests.fakes.venue import (
    Book,
    Call,
    Closed,
    Instrument,
    Order,
    Refusal,
    VenueServer,
    now_ms,
    plain,
    serve_alone,
)

D = Decimal

# instId base quote swap | lotSz minSz tickSz | ctVal (swaps) -- OKX's numbers in ccxt's fixture.
INSTRUMENTS = [
    Instrument("BTC-USDT", "BTC", "USDT", False, D("0.00000001"), D("0.00001"), D("0.1")),
    Instrument("ETH-USDT", "ETH", "USDT", False, D("0.000001"), D("0.0001"), D("0.01")),
    Instrument(
        "BTC-USDT-SWAP", "BTC", "USDT", True, D("0.1"), D("0.1"), D("0.1"), D("0.01"), D(12000)
    ),
    Instrument(
        "ETH-USDT-SWAP", "ETH", "USDT", True, D("0.1"), D("0.1"), D("0.01"), D("0.1"), D(20000)
    ),
    Instrument(
        "BTC-USD-SWAP", "BTC", "USD", True, D(1), D(1), D("0.1"), D(100), D(30000), inverse=True
    ),
]
PRICES = {"BTC-USDT": D(50000), "ETH-USDT": D(3000)}
BALANCES = {"USDT": D(10000), "BTC": D(1), "ETH": D(10)}
# ccxt's fee schedule for OKX (its markets' taker): what the fake charges.
SPOT_FEE, SWAP_FEE = D("0.0015"), D("0.0005")

# OKX's codes for what the book refuses (ccxt maps each: okx.py `exceptions`).
CODES = {
    "insufficient": ("51008", "Order failed. Insufficient USDT margin in account"),
    "min_size": ("51020", "Your order should meet or exceed the minimum order amount."),
    "lot_size": ("51121", "Order quantity must be a multiple of the lot size."),
    "max_size": ("51202", "Market order amount exceeds the maximum amount."),
    "tick_size": ("51000", "Parameter px error"),
    "min_notional": ("51020", "Your order should meet or exceed the minimum order amount."),
    "reduce_only": ("51205", "Reduce Only is not available."),
    "param": ("51000", "Parameter error"),
    "unknown_symbol": ("51001", "Instrument ID does not exist."),
    "client_id": ("51000", "Parameter clOrdId error"),
    "duplicate_client_id": ("51016", "Duplicated clOrdId"),
    "hedge": ("51000", "Parameter posSide error"),
    "not_found": ("51603", "Order does not exist"),
    "not_open": ("51402", "Order cancellation failed as the order has been completed."),
    "leverage": ("59102", "Leverage exceeds the maximum leverage. Adjust the leverage."),
}
AUTH = {
    "key": ("50111", "Invalid OK-ACCESS-KEY."),
    "passphrase": ("50105", "Your OK-ACCESS-PASSPHRASE is incorrect."),
    "sign": ("50113", "Invalid Sign."),
    "timestamp": ("50102", "Timestamp request expired."),
}
STATES = {"new": "live", "partially_filled": "partially_filled", "filled": "filled"}
STATES["canceled"] = "canceled"
CLOSE_TYPES = {"close": "2", "liquidation": "3"}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class FakeOkx(VenueServer):
    order_path = ("POST", "/api/v5/trade/batch-orders")

    def __init__(
        self,
        *,
        api_key: str = "fake-okx-key",
        api_secret: str = "fake-okx-secret",
        passphrase: str = "fake-okx-passphrase",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.api_key, self.api_secret, self.passphrase = api_key, api_secret, passphrase
        self.book = Book(
            INSTRUMENTS,
            {
                **PRICES,
                "BTC-USDT-SWAP": D(50000),
                "ETH-USDT-SWAP": D(3000),
                "BTC-USD-SWAP": D(50000),
            },
            BALANCES,
            spot_fee=SPOT_FEE,
            swap_fee=SWAP_FEE,
        )
        p = "/api/v5"
        self.routes = {
            ("GET", f"{p}/public/instruments"): (False, self._instruments),
            ("GET", f"{p}/market/ticker"): (False, self._ticker),
            ("GET", f"{p}/market/tickers"): (False, self._tickers),
            ("GET", f"{p}/account/balance"): (True, self._balance),
            ("GET", f"{p}/account/config"): (True, self._config),
            ("POST", f"{p}/trade/batch-orders"): (True, self._place),
            ("GET", f"{p}/trade/order"): (True, self._order),
            ("POST", f"{p}/trade/cancel-order"): (True, self._cancel),
            ("GET", f"{p}/trade/orders-pending"): (True, self._pending),
            ("GET", f"{p}/account/positions"): (True, self._positions),
            ("POST", f"{p}/account/set-leverage"): (True, self._set_leverage),
            ("GET", f"{p}/account/bills-archive"): (True, self._bills),
            ("GET", f"{p}/account/positions-history"): (True, self._history),
        }

    # --- driving it from a test ------------------------------------------------------------

    @property
    def credentials(self) -> dict[str, str]:
        """A connection's credentials for this account."""
        return {
            "api_key": self.api_key,
            "api_secret": self.api_secret,
            "passphrase": self.passphrase,
        }

    def set_price(self, inst_id: str, price: Decimal | str) -> None:
        self.book.set_price(inst_id, price)

    @property
    def orders(self) -> list[Order]:
        return [o for o in self.book.orders if o.source == "api"]

    # --- plumbing ----------------------------------------------------------------------------

    def answer(self, result: Any) -> Response:
        return JSONResponse({"code": "0", "msg": "", "data": result})

    def not_found(self) -> Response:
        return JSONResponse({"msg": "Not Found", "code": "404"}, status_code=404)

    def refusal(self, error: Refusal, call: Call) -> Response:
        if error.kind in AUTH:
            code, msg = AUTH[error.kind]
            return JSONResponse({"msg": msg, "code": code}, status_code=401)
        code, msg = CODES.get(error.kind, ("51000", error.message))
        if call.path.startswith("/api/v5/trade/"):
            # One order's failure: OKX says why in data[0], under a generic top-level message.
            ids = call.json[0] if isinstance(call.json, list) else call.params
            item = {
                "clOrdId": ids.get("clOrdId", ""),
                "ordId": ids.get("ordId", ""),
                "sCode": code,
                "sMsg": msg,
                "tag": "",
                "ts": str(now_ms()),
            }
            return JSONResponse({"code": "1", "data": [item], "msg": "All operations failed"})
        return JSONResponse({"code": code, "data": [], "msg": msg})

    def verify(self, call: Call) -> None:
        h = call.request.headers
        if not h.get("ok-access-key") or not hmac.compare_digest(h["ok-access-key"], self.api_key):
            raise Refusal("key", "bad key")
        if h.get("ok-access-passphrase") != self.passphrase:
            raise Refusal("passphrase", "bad passphrase")
        stamp = h.get("ok-access-timestamp", "")
        try:
            at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        except ValueError:
            raise Refusal("timestamp", "no timestamp") from None
        if abs(datetime.now(UTC).timestamp() - at.timestamp()) > 30:
            raise Refusal("timestamp", "expired")
        path = call.path + (f"?{call.query}" if call.query else "")
        payload = stamp + call.method + path + call.body
        digest = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(h.get("ok-access-sign", ""), base64.b64encode(digest).decode()):
            raise Refusal("sign", "bad signature")

    # --- public ------------------------------------------------------------------------------

    async def _instruments(self, call: Call) -> list[dict[str, Any]]:
        kind = call.params.get("instType")
        if kind not in ("SPOT", "SWAP"):
            raise Refusal("param", f"instType {kind} is not served")
        return [self._instrument(i) for i in INSTRUMENTS if i.swap == (kind == "SWAP")]

    @staticmethod
    def _instrument(i: Instrument) -> dict[str, Any]:
        swap = i.swap
        family = f"{i.base}-{i.quote}"
        return {
            "alias": "",
            "baseCcy": "" if swap else i.base,
            "category": "1",
            "ctMult": "1" if swap else "",
            "ctType": ("inverse" if i.inverse else "linear") if swap else "",
            "ctVal": plain(i.contract_size) if swap else "",
            "ctValCcy": (i.quote if i.inverse else i.base) if swap else "",
            "expTime": "",
            "instFamily": family if swap else "",
            "instId": i.id,
            "instType": "SWAP" if swap else "SPOT",
            "lever": str(i.max_leverage) if swap else "10",
            "listTime": "1611916828000",
            "lotSz": plain(i.lot),
            "maxIcebergSz": "100000000.0000000000000000",
            "maxLmtAmt": "20000000",
            "maxLmtSz": "100000000",
            "maxMktAmt": "" if swap else "1000000",
            "maxMktSz": plain(i.max_qty),
            "maxStopSz": plain(i.max_qty),
            "maxTriggerSz": "100000000.0000000000000000",
            "maxTwapSz": "100000000.0000000000000000",
            "minSz": plain(i.min_qty),
            "optType": "",
            "quoteCcy": "" if swap else i.quote,
            "ruleType": "normal",
            "settleCcy": (i.base if i.inverse else i.quote) if swap else "",
            "state": "live",
            "stk": "",
            "tickSz": plain(i.tick),
            "uly": family if swap else "",
        }

    def _ticker_of(self, i: Instrument) -> dict[str, Any]:
        last = plain(self.book.prices[i.id])
        ts = str(now_ms())
        return {
            "instType": "SWAP" if i.swap else "SPOT",
            "instId": i.id,
            "last": last,
            "lastSz": "0.1",
            "askPx": last,
            "askSz": "1",
            "bidPx": last,
            "bidSz": "1",
            "open24h": last,
            "high24h": last,
            "low24h": last,
            "volCcy24h": "0",
            "vol24h": "0",
            "ts": ts,
            "sodUtc0": last,
            "sodUtc8": last,
        }

    async def _ticker(self, call: Call) -> list[dict[str, Any]]:
        return [self._ticker_of(self.book.instrument(call.params.get("instId")))]

    async def _tickers(self, call: Call) -> list[dict[str, Any]]:
        swap = call.params.get("instType") == "SWAP"
        return [self._ticker_of(i) for i in INSTRUMENTS if i.swap == swap]

    # --- account -----------------------------------------------------------------------------

    async def _balance(self, call: Call) -> list[dict[str, Any]]:
        details = []
        for ccy in sorted(self.book.balances):
            free, locked = self.book.balance(ccy)
            margin, upl = self.book.margin_in_use(ccy), self.book.upl(ccy)
            cash = free + locked + margin
            details.append(
                {
                    "ccy": ccy,
                    "cashBal": plain(cash),
                    "eq": plain(cash + upl),
                    "availBal": plain(free),
                    "availEq": plain(free),
                    "frozenBal": plain(locked + margin),
                    "ordFrozen": plain(locked),
                    "upl": plain(upl),
                    "isoEq": plain(margin + upl),
                    "uTime": str(now_ms()),
                }
            )
        return [{"adjEq": "", "details": details, "totalEq": "", "uTime": str(now_ms())}]

    async def _config(self, call: Call) -> list[dict[str, Any]]:
        mode = "long_short_mode" if self.book.hedge_mode else "net_mode"
        return [{"acctLv": "2", "posMode": mode, "uid": "44705892343619584", "level": "Lv1"}]

    async def _set_leverage(self, call: Call) -> list[dict[str, Any]]:
        inst = self.book.instrument(call.params.get("instId"))
        lever, mode = int(D(str(call.params.get("lever")))), call.params.get("mgnMode")
        if mode not in ("cross", "isolated") or not 1 <= lever <= inst.max_leverage:
            raise Refusal("leverage", "bad leverage")
        if inst.id in self.book.positions and self.book.margin_mode.get(inst.id, mode) != mode:
            raise Refusal("param", "margin mode cannot change with a position open")
        self.book.leverage[inst.id], self.book.margin_mode[inst.id] = lever, mode
        pos_side = call.params.get("posSide", "net")
        return [{"lever": str(lever), "mgnMode": mode, "instId": inst.id, "posSide": pos_side}]

    async def _positions(self, call: Call) -> list[dict[str, Any]]:
        wanted = set(str(call.params.get("instId") or "").split(",")) - {""}
        out = []
        for inst_id, pos in self.book.positions.items():
            if wanted and inst_id not in wanted:
                continue
            mark = self.book.prices[inst_id]
            out.append(
                {
                    "instType": "SWAP",
                    "instId": inst_id,
                    "mgnMode": self.book.margin_mode.get(inst_id, "cross"),
                    "posId": f"30{sum(map(ord, inst_id))}",
                    "posSide": "net",
                    "pos": plain(pos.qty),
                    "availPos": plain(abs(pos.qty)),
                    "avgPx": plain(pos.entry),
                    "upl": plain(pos.unrealized(mark)),
                    "lever": str(pos.leverage),
                    "liqPx": plain(pos.liquidation_price()),
                    "markPx": plain(mark),
                    "margin": plain(pos.margin),
                    "imr": "",
                    "mmr": plain(abs(pos.qty) * pos.inst.contract_size * mark * D("0.004")),
                    "notionalUsd": plain(abs(pos.qty) * pos.inst.contract_size * mark),
                    "ccy": pos.inst.quote,
                    "last": plain(mark),
                    "realizedPnl": plain(pos.realized - pos.fees + pos.funding),
                    "pnl": plain(pos.realized),
                    "fee": plain(-pos.fees),
                    "fundingFee": plain(pos.funding),
                    "cTime": str(pos.opened),
                    "uTime": str(pos.updated),
                }
            )
        return out

    async def _bills(self, call: Call) -> list[dict[str, Any]]:
        if call.params.get("type") != "8":
            raise Refusal("param", "only funding bills (type 8) are served")
        bills = sorted(self.book.bills, key=lambda b: b.time, reverse=True)  # newest first
        return [
            {
                "billId": b.id,
                "instType": "SWAP",
                "instId": b.inst.id,
                "ccy": b.ccy,
                "type": "8",
                "subType": "173" if b.amount < 0 else "174",
                "balChg": plain(b.amount),
                "posBalChg": "0",
                "ts": str(b.time),
            }
            for b in bills
        ]

    async def _history(self, call: Call) -> list[dict[str, Any]]:
        inst_id = call.params.get("instId")
        records = [c for c in reversed(self.book.closed) if not inst_id or c.inst.id == inst_id]
        return [self._closed(c) for c in records]

    @staticmethod
    def _closed(c: Closed) -> dict[str, Any]:
        penalty = c.close_fee if c.kind == "liquidation" else D(0)
        fee = c.fees - penalty
        return {
            "instType": "SWAP",
            "instId": c.inst.id,
            "mgnMode": "isolated",
            "type": CLOSE_TYPES[c.kind],
            "cTime": str(c.opened),
            "uTime": str(c.closed),
            "openAvgPx": plain(c.entry),
            "closeAvgPx": plain(c.close_price),
            "posId": c.id,
            "openMaxPos": plain(c.qty),
            "closeTotalPos": plain(c.qty),
            "realizedPnl": plain(c.pnl - c.fees + c.funding),
            "fee": plain(-fee),
            "fundingFee": plain(c.funding),
            "liqPenalty": plain(-penalty),
            "pnl": plain(c.pnl),
            "pnlRatio": "0",
            "posSide": "net",
            "lever": str(c.leverage),
            "direction": c.side,
            "uly": f"{c.inst.base}-{c.inst.quote}",
            "ccy": c.inst.quote,
        }

    # --- orders ------------------------------------------------------------------------------

    async def _place(self, call: Call) -> list[dict[str, Any]]:
        if not isinstance(call.json, list) or len(call.json) != 1:
            raise Refusal("param", "one order per batch in this fake")
        p = call.json[0]
        inst = self.book.instrument(p.get("instId"))
        cid = str(p.get("clOrdId") or "")
        if not cid.isalnum() or len(cid) > 32:
            raise Refusal("client_id", "clOrdId: letters and digits, at most 32")
        if any(o.client_id == cid for o in self.book.orders):
            raise Refusal("duplicate_client_id", "duplicate")
        refused = self.take_reject(call.method, call.path)
        if refused is not None:
            raise refused
        mode = p.get("tdMode")
        if mode not in (("cross", "isolated") if inst.swap else ("cash",)):
            raise Refusal("param", f"Parameter tdMode error: {mode}")
        if inst.swap and mode != self.book.margin_mode.get(inst.id, "cross"):
            raise Refusal("param", "tdMode differs from the instrument's margin mode")
        if not inst.swap and p.get("tgtCcy", "base_ccy") != "base_ccy":
            raise Refusal("param", "this fake takes spot sizes in the base currency")
        price = D(p["px"]) if p.get("px") else None
        reduce_only = p.get("reduceOnly") in (True, "true")
        order = self.book.place(
            inst,
            p.get("side", ""),
            p.get("ordType", ""),
            D(str(p.get("sz", "0"))),
            price,
            cid,
            reduce_only=reduce_only,
            order_id=str(random.randint(10**18, 10**19 - 1)),
        )
        return [
            {
                "clOrdId": cid,
                "ordId": order.id,
                "sCode": "0",
                "sMsg": "Order placed",
                "tag": p.get("tag", ""),
                "ts": str(now_ms()),
            }
        ]

    def _lookup(self, call: Call) -> Order:
        inst = self.book.instrument(call.params.get("instId"))
        order = self.book.find(call.params.get("ordId"), call.params.get("clOrdId"))
        if order is None or order.inst is not inst:
            raise Refusal("not_found", "no such order")
        return order

    async def _order(self, call: Call) -> list[dict[str, Any]]:
        return [self._detail(self._lookup(call))]

    async def _cancel(self, call: Call) -> list[dict[str, Any]]:
        order = self._lookup(call)
        self.book.cancel(order)
        return [{"clOrdId": order.client_id, "ordId": order.id, "sCode": "0", "sMsg": ""}]

    async def _pending(self, call: Call) -> list[dict[str, Any]]:
        inst_id = call.params.get("instId")
        return [
            self._detail(o)
            for o in self.book.orders
            if o.is_open and (not inst_id or o.inst.id == inst_id)
        ]

    def _detail(self, o: Order) -> dict[str, Any]:
        """`trade/order`: the fee is negative (charged), in the received currency on spot."""
        average = o.average
        last = o.fills[-1] if o.fills else None
        swap = o.inst.swap
        return {
            "instType": "SWAP" if swap else "SPOT",
            "instId": o.inst.id,
            "ccy": "",
            "ordId": o.id,
            "clOrdId": o.client_id,
            "tag": "",
            "px": plain(o.price) if o.price is not None else "",
            "sz": plain(o.qty),
            "pnl": plain(o.pnl),
            "ordType": o.type,
            "side": o.side,
            "posSide": "net" if swap else "",
            "tdMode": self.book.margin_mode.get(o.inst.id, "cross") if swap else "cash",
            "accFillSz": plain(o.filled),
            "fillPx": plain(last.price) if last else "",
            "tradeId": str(last.id) if last else "",
            "fillSz": plain(last.qty) if last else "0",
            "fillTime": str(last.time) if last else "",
            "avgPx": plain(average) if average is not None else "",
            "state": STATES[o.status],
            "lever": str(o.leverage) if swap else "",
            "feeCcy": o.fee_ccy,
            "fee": plain(-o.fee),
            "rebateCcy": o.inst.quote,
            "rebate": "0",
            "tgtCcy": "" if swap else "base_ccy",
            "category": "full_liquidation" if o.source == "liquidation" else "normal",
            "reduceOnly": "true" if o.reduce_only else "false",
            "cancelSource": "",
            "uTime": str(o.updated),
            "cTime": str(o.created),
        }


if __name__ == "__main__":
    serve_alone("OKX v5", lambda host, port: FakeOkx(host=host, port=port))
