from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.enums import SizeMode
from execution_service.errors import Conflict, NotFound, Unprocessable
from execution_service.models import TradingPreset
from execution_service.presets.repository import PresetRepository
from execution_service.presets.schemas import PresetCreate, PresetUpdate
from execution_service.principal import Principal


async def create_preset(
    session: AsyncSession, principal: Principal, body: PresetCreate
) -> TradingPreset:
    user_id, admin_id = principal.owner_for_create(body.user_id, body.admin_id)
    preset = TradingPreset(
        **body.model_dump(exclude={"user_id", "admin_id"}), user_id=user_id, admin_id=admin_id
    )
    session.add(preset)
    await session.commit()
    return preset


async def get_preset(session: AsyncSession, principal: Principal, preset_id: int) -> TradingPreset:
    preset = await PresetRepository(session).get(principal, preset_id)
    if preset is None:
        raise NotFound(f"preset {preset_id} not found")
    return preset


async def list_presets(
    session: AsyncSession, principal: Principal, limit: int, offset: int
) -> tuple[Sequence[TradingPreset], int]:
    return await PresetRepository(session).list(principal, limit, offset)


async def update_preset(
    session: AsyncSession, principal: Principal, preset_id: int, body: PresetUpdate
) -> TradingPreset:
    preset = await get_preset(session, principal, preset_id)
    changes = body.model_dump(exclude_unset=True)
    for required in (
        "name",
        "position_size_mode",
        "position_size_value",
        "leverage",
        "reverse_on_opposite",
        "stops_on_venue",
        "reverse",
    ):
        if required in changes and changes[required] is None:
            raise Unprocessable(f"{required} cannot be null")
    for field, value in changes.items():
        setattr(preset, field, value)
    if preset.position_size_mode == SizeMode.risk_percent and preset.position_size_value > 100:
        raise Unprocessable("risk_percent position_size_value is a percent of equity: at most 100")
    await session.commit()
    return preset


async def delete_preset(session: AsyncSession, principal: Principal, preset_id: int) -> None:
    preset = await get_preset(session, principal, preset_id)
    if await PresetRepository(session).is_referenced(preset_id):
        raise Conflict(
            f"preset {preset_id} is used by a connection: unlink it first", code="preset_in_use"
        )
    await session.delete(preset)
    await session.commit()
