"""A reader's terminals: bash in the project directory, where what one command exports the next
one sees, and a first terminal for the server that keeps running (stopped like Ctrl-C stops it:
its whole process group)."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
COMMAND_SECONDS = 30  # the longest any one command may take
_EXPORT = re.compile(r"^export (?P<name>[A-Za-z_]\w*)=(?P<value>\S*)(?P<rest>.*)$")


def reader_env(settings: dict[str, str]) -> dict[str, str]:
    """A fresh shell's environment: no venv on PATH, none of the suite's EXEC_* or make's
    variables; `settings` (where the project directory's defaults live in this run) added."""
    skip = {"VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHONPATH", "PYTHONHOME"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXEC_") and k not in skip}
    path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in path if Path(p) != VENV_BIN)
    return {**env, **settings}


def fill_exports(
    command: str, values: dict[str, str], copied: dict[str, str]
) -> tuple[str, dict[str, str]]:
    """What the reader types for `export NAME=…`: their own value where the README asks for one
    (`values`, by name), or the value their terminal printed where the README shows its own
    (`copied`, README value -> this run's). Every other line is pasted as written. Also returns
    README value -> the reader's, for the answers that echo it."""
    lines, replaced = [], {}
    for line in command.splitlines():
        m = _EXPORT.match(line)
        if m and (m["name"] in values or m["value"] in copied):
            value = values.get(m["name"]) or copied[m["value"]]
            if "…" not in m["value"]:
                replaced[m["value"]] = value
            line = f"export {m['name']}={shlex.quote(value)}{m['rest']}"
        lines.append(line)
    return "\n".join(lines), replaced


class Terminal:
    def __init__(self, env: dict[str, str], state: Path) -> None:
        self.env, self.state = env, state
        state.write_text("")

    def _script(self, command: str) -> list[str]:
        # -u: a variable the README never defines is an error here, not an empty string.
        body = f'. "{self.state}"\n{command}\n__code=$?\nexport -p > "{self.state}"\nexit $__code\n'
        return ["bash", "--noprofile", "--norc", "-u", "-c", body]

    async def run(self, command: str) -> tuple[int, str]:
        """Exit code and output (stdout and stderr, as the terminal shows them)."""
        timeout = COMMAND_SECONDS
        proc = await asyncio.create_subprocess_exec(
            *self._script(command),
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return -1, f"(still running after {timeout} s: killed)"
        return proc.returncode or 0, out.decode(errors="replace")


class Background:
    """A command left running, its output going to a file, in a process group of its own."""

    def __init__(self, terminal: Terminal, command: str, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                terminal._script(command),
                cwd=REPO,
                env=terminal.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def stop(self, seconds: float = 20) -> None:
        """SIGTERM to the group; SIGKILL if it is still there after `seconds`."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                return
            for _ in range(int(seconds * 20)):
                self.popen.poll()  # the group's leader, reaped: a zombie would still count
                if not _group_alive(self.popen.pid):
                    return
                await asyncio.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
