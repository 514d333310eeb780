from __future__ import annotations

from datetime import datetime

from pydantic import Field, model_validator

from execution_service.enums import Role
from execution_service.schemas import Body, Model, Name, OwnerId


class ApiKeyCreate(Body):
    name: Name
    role: Role
    user_id: OwnerId | None = Field(default=None, description="required for role `user`")

    model_config = {
        "json_schema_extra": {"examples": [{"name": "alice", "role": "user", "user_id": 42}]}
    }

    @model_validator(mode="after")
    def _user_id_matches_role(self) -> ApiKeyCreate:
        if self.role is Role.user and self.user_id is None:
            raise ValueError("a `user` key needs a user_id")
        if self.role is not Role.user and self.user_id is not None:
            raise ValueError("only a `user` key carries a user_id")
        return self


class ApiKeyRead(Model):
    id: int
    name: str
    role: Role
    user_id: int | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="the key itself: shown in this response only")


class MeRead(Model):
    key_id: int
    name: str
    role: Role
    user_id: int | None
