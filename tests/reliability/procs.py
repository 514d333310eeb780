"""Real processes for reliability tests: the service (`execution-service serve`) and the fake
Binance in standalone mode, started, killed and waited for without blocking the event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proc:
    """A child process whose output goes to a file (a pipe nobody reads would fill and block it)."""

    def __init__(
        self, name: str, args: list[str], *, env: dict[str, str], cwd: Path, log: Path
    ) -> None:
        self.name, self.log = name, log
        self._out = log.open("ab")
        self.popen = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=self._out, stderr=subprocess.STDOUT
        )

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    async def wait(self, seconds: float) -> int | None:
        """The exit code, or None if still running after `seconds` (polled: the loop stays free)."""
        deadline = time.monotonic() + seconds
        while self.popen.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.popen.poll()

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash or an OOM kill."""
        if self.running:
            self.popen.send_signal(signal.SIGKILL)
        await self.wait(10)
        self._out.close()

    async def stop(self, seconds: float = 20) -> int | None:
        """SIGTERM, then SIGKILL if it does not go within `seconds`."""
        if self.running:
            self.popen.send_signal(signal.SIGTERM)
        code = await self.wait(seconds)
        if code is None:
            await self.kill()
        self._out.close()
        return self.popen.poll()

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


async def start_fake_binance(log: Path, *, api_key: str, api_secret: str) -> tuple[Proc, str]:
    """`python -m tests.fakes.binance` on a free port; returns the process and its base URL."""
    proc = Proc(
        "fake-binance",
        [
            sys.executable,
            "-m",
            "tests.fakes.binance",
            "--port",
            "0",
            "--api-key",
            api_key,
            "--api-secret",
            api_secret,
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=REPO,
        log=log,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in proc.output().splitlines():
            if line.startswith("http://127.0.0.1:"):
                return proc, line.strip()
        if not proc.running:
            break
        await asyncio.sleep(0.05)
    await proc.kill()
    raise AssertionError(f"the fake exchange did not start:\n{proc.output()[-3000:]}")


async def start_service(env: dict[str, str], port: int, log: Path, cwd: Path) -> Proc:
    """`execution-service serve --no-migrate` on `port` (API + workers); returns once /health
    answers."""
    proc = Proc(
        "service",
        [
            sys.executable,
            "-m",
            "execution_service.cli",
            "serve",
            "--no-migrate",
            "--port",
            str(port),
        ],
        env=env,
        cwd=cwd,
        log=log,
    )
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as http:
        while time.monotonic() < deadline and proc.running:
            try:
                if (await http.get("/health")).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    await proc.kill()
    raise AssertionError(f"the service did not start:\n{proc.output()[-3000:]}")
