from __future__ import annotations

import pytest
from pydantic import ValidationError

from execution_service.settings import Settings


def test_the_pending_grace_must_outlast_a_queued_send() -> None:
    Settings(exchange_timeout_ms=10_000, pending_grace_seconds=20)
    with pytest.raises(ValidationError, match="PENDING_GRACE"):
        Settings(exchange_timeout_ms=10_000, pending_grace_seconds=19)


def test_private_outbound_is_explicit_and_never_in_production() -> None:
    assert Settings(env="development").outbound.allow_private is False
    assert Settings(env="test").outbound.allow_private is True  # unset: the test env only
    assert Settings(env="test", outbound_allow_private=False).outbound.allow_private is False
    assert Settings(env="test", outbound_allow_private=True).outbound.allow_private is True
    with pytest.raises(ValidationError, match="EXEC_OUTBOUND_ALLOW_PRIVATE"):
        Settings(env="production", outbound_allow_private=True)


def test_the_old_webhook_setting_name_still_allows_private_outbound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXEC_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true")
    assert Settings(env="development").outbound.allow_private is True


def test_venue_hosts_only_is_the_production_default() -> None:
    assert Settings(env="production").outbound.venue_hosts_only is True
    assert Settings(env="development").outbound.venue_hosts_only is False
    hosts = Settings(outbound_allowed_hosts=" GW.internal:8443, mt.example ").outbound
    assert hosts.allowed_hosts == frozenset({"gw.internal:8443", "mt.example"})


def test_egress_groups_and_weight_windows_are_read_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXEC_EGRESS_PROXIES", '{"eu-2": "http://ops:pw@10.0.0.7:3128"}')
    monkeypatch.setenv("EXEC_BUDGET_WEIGHT_WINDOWS", '{"binance": {"limit": 1200, "seconds": 10}}')
    settings = Settings()
    egress = settings.egress["eu-2"]
    assert egress.host == "10.0.0.7" and "pw" not in repr(egress) and "pw" not in repr(settings)
    window = settings.budget_weight_windows["binance"]
    assert (window.limit, window.seconds, window.grace) == (1200, 10, None)


@pytest.mark.parametrize(
    ("proxies", "why"),
    [
        ({"EU 2": "http://10.0.0.7:3128"}, "egress name"),
        ({"eu": "socks5://10.0.0.7:1080"}, "http:// or https://"),
        ({"eu": "http://"}, "http:// or https://"),
    ],
)
def test_a_bad_egress_group_stops_the_start_naming_the_group(
    proxies: dict[str, str], why: str
) -> None:
    with pytest.raises(ValidationError, match=why) as raised:
        Settings(egress_proxies=proxies)
    assert "10.0.0.7" not in str(raised.value)  # the URL (and its password) is not echoed
