"""Which addresses a tenant's URL may reach, however they are spelled (pure, table-driven)."""

from __future__ import annotations

import pytest

from execution_service.outbound import policy
from execution_service.outbound.addresses import literal, refusal
from execution_service.outbound.policy import OutboundPolicy, UrlRefused, check_url, split

REFUSED = [
    ("127.0.0.1", "a loopback address"),
    ("127.1", "a loopback address"),
    ("2130706433", "a loopback address"),
    ("0x7f000001", "a loopback address"),
    ("0177.0.0.1", "a loopback address"),
    ("::1", "a loopback address"),
    ("[::1]", "a loopback address"),
    ("::ffff:127.0.0.1", "a loopback address"),
    ("[::ffff:7f00:1]", "a loopback address"),
    ("2002:7f00:1::", "a loopback address"),  # 6to4 wrapping 127.0.0.1
    ("64:ff9b::7f00:1", "a loopback address"),  # NAT64 wrapping 127.0.0.1
    ("64:ff9b::a00:5", "a private or reserved address"),  # NAT64 wrapping 10.0.0.5
    ("2002:c0a8:101::", "a private or reserved address"),  # 6to4 wrapping 192.168.1.1
    ("169.254.169.254", "a link-local address"),  # cloud metadata
    ("fe80::1", "a link-local address"),
    ("100.100.100.200", "a private or reserved address"),  # CGNAT; Alibaba's metadata
    ("100.64.0.1", "a private or reserved address"),
    ("10.1.2.3", "a private or reserved address"),
    ("172.16.0.1", "a private or reserved address"),
    ("192.168.1.1", "a private or reserved address"),
    ("192.0.0.8", "a private or reserved address"),
    ("198.18.0.1", "a private or reserved address"),  # benchmarking
    ("fd00::1", "a private or reserved address"),
    ("fd00:ec2::254", "a private or reserved address"),  # AWS metadata over IPv6
    ("0.0.0.0", "a private or reserved address"),  # noqa: S104
    ("0", "a private or reserved address"),
    ("240.0.0.1", "a private or reserved address"),
    ("255.255.255.255", "a private or reserved address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
]


@pytest.mark.parametrize(("host", "why"), REFUSED)
def test_refused_spellings(host: str, why: str) -> None:
    address = literal(host)
    assert address is not None
    assert refusal(address) == why


@pytest.mark.parametrize("host", ["93.184.216.34", "2606:4700::1111", "1.1.1.1", "8.8.8.8"])
def test_public_addresses_pass(host: str) -> None:
    address = literal(host)
    assert address is not None and refusal(address) is None


@pytest.mark.parametrize("host", ["api.binance.com", "example.com", "1.2.3.4.5"])
def test_names_are_not_literals(host: str) -> None:
    assert literal(host) is None


@pytest.mark.parametrize(
    "url",
    ["ftp://1.1.1.1/", "file:///etc/passwd", "gopher://1.1.1.1/", "http://"],
)
def test_only_plain_http_urls(url: str) -> None:
    with pytest.raises(UrlRefused):
        split(url)


async def test_listed_hosts_pass_wherever_they_resolve() -> None:
    policy = OutboundPolicy(allowed_hosts=frozenset({"10.0.0.5:8443"}))
    await check_url("https://10.0.0.5:8443/", policy)
    with pytest.raises(UrlRefused):
        await check_url("https://10.0.0.5:9000/", policy)


async def test_venue_hosts_only() -> None:
    policy = OutboundPolicy(venue_hosts_only=True)
    with pytest.raises(UrlRefused, match="not a host of this venue"):
        await check_url("https://93.184.216.34/", policy, venue_hosts={"api.binance.com"})
    await check_url("https://93.184.216.34/", policy, venue_hosts=None)  # no list: public only


async def test_unresolvable_names_are_checked_at_connect_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def nowhere(host: str, port: int) -> list[str]:
        raise OSError("no such name")

    monkeypatch.setattr(policy, "lookup", nowhere)
    await check_url("https://hooks.example.com/x", OutboundPolicy())
    with pytest.raises(UrlRefused) as refused:
        await policy.resolve("hooks.example.com", 443, OutboundPolicy())
    assert refused.value.code == "url_unresolvable"
