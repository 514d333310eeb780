"""`python -m benchmarks [--only NAME ...] [--db sqlite|postgres] [--quick] [--profile]`

Runs each chosen benchmark on each chosen database (a fresh one per benchmark, dropped after),
prints a table per benchmark with the ratio to its baseline, stores the figures in
benchmarks/results.json and, unless --quick or --no-readme, rewrites the README's results
table between `<!-- bench:start -->` and `<!-- bench:end -->`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import report
from benchmarks.harness import (
    ROOT,
    CpuMeter,
    Env,
    create_database,
    log,
    new_ring,
    postgres_available,
    postgres_version as pg_version,
)

MODULES = {
    "order": "benchmarks.bench_order",
    "fanout": "benchmarks.bench_fanout",
    "monitor": "benchmarks.bench_monitor",
    "reads": "benchmarks.bench_reads",
    "stops": "benchmarks.bench_stops",
    "market_data": "benchmarks.bench_market_data",
    "budget": "benchmarks.bench_budget",
    "protection": "benchmarks.bench_protection",
    "headofline": "benchmarks.bench_headofline",
    "scale": "benchmarks.bench_scale",
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", choices=list(MODULES), help="repeatable")
    p.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--quick", action="store_true", help="small sizes, for trying things out")
    p.add_argument(
        "--profile",
        action="store_true",
        help="also record py-spy / pyinstrument profiles into benchmarks/profiles/ "
        "(the figures of such a run are perturbed: the README is not rewritten)",
    )
    p.add_argument("--no-readme", action="store_true", help="do not rewrite the README table")
    p.add_argument("--keep-workdir", action="store_true", help="keep logs and SQLite files")
    return p.parse_args(argv)


async def main_async(args: argparse.Namespace) -> int:
    benches = args.only or list(MODULES)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    pg = None
    if "postgres" in kinds:
        if await postgres_available():
            pg = await pg_version()
        elif args.db == "postgres":
            print("PostgreSQL is not reachable (BENCH_POSTGRES_URL)", file=sys.stderr)
            return 2
        else:
            print("PostgreSQL is not reachable: SQLite only", file=sys.stderr)
            kinds = ["sqlite"]
    workdir = Path(tempfile.mkdtemp(prefix="exec-bench-"))
    profile_dir = None
    if args.profile:
        profile_dir = ROOT / "benchmarks" / "profiles"
        profile_dir.mkdir(exist_ok=True)
    env = Env(workdir, args.quick, new_ring(), profile_dir)
    results: list[report.Result] = []
    started = time.monotonic()
    try:
        for bench in benches:
            module = importlib.import_module(MODULES[bench])
            for kind in kinds:
                log(f"{bench} on {kind}")
                load0 = os.getloadavg()[0]
                meter = CpuMeter()
                t0 = time.monotonic()
                db = await create_database(kind, bench, workdir)
                try:
                    result: report.Result = await module.run(db, env)
                except Exception as exc:
                    traceback.print_exc()
                    result = report.Result(bench, db.label, error=f"{type(exc).__name__}: {exc}")
                finally:
                    await db.drop()
                result.date = datetime.now(UTC).isoformat(timespec="seconds")
                result.seconds = time.monotonic() - t0
                result.load = [load0, os.getloadavg()[0]]
                result.cpu = meter.read()
                result.quick = args.quick
                results.append(result)
                report.print_result(result)
    finally:
        if args.keep_workdir:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nall benchmarks: {time.monotonic() - started:.0f} s (time limits x{env.pace:.1f})")
    for r in results:
        if r.partial:
            print(f"WARNING: {r.bench} on {r.db}: partial figures ({'; '.join(r.notes)})")
    if args.quick or args.profile:
        print("quick or profiled run: benchmarks/results.json and README.md left as they were")
        return 1 if any(r.error for r in results) else 0
    stored = report.save_results(results, report.machine_info(pg))
    if not args.no_readme:
        if report.write_readme(stored):
            print("README.md results table rewritten")
        else:
            print("README.md has no bench markers: table not written")
    return 1 if any(r.error for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
