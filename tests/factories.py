"""Build real rows through the API, as a client would."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

_user_ids = itertools.count(random.randint(10_000, 10_000_000) * 100)


@dataclass
class Actor:
    """An HTTP client holding one API key."""

    http: httpx.AsyncClient
    headers: dict[str, str]
    role: str
    user_id: int | None
    key_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, url, headers=self.headers, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, json=json, **kwargs)

    async def patch(self, url: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", url, json=json, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)

    async def ok(self, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
        response = await self.request(method, url, **kwargs)
        assert response.status_code == status, (method, url, response.status_code, response.text)
        return response.json() if response.content else None

    async def new_key(self, role: str, user_id: int | None = None) -> Actor:
        body = {"name": f"{role}-{user_id}", "role": role, "user_id": user_id}
        created = await self.ok("POST", "/api/v1/api-keys", 201, json=body)
        headers = {"Authorization": f"Bearer {created['key']}"}
        return Actor(self.http, headers, role, user_id, key_id=created["id"])

    async def new_user(self) -> Actor:
        return await self.new_key("user", next(_user_ids))

    # --- domain rows ---------------------------------------------------------------------

    async def preset(self, **fields: Any) -> dict[str, Any]:
        body = {
            "name": "preset",
            "position_size_mode": "fixed_notional",
            "position_size_value": "1000",
        }
        body.update(fields)
        return await self.ok("POST", "/api/v1/presets", 201, json=body)  # type: ignore[no-any-return]

    async def data_connection(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "prices", "type": "manual", **fields}
        return await self.ok("POST", "/api/v1/data-connections", 201, json=body)  # type: ignore[no-any-return]

    async def push_price(
        self, data_connection_id: int, symbol: str, price: str, **extra: Any
    ) -> None:
        point = {"symbol": symbol, "price": price, **extra}
        await self.ok(
            "POST",
            f"/api/v1/data-connections/{data_connection_id}/market-data",
            json={"prices": [point]},
        )

    async def paper_connection(
        self,
        *,
        activate: bool = True,
        preset_id: int | None = None,
        data_connection_id: int | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": "paper", "adapter": "paper", **fields}
        if preset_id is not None:
            body["preset_id"] = preset_id
        if data_connection_id is not None:
            body["data_connection_id"] = data_connection_id
        conn = await self.ok("POST", "/api/v1/connections", 201, json=body)
        if activate:
            conn = await self.ok("POST", f"/api/v1/connections/{conn['id']}/activate")
        return conn  # type: ignore[no-any-return]


@dataclass
class PaperSetup:
    """A user's paper account: preset, price feed, and one active connection."""

    actor: Actor
    preset: dict[str, Any]
    data_connection: dict[str, Any]
    connection: dict[str, Any]

    @property
    def conn_id(self) -> int:
        return int(self.connection["id"])

    async def price(self, price: str, symbol: str = "BTC/USDT") -> None:
        await self.actor.push_price(self.data_connection["id"], symbol, price)

    async def signal(self, status: int = 201, **body: Any) -> dict[str, Any]:
        payload = {
            "symbol": "BTC/USDT",
            "direction": "buy",
            "connection_ids": [self.conn_id],
            **body,
        }
        return await self.actor.ok("POST", "/api/v1/signals", status, json=payload)  # type: ignore[no-any-return]


async def paper_setup(
    actor: Actor,
    *,
    price: str | None = "100",
    paper: dict[str, Any] | None = None,
    market_type: str | None = None,
    **preset: Any,
) -> PaperSetup:
    """A paper account (spot unless `market_type` says: a short or leverage needs "swap")."""
    p = await actor.preset(**preset)
    dc = await actor.data_connection()
    if price is not None:
        await actor.push_price(dc["id"], "BTC/USDT", price)
    body: dict[str, Any] = {"paper": paper} if paper else {}
    if market_type is not None:
        body["market_type"] = market_type
    conn = await actor.paper_connection(preset_id=p["id"], data_connection_id=dc["id"], **body)
    return PaperSetup(actor, p, dc, conn)
