from __future__ import annotations

import pytest
from pydantic import ValidationError

from execution_service.settings import Settings


def test_the_pending_grace_must_outlast_a_queued_send() -> None:
    Settings(exchange_timeout_ms=10_000, pending_grace_seconds=20)
    with pytest.raises(ValidationError, match="PENDING_GRACE"):
        Settings(exchange_timeout_ms=10_000, pending_grace_seconds=19)


@pytest.mark.parametrize(
    ("env", "setting", "allowed"),
    [
        ("development", None, True),
        ("test", None, True),
        ("production", None, False),
        ("production", True, True),
        ("development", False, False),
    ],
)
def test_webhooks_reach_private_networks_outside_production_only(
    env: str, setting: bool | None, allowed: bool
) -> None:
    settings = Settings(env=env, webhook_allow_private_networks=setting)  # type: ignore[arg-type]
    assert settings.webhooks_may_reach_private_networks is allowed
