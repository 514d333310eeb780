from __future__ import annotations

from fastapi import APIRouter, Response, status

from execution_service.deps import PageDep, PrincipalDep, RowId, SessionDep
from execution_service.presets import service
from execution_service.presets.schemas import PresetCreate, PresetRead, PresetUpdate
from execution_service.schemas import Page, problems

router = APIRouter(prefix="/presets", tags=["presets"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=PresetRead, responses=problems(403, 413)
)
async def create_preset(
    body: PresetCreate, session: SessionDep, principal: PrincipalDep
) -> PresetRead:
    return PresetRead.model_validate(await service.create_preset(session, principal, body))


@router.get("", response_model=Page[PresetRead])
async def list_presets(
    session: SessionDep, principal: PrincipalDep, page: PageDep
) -> Page[PresetRead]:
    rows, total = await service.list_presets(session, principal, page.limit, page.offset)
    return Page(
        items=[PresetRead.model_validate(r) for r in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{preset_id}", response_model=PresetRead, responses=problems(404))
async def get_preset(preset_id: RowId, session: SessionDep, principal: PrincipalDep) -> PresetRead:
    return PresetRead.model_validate(await service.get_preset(session, principal, preset_id))


@router.patch("/{preset_id}", response_model=PresetRead, responses=problems(404, 413))
async def update_preset(
    preset_id: RowId, body: PresetUpdate, session: SessionDep, principal: PrincipalDep
) -> PresetRead:
    return PresetRead.model_validate(
        await service.update_preset(session, principal, preset_id, body)
    )


@router.delete("/{preset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404, 409))
async def delete_preset(preset_id: RowId, session: SessionDep, principal: PrincipalDep) -> Response:
    await service.delete_preset(session, principal, preset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
