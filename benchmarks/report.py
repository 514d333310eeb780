"""Figures, their baselines and targets; the printed tables; the README table between markers."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT

README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results.json"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
ORDER = [
    "order",
    "fanout",
    "monitor",
    "reads",
    "stops",
    "market_data",
    "budget",
    "protection",
    "headofline",
    "scale",
]
TITLES = {
    "order": "1. Per-order overhead (one signal, one ccxt connection)",
    "fanout": "2. Fan-out (one signal to many connections)",
    "monitor": "3. Monitor tick",
    "reads": "4. API reads (GET /positions?status=open&limit=50)",
    "stops": "5. Stop reaction",
    "market_data": "6. Market data at scale (ingest and latest, 10,000 vs 10 million ticks)",
    "budget": "7. Request budget (fan-out to ccxt accounts on one IP, weight enforced)",
    "protection": "8. Protection on the venue's wire (fill → closed, price → exit sent)",
    "headofline": "9. Head-of-line blocking (1,000 ccxt accounts, one slow, beside paper)",
    "scale": "10. Scale-out (1,000,000 positions; the monitor split across worker processes)",
}


@dataclass
class Figure:
    name: str
    value: float
    unit: str  # ms, s, req/s, orders/s, closes/s, count, per tick
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""  # e.g. "≤ 1 s"; targets are the issue's, stated for PostgreSQL
    ok: bool | None = None  # the target met (None: no target)
    higher_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline or math.isnan(self.value):
            return None
        return self.value / self.baseline


@dataclass
class Result:
    bench: str
    db: str  # SQLite | PostgreSQL
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    date: str = ""
    seconds: float = 0.0
    load: list[float] = field(default_factory=list)  # 1-min load average: start, end
    # Cores busy on average during the benchmark: the machine, ours (this process and the
    # service, fake and load generator it ran), the rest (PostgreSQL and anything else).
    cpu: dict[str, float] = field(default_factory=dict)
    quick: bool = False
    error: str | None = None
    partial: bool = False

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)

    def warn(self, what: str) -> None:
        """A partial figure: kept, flagged in the notes, and printed as a warning."""
        self.partial = True
        self.notes.append(f"partial: {what}")


def fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit in ("ms",):
        if value >= 100:
            return f"{value:,.0f} ms"
        return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "count":
        return f"{value:.0f}"
    if unit == "per tick":
        return f"{value:.2f} per tick"
    return f"{value:,.0f} {unit}"


def fmt_ratio(figure: Figure) -> str:
    r = figure.ratio
    return "-" if r is None else f"{r:.2f}x"


def verdict(figure: Figure) -> str:
    if figure.ok is None:
        return ""
    return "met" if figure.ok else "missed"


def print_result(result: Result) -> None:
    head = f"{TITLES[result.bench]} — {result.db}"
    if result.quick:
        head += " (quick sizes)"
    print(f"\n{head}\n" + "-" * len(head))
    if result.error:
        print(f"FAILED: {result.error}")
        return
    rows = [("figure", "value", "baseline", "", "ratio", "target", "")]
    for f in result.figures:
        rows.append(
            (
                f.name,
                fmt(f.value, f.unit),
                fmt(f.baseline, f.unit) if f.baseline is not None else "",
                f.baseline_name,
                fmt_ratio(f),
                f.target,
                verdict(f),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows if result.figures else []):  # none: a bench not applicable
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for note in result.notes:
        print(f"  note: {note}")
    cpu = result.cpu
    busy = (
        f"; cores busy: machine {cpu['machine']:.2f}, ours {cpu['ours']:.2f}, "
        f"PostgreSQL + other processes {cpu['rest']:.2f}"
        if cpu
        else ""
    )
    print(
        f"  ({result.seconds:.0f} s; load average {result.load[0]:.2f} → {result.load[-1]:.2f}"
        f"{busy})"
    )


# --- stored results and the README table --------------------------------------------------------


def load_results() -> dict[str, dict[str, Any]]:
    if not RESULTS.exists():
        return {}
    data: dict[str, dict[str, Any]] = json.loads(RESULTS.read_text())
    return data


def save_results(results: list[Result], machine: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Merge this run's results into benchmarks/results.json (keyed bench/db). Each result keeps
    the machine it ran on; `_machine`, which the table's first line describes, is replaced
    only by a run of every benchmark (a partial run on another machine or day is told apart)."""
    stored = load_results()
    if not stored.get("_machine") or {r.bench for r in results} >= set(ORDER):
        stored["_machine"] = dict(machine)
    for r in results:
        stored[f"{r.bench}/{r.db}"] = {**asdict(r), "machine": machine}
    RESULTS.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    return stored


def machine_info(pg_version: str | None) -> dict[str, str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgres": pg_version or "not run",
        "os": f"{platform.system()} {platform.release()}",
    }


def _cell(stored: dict[str, dict[str, Any]], bench: str, db: str, name: str) -> tuple[str, str]:
    r = stored.get(f"{bench}/{db}")
    if not r:
        return "-", "-"
    if r.get("error"):
        return "failed", "-"
    for f in r["figures"]:
        if f["name"] == name:
            fig = Figure(**f)
            ratio = fmt_ratio(fig)
            base = fmt(fig.baseline, fig.unit) if fig.baseline is not None else ""
            value = fmt(fig.value, fig.unit)
            return value, (f"{ratio} of {base}" if base else ratio)
    return "-", "-"


def _elsewhere(stored: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The results run on another machine than the table's first line describes."""
    m = stored.get("_machine", {})
    return {
        k: v
        for k, v in stored.items()
        if not k.startswith("_") and v.get("machine") not in (None, m)
    }


def _partial_runs(stored: dict[str, dict[str, Any]]) -> list[str]:
    """One line per benchmark run apart from the rest: when, on what, how loaded."""
    lines = []
    for bench in ORDER:
        runs = [v for k, v in _elsewhere(stored).items() if k.startswith(f"{bench}/")]
        if not runs:
            continue
        m, dates = runs[0]["machine"], sorted(v["date"] for v in runs)
        load = max(max(v.get("load") or [0]) for v in runs)
        lines.append(
            f"{TITLES[bench].split(' (')[0]} ran apart, {dates[0][:10]} {dates[0][11:16]}-"
            f"{dates[-1][11:16]} UTC, on {m.get('cores', '?')} cores ({m.get('cpu', '?')}), "
            f"{m.get('memory', '?')}; Python {m.get('python', '?')}, SQLite "
            f"{m.get('sqlite', '?')}, PostgreSQL {m.get('postgres', '?')}; highest 1-minute "
            f"load average {load:.1f}; other processes kept "
            f"{max(v.get('cpu', {}).get('rest', 0) for v in runs):.1f} cores busy at most. Its "
            "ratios compare figures of that one run."
        )
    return lines


def render_table(stored: dict[str, dict[str, Any]]) -> str:
    m = stored.get("_machine", {})
    apart = _elsewhere(stored)
    stamps = sorted(
        v["date"]
        for k, v in stored.items()
        if not k.startswith("_") and k not in apart and v.get("date")
    )
    dates = [f"{stamps[0][:10]} {stamps[0][11:16]}-{stamps[-1][11:16]} UTC"] if stamps else []
    loads = [
        max(v.get("load") or [0])
        for k, v in stored.items()
        if not k.startswith("_") and k not in apart and v.get("load")
    ]
    quick = any(v.get("quick") for k, v in stored.items() if not k.startswith("_"))
    rest = [
        v["cpu"]["rest"]
        for k, v in stored.items()
        if not k.startswith("_") and k not in apart and v.get("cpu")
    ]
    busy = (
        f" PostgreSQL and every other process on the machine kept {min(rest):.1f} to "
        f"{max(rest):.1f} of its cores busy on average during the benchmarks, beside the "
        "benchmark and the service themselves (`cpu` in benchmarks/results.json)."
        if rest
        else ""
    )
    lines = [
        f"Run of {', '.join(dates) or '-'} on {m.get('cores', '?')} cores ({m.get('cpu', '?')}), "
        f"{m.get('memory', '?')}; Python {m.get('python', '?')}, SQLite {m.get('sqlite', '?')}, "
        f"PostgreSQL {m.get('postgres', '?')} (fsync and synchronous_commit on). Highest 1-minute "
        f"load average seen during a benchmark: {max(loads) if loads else 0:.1f}"
        + (" — **quick sizes, not the full run**" if quick else "")
        + "."
        + busy,
        *(["", *_partial_runs(stored)] if apart else []),
        "",
        "| benchmark | figure | SQLite | ratio to baseline | PostgreSQL | ratio to baseline "
        "| target (PostgreSQL) |",
        "|---|---|---|---|---|---|---|",
    ]
    for bench in ORDER:
        names: list[str] = []
        targets: dict[str, str] = {}
        for db in ("SQLite", "PostgreSQL"):
            r = stored.get(f"{bench}/{db}")
            for f in (r or {}).get("figures", []):
                if f["name"] not in names:
                    names.append(f["name"])
                if f["target"]:
                    ok = f.get("ok")
                    mark = "" if db != "PostgreSQL" or ok is None else (" ✅" if ok else " ❌")
                    targets[f["name"]] = f["target"] + mark
        for n, name in enumerate(names):
            sv, sr = _cell(stored, bench, "SQLite", name)
            pv, pr = _cell(stored, bench, "PostgreSQL", name)
            label = TITLES[bench].split(" (")[0] if n == 0 else ""
            lines.append(
                f"| {label} | {name} | {sv} | {sr} | {pv} | {pr} | {targets.get(name, '')} |"
            )
    notes = []
    for bench in ORDER:
        for db in ("SQLite", "PostgreSQL"):
            r = stored.get(f"{bench}/{db}")
            for note in (r or {}).get("notes", []):
                notes.append(f"- {bench}, {db}: {note}")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def write_readme(stored: dict[str, dict[str, Any]]) -> bool:
    """Replace the text between the markers; False when the README has no markers."""
    text = README.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        return False
    table = render_table(stored)
    README.write_text(pattern.sub(lambda _: f"{START}\n{table}\n{END}", text, count=1))
    return True
