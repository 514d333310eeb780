from __future__ import annotations

from fastapi import APIRouter, Response, status

from execution_service.db import utcnow
from execution_service.deps import ContextDep, PageDep, PrincipalDep, RowId, SessionDep
from execution_service.errors import TooManyRequests
from execution_service.models import ExecutionLog, Signal
from execution_service.schemas import Page, problems
from execution_service.signals import service
from execution_service.signals.schemas import (
    ExecutionRead,
    SignalCreate,
    SignalRead,
    take_profits_out,
)

router = APIRouter(prefix="/signals", tags=["signals"])


def execution_read(e: ExecutionLog) -> ExecutionRead:
    return ExecutionRead(
        connection_id=e.execution_connection_id,
        purpose=e.purpose,
        status=e.status,
        execution_log_id=e.id,
        position_id=e.position_id,
        quantity=e.quantity,
        price=e.average_price if e.average_price is not None else e.price,
        error_code=e.error_code,
        error_message=e.error_message,
    )


def signal_read(signal: Signal, executions: service.Executions) -> SignalRead:
    return SignalRead(
        id=signal.id,
        external_id=signal.external_id,
        user_id=signal.user_id,
        admin_id=signal.admin_id,
        symbol=signal.symbol,
        direction=signal.direction,
        order_type=signal.order_type,
        entry_price=signal.entry_price,
        sl_price=signal.sl_price,
        tp_price=signal.tp_price,
        take_profits=take_profits_out(signal.take_profits),
        quantity=signal.quantity,
        created_at=signal.created_at,
        executions_total=executions.total,
        by_status=executions.by_status,
        executions_url=f"/api/v1/signals/{signal.id}/executions",
        executions=[execution_read(e) for e in executions.shown],
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SignalRead,
    responses={
        **problems(403, 404, 413),
        200: {"model": SignalRead, "description": "a replay: the stored result, nothing sent"},
    },
    description="Execute the signal on its target connections. The answer is the signal with "
    "the counts of its executions (`executions_total`, `by_status`) and the first 100 of them "
    "inline; a larger fan-out's others are paged at `executions_url`.",
)
async def create_signal(
    body: SignalCreate,
    response: Response,
    session: SessionDep,
    ctx: ContextDep,
    principal: PrincipalDep,
) -> SignalRead:
    received_at = utcnow()
    wait = ctx.signal_limiter.take(principal.key_id)
    if wait:
        raise TooManyRequests("too many signals from this API key", retry_after=wait)
    signal, executions, created = await service.create_signal(
        session, ctx, principal, body, received_at
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return signal_read(signal, executions)


@router.get(
    "",
    response_model=Page[SignalRead],
    description="Signals, newest first; each embeds at most 20 executions (see "
    "`executions_total`, `executions_url`).",
)
async def list_signals(
    session: SessionDep, principal: PrincipalDep, page: PageDep
) -> Page[SignalRead]:
    signals, executions, total = await service.list_signals(
        session, principal, page.limit, page.offset
    )
    items = [signal_read(s, executions[s.id]) for s in signals]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/{signal_id}", response_model=SignalRead, responses=problems(404))
async def get_signal(signal_id: RowId, session: SessionDep, principal: PrincipalDep) -> SignalRead:
    signal, executions = await service.get_signal(session, principal, signal_id)
    return signal_read(signal, executions)


@router.get(
    "/{signal_id}/executions",
    response_model=Page[ExecutionRead],
    responses=problems(404),
    description="Every execution of the signal, in execution_log_id order, a page at a time: "
    "a signal's own answer embeds only the first ones (see `executions_total`).",
)
async def list_executions(
    signal_id: RowId, session: SessionDep, principal: PrincipalDep, page: PageDep
) -> Page[ExecutionRead]:
    logs, total = await service.list_executions(
        session, principal, signal_id, page.limit, page.offset
    )
    items = [execution_read(e) for e in logs]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)
