"""Execution connections: create with encrypted credentials, link preset and data source, check
health, activate. Exchange I/O always happens outside a database transaction."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service import metrics
from execution_service.connections.repository import ConnectionRepository
from execution_service.connections.schemas import (
    ConnectionCreate,
    ConnectionUpdate,
    PaperSettings,
    check_credentials,
)
from execution_service.context import AppContext
from execution_service.crypto import CredentialsError, owner_aad
from execution_service.db import utcnow
from execution_service.enums import Adapter, ConnectionStatus, EventType, MarketType
from execution_service.errors import (
    BadGateway,
    Conflict,
    ExchangeBusyError,
    NotFound,
    Unprocessable,
)
from execution_service.events import service as events
from execution_service.exchanges.base import AuthFailed, BalanceEntry, ExchangeBusy, ExchangeError
from execution_service.exchanges.budget import Priority, calling
from execution_service.exchanges.catalog import capabilities, known_exchange, venue_hosts
from execution_service.exchanges.kinds import KINDS
from execution_service.market_data.repository import DataConnectionRepository
from execution_service.models import ExecutionConnection
from execution_service.outbound.checks import check_base_url
from execution_service.presets.repository import PresetRepository
from execution_service.principal import Principal


def api_key_hint(credentials: dict[str, str]) -> str | None:
    """Last four characters of the public key (or login) — only when that reveals little."""
    public = credentials.get("api_key") or credentials.get("user") or ""
    return public[-4:] if len(public) >= 12 else None


def _encrypt(ctx: AppContext, conn: ExecutionConnection, credentials: dict[str, str]) -> None:
    token = ctx.keyring.encrypt(credentials, owner_aad(conn.user_id, conn.admin_id))
    conn.credentials_encrypted, conn.credentials_key_id = token.token, token.key_id
    conn.api_key_hint = api_key_hint(credentials)


async def _check_links(
    session: AsyncSession,
    principal: Principal,
    conn: ExecutionConnection,
    preset_id: int | None,
    data_connection_id: int | None,
) -> None:
    """Linked rows must be visible to the caller and belong to the connection's owner."""
    if preset_id is not None:
        preset = await PresetRepository(session).get(principal, preset_id)
        if preset is None or (preset.user_id, preset.admin_id) != (conn.user_id, conn.admin_id):
            raise Unprocessable(
                f"preset {preset_id} not found for this owner", code="unknown_preset"
            )
    if data_connection_id is not None:
        data = await DataConnectionRepository(session).get(principal, data_connection_id)
        if data is None or (data.user_id, data.admin_id) != (conn.user_id, conn.admin_id):
            raise Unprocessable(
                f"data connection {data_connection_id} not found for this owner",
                code="unknown_data_connection",
            )


async def create_connection(
    session: AsyncSession, ctx: AppContext, principal: Principal, body: ConnectionCreate
) -> ExecutionConnection:
    user_id, admin_id = principal.owner_for_create(body.user_id, body.admin_id)
    if not known_exchange(body.adapter, body.exchange):
        raise Unprocessable(f"exchange {body.exchange!r} is not supported", code="unknown_exchange")
    _check_market_type(body.adapter, body.exchange, body.market_type)
    url = str(body.api_base_url) if body.api_base_url else None
    await check_base_url(url, ctx.settings.outbound, venue_hosts(body.adapter, body.exchange))
    _check_egress(ctx, body.adapter, body.egress)
    conn = ExecutionConnection(
        name=body.name,
        type=body.type.value,
        adapter=body.adapter.value,
        exchange=body.exchange,
        sandbox=body.sandbox,
        api_base_url=str(body.api_base_url) if body.api_base_url else None,
        market_type=body.market_type.value,
        egress=body.egress,
        preset_id=body.preset_id,
        data_connection_id=body.data_connection_id,
        status=ConnectionStatus.inactive,
        is_active=False,
        consecutive_failures=0,
        user_id=user_id,
        admin_id=admin_id,
    )
    await _check_links(session, principal, conn, body.preset_id, body.data_connection_id)
    if body.credentials:
        _encrypt(ctx, conn, {k: v.get_secret_value() for k, v in body.credentials.items()})
    simulated = capabilities(body.adapter, body.exchange, body.market_type).simulated
    if simulated:  # a simulated account: its starting balances and fee settings
        paper = body.paper or PaperSettings()
        conn.paper_config = {
            "fee_rate": str(paper.fee_rate),
            "slippage_bps": str(paper.slippage_bps),
            "maintenance_margin_percent": str(paper.maintenance_margin_percent),
        }
    session.add(conn)
    await session.flush()
    if simulated:
        balances: dict[str, Any] = (body.paper.balance if body.paper else None) or {
            ctx.settings.paper_default_currency: Decimal(ctx.settings.paper_default_balance)
        }
        ConnectionRepository(session).add_paper_balances(conn.id, balances)
    await session.commit()
    return conn


def _check_egress(ctx: AppContext, adapter: str, name: str | None) -> None:
    if name is None:
        return
    if not KINDS[Adapter(adapter)].egress:
        raise Unprocessable(
            f"{adapter} connections go out directly: no egress group", code="unknown_egress"
        )
    if name not in ctx.settings.egress:
        raise Unprocessable(
            f"no egress group {name!r} (the operator defines them)", code="unknown_egress"
        )


def _check_market_type(adapter: str, exchange: str | None, market_type: MarketType) -> None:
    """The venue must offer the connection's market type; a swap account needs linear swaps
    (an inverse-only venue is refused here, before any key is stored)."""
    caps = capabilities(adapter, exchange, market_type)
    if market_type not in caps.market_types:
        raise Unprocessable(
            f"{exchange or adapter} has no {market_type} markets", code="market_type_not_supported"
        )
    if market_type == MarketType.swap and not caps.linear_swaps:
        raise Unprocessable(
            f"{exchange}'s perpetual swaps are inverse (coin-margined): only linear (USDT) swaps "
            "are traded",
            code="inverse_not_supported",
        )


async def get_connection(
    session: AsyncSession, principal: Principal, connection_id: int
) -> ExecutionConnection:
    conn = await ConnectionRepository(session).get(principal, connection_id)
    if conn is None:
        raise NotFound(f"connection {connection_id} not found")
    return conn


async def list_connections(
    session: AsyncSession, principal: Principal, limit: int, offset: int
) -> tuple[Sequence[ExecutionConnection], int]:
    return await ConnectionRepository(session).list(principal, limit, offset)


async def update_connection(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    connection_id: int,
    body: ConnectionUpdate,
) -> ExecutionConnection:
    conn = await get_connection(session, principal, connection_id)
    changes = body.model_dump(exclude_unset=True, exclude={"credentials"})
    for required in ("name", "sandbox", "market_type", "close_only"):
        if required in changes and changes[required] is None:
            raise Unprocessable(f"{required} cannot be null")
    await _check_links(
        session, principal, conn, changes.get("preset_id"), changes.get("data_connection_id")
    )
    for key in ("fee_rate", "slippage_bps"):
        if key in changes:
            if not ctx.adapters.capabilities(conn).simulated:
                raise Unprocessable(f"{key} applies to paper connections only")
            value = changes.pop(key)
            conn.paper_config = {**(conn.paper_config or {}), key: str(value or 0)}
    if "api_base_url" in changes and changes["api_base_url"] is not None:
        changes["api_base_url"] = str(changes["api_base_url"])
        hosts = venue_hosts(conn.adapter, conn.exchange)
        await check_base_url(changes["api_base_url"], ctx.settings.outbound, hosts)
    if "egress" in changes:
        _check_egress(ctx, conn.adapter, changes["egress"])
    if "market_type" in changes:
        _check_market_type(conn.adapter, conn.exchange, changes["market_type"])
        changes["market_type"] = changes["market_type"].value
    for field, value in changes.items():
        setattr(conn, field, value)
    reconnect = bool({"api_base_url", "sandbox", "market_type"} & changes.keys())
    moved = "egress" in changes  # a new client on another route: same account, no new check
    if body.credentials is not None:
        try:
            check_credentials(Adapter(conn.adapter), body.credentials)
        except ValueError as exc:
            raise Unprocessable(str(exc)) from None
        _encrypt(ctx, conn, {k: v.get_secret_value() for k, v in body.credentials.items()})
        reconnect = True
    if reconnect and not ctx.adapters.capabilities(conn).simulated:
        # New credentials or endpoint: the connection must pass a check again before it trades.
        conn.status, conn.is_active = ConnectionStatus.inactive, False
    await session.commit()
    if reconnect or moved:
        await ctx.adapters.evict(conn.id)
    return conn


async def delete_connection(
    session: AsyncSession, ctx: AppContext, principal: Principal, connection_id: int
) -> None:
    conn = await get_connection(session, principal, connection_id)
    if await ConnectionRepository(session).has_history(connection_id):
        raise Conflict(
            f"connection {connection_id} has execution history: deactivate it instead",
            code="connection_has_history",
        )
    await session.delete(conn)
    await session.commit()
    await ctx.adapters.evict(connection_id)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    latency_ms: int
    error: str | None
    balances: dict[str, BalanceEntry] | None = None
    fatal: bool = False
    # The venue's request budget had no room: nothing was asked, nothing is counted against it.
    busy_for: float | None = None


async def probe(ctx: AppContext, conn: ExecutionConnection) -> CheckResult:
    """One `fetch_balance` through the connection's adapter; never raises."""
    started = time.perf_counter()
    try:
        adapter = await ctx.adapters.for_connection(conn)
        # The check is of the account now, not of a copy; a busy budget leaves the copy kept.
        balances = await adapter.read_balance()
    except CredentialsError as exc:
        return CheckResult(False, _ms(started), f"credentials: {exc}", fatal=True)
    except AuthFailed as exc:
        return CheckResult(False, _ms(started), f"{exc.code}: {exc.message}", fatal=True)
    except ExchangeBusy as exc:
        error = f"{exc.code}: {exc.message}"
        return CheckResult(False, _ms(started), error, busy_for=exc.retry_after or 1.0)
    except ExchangeError as exc:
        return CheckResult(False, _ms(started), f"{exc.code}: {exc.message}")
    return CheckResult(True, _ms(started), None, balances)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def record_check(conn: ExecutionConnection, result: CheckResult) -> None:
    if result.busy_for is not None:
        return  # not checked: the venue was never asked
    conn.last_tested_at = utcnow()
    outcome = "ok" if result.ok else "fatal" if result.fatal else "failed"
    metrics.CONNECTION_CHECKS.labels(outcome).inc()
    if result.ok:
        conn.consecutive_failures = 0
        conn.last_error = None
        if conn.status == ConnectionStatus.error:
            conn.status = ConnectionStatus.inactive
        return
    conn.consecutive_failures += 1
    conn.last_error = result.error
    if result.fatal:
        # Bad credentials do not heal by retrying: stop trading on this account.
        mark_error(conn, result.error)


def mark_error(conn: ExecutionConnection, message: str | None) -> None:
    """The connection stops trading. Other services hear of it (`connection.error`) in the
    transaction of the row's session, once per move into `error`, not on every failed retry."""
    moved = conn.status != ConnectionStatus.error
    conn.status, conn.is_active, conn.last_error = ConnectionStatus.error, False, message
    if moved:
        payload = events.connection_payload(conn)
        events.record(events.session_of(conn), EventType.connection_error, conn, payload)


async def test_connection(
    session: AsyncSession, ctx: AppContext, principal: Principal, connection_id: int
) -> CheckResult:
    conn = await get_connection(session, principal, connection_id)
    await session.commit()  # no transaction open while the exchange answers
    result = await probe(ctx, conn)
    conn = await get_connection(session, principal, connection_id)
    record_check(conn, result)
    await session.commit()
    return result


async def activate(
    session: AsyncSession, ctx: AppContext, principal: Principal, connection_id: int
) -> ExecutionConnection:
    # Onboarding waits for the venue's request budget (briefly), and past that answers 503 with
    # Retry-After instead of spending weight the venue would answer with 429/418 (issue #19).
    with calling(Priority.READ, within=ctx.settings.exchange_timeout_ms / 1000):
        result = await test_connection(session, ctx, principal, connection_id)
    if result.busy_for is not None:
        raise ExchangeBusyError(
            f"connection {connection_id} was not checked: {result.error}",
            retry_after=result.busy_for,
        )
    conn = await get_connection(session, principal, connection_id)
    if not result.ok:
        raise Conflict(
            f"connection {connection_id} failed its check: {result.error}", code="check_failed"
        )
    await session.commit()
    await _check_position_mode(session, ctx, conn)
    conn.status, conn.is_active = ConnectionStatus.active, True
    await session.commit()
    return conn


async def _check_position_mode(
    session: AsyncSession, ctx: AppContext, conn: ExecutionConnection
) -> None:
    """A derivatives account in hedge (long/short) mode is refused: this service holds one net
    position per symbol and closes it with reduce-only orders, which a hedge-mode venue would
    book on a second position instead. The venue is asked with no transaction open."""
    if not ctx.adapters.capabilities(conn).venue_positions:
        return
    try:
        hedged = await (await ctx.adapters.for_connection(conn)).hedge_mode()
    except (CredentialsError, ExchangeError) as exc:
        raise BadGateway(f"the account's position mode could not be read: {exc}") from None
    if hedged:
        conn.last_error = "hedge_mode_not_supported: the account holds longs and shorts apart"
        await session.commit()
        raise Conflict(
            "the account is in hedge (long/short) mode: switch it to one-way mode first",
            code="hedge_mode_not_supported",
        )


async def deactivate(
    session: AsyncSession, principal: Principal, connection_id: int
) -> ExecutionConnection:
    conn = await get_connection(session, principal, connection_id)
    conn.is_active = False
    if conn.status == ConnectionStatus.active:
        conn.status = ConnectionStatus.inactive
    await session.commit()
    return conn


async def balance(
    session: AsyncSession, ctx: AppContext, principal: Principal, connection_id: int
) -> dict[str, BalanceEntry]:
    result = await test_connection(session, ctx, principal, connection_id)
    if not result.ok or result.balances is None:
        raise BadGateway(f"balance unavailable: {result.error}", code="balance_unavailable")
    return result.balances


async def clear_stop_out(
    session: AsyncSession, principal: Principal, connection_id: int
) -> ExecutionConnection:
    """A drawdown stop-out clears only by this call: the account takes new trades again, and its
    peak is measured afresh from now (a paused one must be activated again as well)."""
    conn = await get_connection(session, principal, connection_id)
    if conn.stopped_out_at is None:
        raise Conflict(f"connection {connection_id} is not stopped out", code="not_stopped_out")
    conn.stopped_out_at = conn.stop_out_reason = None
    conn.close_only = False
    conn.peak_equity = conn.day_equity = conn.day_equity_on = None
    await session.commit()
    return conn
