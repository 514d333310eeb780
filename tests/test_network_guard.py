"""The guard in conftest keeps the suite on loopback; prove it refuses, then forget the attempt."""

from __future__ import annotations

import socket

import pytest

from tests import conftest


def test_a_connection_off_loopback_is_refused() -> None:
    before = len(conftest.off_loopback)
    with pytest.raises(OSError, match="not loopback"):
        socket.getaddrinfo("api.binance.com", 443)
    sock = socket.socket()
    with pytest.raises(OSError, match="not loopback"):
        sock.connect(("10.1.2.3", 443))
    sock.close()
    assert len(conftest.off_loopback) == before + 2
    del conftest.off_loopback[before:]  # these two were this test's own, on purpose
