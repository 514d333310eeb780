"""`execution-service serve | worker | migrate | api-keys | rotate-keys`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from pathlib import Path

from execution_service import migrate, observability
from execution_service.api_keys import service as api_keys
from execution_service.connections.rotation import reencrypt_credentials
from execution_service.context import AppContext
from execution_service.crypto import KeyRingError, load_key_ring, write_key_file
from execution_service.enums import Role
from execution_service.events import service as events
from execution_service.market_data import service as market_data
from execution_service.settings import Settings, get_settings
from execution_service.webhooks import service as webhooks


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from execution_service.app import create_app
    from execution_service.server import bounded_protocol

    load_key_ring(settings)  # refuse to start (production) or create the dev key before serving
    if settings.migrate_on_start and not args.no_migrate:
        migrate.upgrade(settings.database_url)
    app = create_app(settings)
    # What lives as long as the process (modules, routes, schemas) leaves the collector's sight:
    # a full collection then walks what requests allocate, not every startup object (a pause
    # of ~100 ms with ccxt loaded, in the tail latency of whatever requests it catches).
    gc.freeze()
    tune_collector()
    config = uvicorn.Config(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's loggers propagate to ours: one format for every line
        access_log=False,  # the app writes its own, with the request id and route template
        http=bounded_protocol(
            settings.http_header_timeout_seconds, settings.http_body_timeout_seconds
        ),
        limit_concurrency=settings.http_max_connections,
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: only from the
        # proxies the operator lists.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or "",
    )
    # Not uvicorn.run: open event streams watch this server, to end when it starts stopping.
    server = uvicorn.Server(config)
    app.state.streams.watch(server)
    server.run()
    return 0 if server.started else 3


def tune_collector() -> None:
    """A young generation of 50,000 allocations, not 700: a fan-out to 10,000 accounts allocates
    millions of short-lived objects (rows, Decimals, events), and at CPython's default each few
    hundred of them set off a collection, and every few of those a full one that walks every
    surviving row again: 0.7-0.9 s of a 10,000-account signal (`benchmarks.trace fanout`). Cyclic
    garbage is still collected, only in larger steps; reference counting frees the rest at once."""
    gc.set_threshold(50_000, 20, 10)


async def _worker(settings: Settings) -> int:
    from execution_service.workers.runner import WorkerRunner

    gc.freeze()  # as `_serve`: startup's objects leave the collector's sight
    tune_collector()
    ctx = AppContext.create(settings, load_key_ring(settings))
    events.announce_venue_pauses(ctx)
    if settings.worker_metrics_port is not None:
        from prometheus_client import start_http_server

        # The worker serves no API: its monitor and order metrics need a scrape port of their own.
        start_http_server(settings.worker_metrics_port, addr=settings.host)
    runner = WorkerRunner(ctx)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await runner.start()
    await stop.wait()
    await runner.stop()  # the tick in hand finishes first
    await ctx.aclose()
    return 0


async def _api_keys(settings: Settings, args: argparse.Namespace) -> int:
    ctx = AppContext.create(settings, load_key_ring(settings))
    try:
        async with ctx.session_factory() as session:
            if args.action == "create":
                role = Role(args.role)
                if (role is Role.user) != (args.user_id is not None):
                    print("a user key needs --user-id; other roles take none", file=sys.stderr)
                    return 2
                row, key = await api_keys.create_key(
                    session, name=args.name, role=role, user_id=args.user_id
                )
                print(f"id={row.id} role={row.role} prefix={row.prefix}")
                print(f"key (shown once): {key}")
            elif args.action == "list":
                rows, _ = await api_keys.list_keys(session, 10_000, 0)
                for r in rows:
                    state = "revoked" if r.revoked_at else "active"
                    print(f"{r.id}\t{r.role}\t{r.user_id or '-'}\t{r.prefix}\t{state}\t{r.name}")
            else:
                row = await api_keys.revoke_key(session, args.id)
                print(f"revoked key {row.id} ({row.prefix})")
    finally:
        await ctx.aclose()
    return 0


async def _rotate_keys(settings: Settings, new_key: bool, batch: int = 200) -> int:
    ring = load_key_ring(settings)
    if new_key:
        if settings.encryption_keys is not None:
            print(
                "--new-key writes the key file; with EXEC_ENCRYPTION_KEYS, put the new key first "
                "there and run rotate-keys without --new-key",
                file=sys.stderr,
            )
            return 2
        ring = ring.with_new_primary()
        write_key_file(Path(settings.encryption_key_file), ring)  # old keys kept: resumable
        print(f"new primary key {ring.primary_id} written to {settings.encryption_key_file}")
    ctx = AppContext.create(settings, ring)
    failed = done = 0
    try:
        async with ctx.session_factory() as session:
            async for progress in reencrypt_credentials(session, ring, batch):
                for failure in progress.failures:
                    print(failure, file=sys.stderr)
                failed += len(progress.failures)
                done = progress.done
                print(f"re-encrypted {done}/{progress.total}", flush=True)
            # Webhook signing secrets are under the same ring: an old key can go only when
            # neither kind of row still needs it.
            hooks, failures = await webhooks.reencrypt_secrets(session, ring)
            for failure in failures:
                print(failure, file=sys.stderr)
            failed += len(failures)
            if hooks or failures:
                print(f"webhook secrets: {hooks} re-encrypted, {len(failures)} failed", flush=True)
            # And the gateway logins of mtapi data connections.
            feeds, failures = await market_data.reencrypt_credentials(session, ring, batch)
            for failure in failures:
                print(failure, file=sys.stderr)
            failed += len(failures)
            if feeds or failures:
                print(
                    f"data connection credentials: {feeds} re-encrypted, {len(failures)} failed",
                    flush=True,
                )
    finally:
        await ctx.aclose()
    print(f"rotate-keys: {done} re-encrypted under {ring.primary_id}, {failed} failed")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="execution-service")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the API (and the workers unless disabled)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate on start")
    sub.add_parser("worker", help="run the background workers only")
    mig = sub.add_parser("migrate", help="upgrade the database schema (or downgrade)")
    mig.add_argument("--downgrade", metavar="REVISION", help="e.g. base")
    keys = sub.add_parser("api-keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create")
    create.add_argument("--name", required=True)
    create.add_argument("--role", choices=[r.value for r in Role], required=True)
    create.add_argument("--user-id", type=int)
    keys_sub.add_parser("list")
    revoke = keys_sub.add_parser("revoke")
    revoke.add_argument("id", type=int)
    rotate = sub.add_parser("rotate-keys", help="re-encrypt every credential under the primary key")
    rotate.add_argument("--new-key", action="store_true", help="generate a new primary key first")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    observability.configure_logging(settings)
    try:
        if args.command == "serve":
            return _serve(settings, args)
        if args.command == "worker":
            return asyncio.run(_worker(settings))
        if args.command == "migrate":
            if args.downgrade:
                migrate.downgrade(settings.database_url, args.downgrade)
            else:
                migrate.upgrade(settings.database_url)
            return 0
        if args.command == "api-keys":
            return asyncio.run(_api_keys(settings, args))
        return asyncio.run(_rotate_keys(settings, args.new_key))
    except KeyRingError as exc:
        print(f"execution-service: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
