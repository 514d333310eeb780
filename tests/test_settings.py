from __future__ import annotations

import pytest
from pydantic import ValidationError

from execution_service.settings import Settings


def test_the_pending_grace_must_outlast_a_queued_send() -> None:
    Settings(exchange_timeout_ms=10_000, pending_grace_seconds=20)
    with pytest.raises(ValidationError, match="PENDING_GRACE"):
        Settings(exchange_timeout_ms=10_000, pending_grace_seconds=19)
