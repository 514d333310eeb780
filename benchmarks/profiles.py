"""Readable summaries of py-spy's collapsed stacks (`--format raw`): where the CPU went, by
package, by function (self), and by function including what it calls."""

from __future__ import annotations

import re
from collections import Counter

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
PACKAGES = [
    ("execution_service", "execution_service (ours)"),
    ("sqlalchemy", "sqlalchemy"),
    ("asyncpg", "asyncpg"),
    ("aiosqlite", "aiosqlite"),
    ("sqlite3", "sqlite3"),
    ("ccxt", "ccxt"),
    ("pydantic", "pydantic"),
    ("fastapi", "fastapi"),
    ("starlette", "starlette"),
    ("uvicorn", "uvicorn"),
    ("httptools", "uvicorn"),
    ("aiohttp", "aiohttp (ccxt's HTTP)"),
    ("prometheus_client", "prometheus_client"),
    ("cryptography", "cryptography"),
    ("asyncio", "asyncio"),
    ("uvloop", "asyncio"),
    ("logging", "logging"),
    ("json", "json"),
    ("decimal", "decimal"),
]


def _short(file: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file.rsplit("/", 2)[-1] if "/" in file else file


def _package(file: str) -> str:
    for needle, name in PACKAGES:
        if f"/{needle}/" in file or f"/{needle}." in file or file.startswith(needle):
            return name
    return "other"


def _key(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    return m["func"], m["file"]


def summarise(raw: str, top: int = 30) -> str:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [
            f for f in stack.split(";") if "(" in f and not f.startswith(("process ", "thread "))
        ]
        if not frames:
            continue
        total += count
        func, file = _key(frames[-1])
        self_time[f"{func} ({_short(file)})"] += count
        packages[_package(file)] += count
        seen = set()
        for frame in frames:
            f, fl = _key(frame)
            name = f"{f} ({_short(fl)})"
            if name not in seen:
                seen.add(name)
                inclusive[name] += count
    if not total:
        return "no samples\n"
    out = [f"{total} on-CPU samples", "", "by package (self time):"]
    out += [f"  {n / total:6.1%}  {name}" for name, n in packages.most_common()]
    out += ["", f"top {top} functions by self time:"]
    out += [f"  {n / total:6.1%}  {name}" for name, n in self_time.most_common(top)]
    out += ["", f"top {top} of our own functions (execution_service), including callees:"]
    ours = [(name, n) for name, n in inclusive.most_common() if "execution_service/" in name]
    out += [f"  {n / total:6.1%}  {name}" for name, n in ours[:top]]
    out += ["", f"top {top} functions including callees (any package):"]
    out += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(out) + "\n"
