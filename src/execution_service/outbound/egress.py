"""Egress groups: named routes out to the venues, each an HTTP proxy the operator runs (issue #19).

Venues count most limits per source IP, so accounts spread over several egress IPs get several
budgets. Operators define the groups (`EXEC_EGRESS_PROXIES`, a JSON object of name -> proxy URL);
a connection names one. Tenants never submit proxy URLs: a proxy is a place the service connects
to, and its URL may carry the proxy's password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from execution_service.outbound.policy import OutboundPolicy

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")


@dataclass(frozen=True)
class Egress:
    name: str
    proxy_url: str = field(repr=False)  # may carry the proxy's user and password

    @property
    def host(self) -> str:
        return (urlsplit(self.proxy_url).hostname or "").lower()

    def policy(self, base: OutboundPolicy) -> OutboundPolicy:
        """The proxy is the operator's own: it is reached wherever it resolves (a private address
        is usual). The venue's name is resolved by the proxy, which the operator answers for."""
        return replace(base, allowed_hosts=base.allowed_hosts | {self.host})


def parse_egress(raw: dict[str, str]) -> dict[str, Egress]:
    """Checked at start-up: a bad name or URL stops the service, naming the group, not the URL."""
    groups: dict[str, Egress] = {}
    for name, url in raw.items():
        if not NAME.match(name):
            raise ValueError(f"egress name {name!r}: lowercase letters, digits, '.', '_', '-'")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"egress {name!r}: the proxy must be an http:// or https:// URL")
        groups[name] = Egress(name, url)
    return groups
