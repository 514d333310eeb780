from __future__ import annotations

from fastapi import APIRouter, status

from execution_service.api_keys import service
from execution_service.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, MeRead
from execution_service.deps import AdminDep, PageDep, PrincipalDep, RowId, SessionDep
from execution_service.schemas import Page, problems

router = APIRouter(tags=["api-keys"])


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=problems(403, 413),
)
async def create_api_key(body: ApiKeyCreate, session: SessionDep, _: AdminDep) -> ApiKeyCreated:
    row, key = await service.create_key(
        session, name=body.name, role=body.role, user_id=body.user_id
    )
    return ApiKeyCreated.model_validate({**ApiKeyRead.model_validate(row).model_dump(), "key": key})


@router.get("/api-keys", response_model=Page[ApiKeyRead], responses=problems(403))
async def list_api_keys(session: SessionDep, _: AdminDep, page: PageDep) -> Page[ApiKeyRead]:
    rows, total = await service.list_keys(session, page.limit, page.offset)
    items = [ApiKeyRead.model_validate(r) for r in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.delete("/api-keys/{key_id}", response_model=ApiKeyRead, responses=problems(403, 404))
async def revoke_api_key(key_id: RowId, session: SessionDep, _: AdminDep) -> ApiKeyRead:
    return ApiKeyRead.model_validate(await service.revoke_key(session, key_id))


@router.get("/me", response_model=MeRead)
async def me(principal: PrincipalDep) -> MeRead:
    return MeRead(
        key_id=principal.key_id, name=principal.name, role=principal.role, user_id=principal.user_id
    )
