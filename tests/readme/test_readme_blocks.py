"""The README's shell blocks, pasted in order into a terminal, against a live server.

`make run` starts the server (the block marked `readme-test: serve`), then every other shell
block runs command by command in bash, in the project directory, with the venv *not* on PATH: the
CLI works only the way the README says to type it. Each command must exit 0, and its output must
be what the README shows under it (`blocks.match_output`: literal, but for `…`, times, latencies
and API keys); a command shown without output must not answer with an error document.

What differs from a reader's run, and only that:
- the project directory's defaults (`./execution.db`, `./.execution-keys`, port 8000) are a
  fresh SQLite database, key file and free port of this test (EXEC_* settings, as documented);
- `export NAME=…` lines get the reader's own values: `$BASE` this server, the exchange and
  gateway settings the fake Binance and fake MetaTrader gateway (tests/fakes/), and a key the
  README shows printed gets the key this run printed.
The transcript (every command as run, with its output) is written to the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.binance import FakeBinance
from tests.fakes.mtapi import FakeMtapi
from tests.readme.blocks import API_KEY, Block, Command, match_output, shell_blocks
from tests.readme.terminal import REPO, VENV_BIN, Background, Terminal, fill_exports, reader_env
from tests.reliability.procs import free_port

README = REPO / "README.md"
# Blocks marked `readme-test: skip (why)`: a new one must be a deliberate choice.
SKIPPED = 4
_PROBLEM = "https://execution-service.dev/problems/"


class Reader:
    def __init__(self, terminal: Terminal, values: dict[str, str], transcript: Path) -> None:
        self.terminal, self.values, self.transcript = terminal, values, transcript
        self.copied: dict[str, str] = {}  # README value -> what this run printed in its place
        self.answers: list[tuple[str, str]] = []  # (command as run, output)

    def record(self, block: Block, command: Command, script: str, output: str) -> None:
        with self.transcript.open("a") as f:
            f.write(f"--- README.md:{command.line} ({block.section})\n$ {script}\n{output}\n")
        self.answers.append((script, output))

    def check(self, block: Block, command: Command, script: str, code: int, output: str) -> None:
        where = f"README.md:{command.line} ({block.section}; transcript: {self.transcript})"
        shown = command.shown
        if code != 0:
            pytest.fail(f"{where}: exit {code}\n$ {script}\n{output}", pytrace=False)
        if command.expected:
            found = match_output(shown, output, self.copied)
            if not found.ok:
                pytest.fail(
                    f"{where}: the output is not what the README shows\n$ {script}\n"
                    f"--- README shows:\n{shown}\n--- the terminal shows:\n{output}",
                    pytrace=False,
                )
            self.copied.update(found.captured)
        elif _PROBLEM in output:
            pytest.fail(
                f"{where}: an error the README does not show\n$ {script}\n{output}", pytrace=False
            )

    async def run_block(self, block: Block) -> None:
        for command in block.commands:
            script, replaced = fill_exports(command.text, self.values, self.copied)
            self.copied.update(replaced)
            left = [v for v in self.copied if v in script]
            assert not left, f"README.md:{command.line}: {left} is this README's, not the reader's"
            assert not re.search(r"localhost|127\.0\.0\.1:8000", script), (
                f"README.md:{command.line}: a hard-coded address; use $BASE"
            )
            code, output = await self.terminal.run(script)
            self.record(block, command, script, output)
            self.check(block, command, script, code, output)

    def answer(self, *fragments: str) -> Any:
        """The JSON answer of the first command run that contains every fragment."""
        for script, output in self.answers:
            if all(f in script for f in fragments):
                return json.loads(output)
        raise AssertionError(f"no command with {fragments} ran")

    def printed(self, *fragments: str) -> str:
        return next(out for script, out in self.answers if all(f in script for f in fragments))


async def start_server(reader: Reader, block: Block, log: Path, port: int) -> Background:
    """The `serve` block in the background; returns once the API answers and every worker loop
    has beaten (what a reader sees before they open the second terminal)."""
    assert len(block.commands) == 1, f"{block.where}: a serve block is one command"
    (command,) = block.commands
    server = Background(reader.terminal, command.text, log)
    try:
        await wait_ready(server, block, port)
        reader.record(block, command, command.text, server.output())
        reader.check(block, command, command.text, 0, server.output())
    except BaseException:
        await server.stop()
        raise
    return server


async def wait_ready(server: Background, block: Block, port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as http:
        for _ in range(1200):
            assert server.running, f"{block.where}: the server stopped:\n{server.output()}"
            loops = re.search(r"workers started: (.+)", server.output())
            try:
                ready = await http.get("/health/ready")
                fresh = ready.json()["checks"]["workers"]["fresh"] if ready.is_success else []
                if loops and set(loops[1].split(", ")) <= set(fresh):
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"{block.where}: not ready after 60 s:\n{server.output()}")


async def test_every_shell_block_runs_as_pasted(tmp_path: Path) -> None:
    if not (VENV_BIN / "execution-service").exists():
        pytest.skip("the README's commands use .venv/ (make install creates it)")
    stale = subprocess.run(["make", "-q", ".venv/.installed-stamp"], cwd=REPO, check=False)
    assert stale.returncode == 0, "pyproject.toml is newer than .venv: `make run` would reinstall"
    blocks = shell_blocks(README)
    port = free_port()
    settings = {
        "EXEC_OUTBOUND_ALLOW_PRIVATE": "true",  # the fakes listen on loopback
        "EXEC_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/execution.db",
        "EXEC_ENCRYPTION_KEY_FILE": str(tmp_path / "execution-keys"),
        "EXEC_PORT": str(port),
    }
    mt = FakeMtapi(user="7001234", host="mt4.broker.example", port=443)
    async with FakeBinance() as binance, mt:
        values = {
            "BASE": f"http://127.0.0.1:{port}",
            "EXCHANGE_URL": binance.base_url,
            "EXCHANGE_API_KEY": binance.api_key,
            "EXCHANGE_API_SECRET": binance.api_secret,
            "MTAPI_URL": mt.base_url,
            "MT_PASSWORD": mt.password,
        }
        terminal = Terminal(reader_env(settings), tmp_path / "shell-state")
        reader = Reader(terminal, values, tmp_path / "transcript.txt")
        server: Background | None = None
        skipped = [b for b in blocks if b.marker == "skip"]
        try:
            for block in blocks:
                if block.marker == "skip":
                    assert block.reason, f"{block.where}: a skip says why"
                elif block.marker == "serve":
                    server = await start_server(reader, block, tmp_path / "server.log", port)
                else:
                    assert block.marker is None, f"{block.where}: unknown {block.marker!r}"
                    assert server is not None, f"{block.where}: runs before the server starts"
                    await reader.run_block(block)
            assert server is not None, "no block is marked `readme-test: serve`"
            check_answers(reader, binance, mt)
            admin = API_KEY.findall(server.output())[0]  # the bootstrap key printed
            await check_cli_key(reader, values["BASE"], admin)
        finally:
            if server is not None:
                await server.stop()
    assert "Traceback" not in server.output(), server.output()
    assert len(skipped) == SKIPPED, [f"{b.where}: {b.reason}" for b in skipped]


def check_answers(reader: Reader, binance: FakeBinance, mt: FakeMtapi) -> None:
    """What the README's answers mean, beyond looking like it."""
    paper = reader.answer("/api/v1/signals", '"external_id": "demo-1"')["executions"]
    assert [e["status"] for e in paper] == ["filled"], paper
    closed = reader.answer("/api/v1/positions/1/close")["position"]
    assert (closed["status"], closed["closed_reason"]) == ("closed", "manual"), closed
    summary = reader.answer("/api/v1/analytics/summary?connection_id=1")
    assert summary["total_trades"] == 1 and summary["net_pnl"] == closed["pnl"], summary
    daily = reader.answer('/api/v1/analytics/daily?connection_id=1"')["items"]  # not the CSV
    assert [d["total_trades"] for d in daily] == [1], daily

    assert reader.answer("/api/v1/connections/2/activate")["status"] == "active"
    ccxt = reader.answer("/api/v1/signals", '"connection_ids": [2]')["executions"]
    assert [e["status"] for e in ccxt] == ["filled"], ccxt
    entries = [o.status for o in binance.orders if o.order_list_id == -1]
    assert entries == ["FILLED"], binance.orders
    # Its SL and TP rest at Binance as one OCO list, placed right after the fill.
    [oco] = binance.order_lists()
    assert sorted(leg.type for leg in oco.legs) == ["LIMIT_MAKER", "STOP_LOSS"], oco

    assert reader.answer("/api/v1/connections/3/activate")["status"] == "active"
    fx = reader.answer("/api/v1/signals", '"connection_ids": [3]')["executions"]
    assert [e["status"] for e in fx] == ["filled"], fx
    assert [(t.symbol, t.lots, t.sl, t.tp) for t in mt.opened] == [
        ("EURUSD", Decimal("0.2"), Decimal("1.095"), Decimal("1.12"))
    ], mt.opened  # the broker holds the stops

    hooks = reader.answer("/api/v1/webhooks/1/deliveries")
    assert hooks["items"] == [], hooks  # nothing was sent off this machine


async def check_cli_key(reader: Reader, base: str, admin: str) -> None:
    """The CLI worked on the server's database: the server lists the key it created as revoked,
    and refuses it."""
    (key,) = API_KEY.findall(reader.printed("api-keys create --name ops"))
    async with httpx.AsyncClient(base_url=base) as http:
        keys = await http.get("/api/v1/api-keys", headers={"Authorization": f"Bearer {admin}"})
        me = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    ops = [k for k in keys.json()["items"] if k["name"] == "ops"]
    assert [(k["id"], k["revoked_at"] is not None) for k in ops] == [(4, True)], keys.text
    assert me.status_code == 401, me.text
