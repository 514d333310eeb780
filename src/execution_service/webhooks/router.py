from __future__ import annotations

from fastapi import APIRouter, Response, status

from execution_service.deps import ContextDep, PageDep, PrincipalDep, RowId, SessionDep
from execution_service.schemas import Page, problems
from execution_service.webhooks import service
from execution_service.webhooks.schemas import (
    DeliveryRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=problems(403, 413),
)
async def create_webhook(
    body: WebhookCreate, session: SessionDep, ctx: ContextDep, principal: PrincipalDep
) -> WebhookCreated:
    """The response carries the signing `secret`, this once only."""
    hook, secret = await service.create_webhook(session, ctx, principal, body)
    read = WebhookRead.model_validate(hook).model_dump()
    return WebhookCreated.model_validate({**read, "secret": secret})


@router.get("", response_model=Page[WebhookRead])
async def list_webhooks(
    session: SessionDep, principal: PrincipalDep, page: PageDep
) -> Page[WebhookRead]:
    rows, total = await service.list_webhooks(session, principal, page.limit, page.offset)
    items = [WebhookRead.model_validate(r) for r in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/{webhook_id}", response_model=WebhookRead, responses=problems(404))
async def get_webhook(
    webhook_id: RowId, session: SessionDep, principal: PrincipalDep
) -> WebhookRead:
    return WebhookRead.model_validate(await service.get_webhook(session, principal, webhook_id))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404))
async def delete_webhook(
    webhook_id: RowId, session: SessionDep, principal: PrincipalDep
) -> Response:
    await service.delete_webhook(session, principal, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=Page[DeliveryRead], responses=problems(404))
async def list_deliveries(
    webhook_id: RowId, session: SessionDep, principal: PrincipalDep, page: PageDep
) -> Page[DeliveryRead]:
    """The delivery log, newest first: one row per event, with its latest attempt."""
    rows, total = await service.list_deliveries(
        session, principal, webhook_id, page.limit, page.offset
    )
    items = [DeliveryRead.model_validate(r) for r in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)
