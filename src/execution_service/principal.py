"""Who is calling, and which rows they may see. No web framework here: services and
repositories take a `Principal`, routers get one from `deps.PrincipalDep`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

from execution_service.enums import Role
from execution_service.errors import Forbidden


class Filterable(Protocol):
    def where(self, *criteria: Any) -> Self: ...


S = TypeVar("S", bound=Filterable)


@dataclass(frozen=True)
class Principal:
    key_id: int
    name: str
    role: Role
    user_id: int | None

    @property
    def is_user(self) -> bool:
        return self.role is Role.user

    @property
    def is_privileged(self) -> bool:
        return self.role in (Role.admin, Role.service)

    def scope(self, stmt: S, model: Any) -> S:
        """Restrict a select/update to the rows this principal may see."""
        if self.is_user:
            return stmt.where(model.user_id == self.user_id)
        return stmt

    def can_see(self, row: Any) -> bool:
        return not self.is_user or row.user_id == self.user_id

    def owner_for_create(
        self, user_id: int | None, admin_id: int | None
    ) -> tuple[int | None, int | None]:
        """Who owns a new row: a user key always itself; admin/service whoever the body names."""
        if self.is_user:
            if (user_id is not None and user_id != self.user_id) or admin_id is not None:
                raise Forbidden("a user key creates rows for its own user only")
            return self.user_id, None
        return user_id, admin_id
