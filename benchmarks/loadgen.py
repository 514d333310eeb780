"""A small closed-loop HTTP/1.1 load generator, for machines without wrk:

    python -m benchmarks.loadgen http://127.0.0.1:8000/health --connections 16 --seconds 10

Keep-alive connections, each sending its next GET when the previous answer is in; prints JSON:
rps, p50 and p99 in ms, count, non2xx, errors. Loopback only."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

from benchmarks.harness import pct


async def _connection(
    host: str,
    port: int,
    request: bytes,
    until: float,
    latencies: list[float],
    stats: dict[str, int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - t0) * 1000)
            if not 200 <= status < 400:
                stats["non2xx"] += 1
    except (OSError, asyncio.IncompleteReadError):
        stats["errors"] += 1
    finally:
        writer.close()


async def main_async(
    url: str, connections: int, seconds: float, headers: list[str]
) -> dict[str, float]:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback only")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", *headers, "", ""]
    request = "\r\n".join(lines).encode()
    latencies: list[float] = []
    stats = {"non2xx": 0, "errors": 0}
    t0 = time.perf_counter()
    until = t0 + seconds
    await asyncio.gather(
        *(
            _connection(parts.hostname, parts.port or 80, request, until, latencies, stats)
            for _ in range(connections)
        )
    )
    elapsed = time.perf_counter() - t0
    return {
        "rps": len(latencies) / elapsed,
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "count": len(latencies),
        **stats,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--header", action="append", default=[])
    args = p.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(main_async(args.url, args.connections, args.seconds, args.header))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
