"""The FastAPI application: routers, problem+json errors, body limit, and the process lifespan."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from execution_service import __version__, observability
from execution_service.analytics.router import router as analytics_router
from execution_service.api_keys.revocations import RevocationListener
from execution_service.api_keys.router import router as api_keys_router
from execution_service.api_keys.service import ensure_bootstrap_key
from execution_service.connections.router import router as connections_router
from execution_service.context import AppContext
from execution_service.crypto import load_key_ring
from execution_service.dashboard.router import router as dashboard_router
from execution_service.errors import AppError
from execution_service.events import service as events_service
from execution_service.events.router import router as events_router
from execution_service.events.stream import StreamControl
from execution_service.health.router import router as health_router
from execution_service.market_data.router import router as market_data_router
from execution_service.middleware import HEADER, RequestObservability
from execution_service.openapi import install as install_openapi, operation_id
from execution_service.orders.router import (
    close_all_router,
    position_router as position_orders_router,
    router as logs_router,
)
from execution_service.positions.router import router as positions_router
from execution_service.presets.router import router as presets_router
from execution_service.schemas import API_PROBLEMS
from execution_service.settings import Settings, get_settings
from execution_service.signals.router import router as signals_router
from execution_service.webhooks.router import router as webhooks_router

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"https://execution-service.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse(
        exc.problem(), status_code=exc.status, media_type=PROBLEM, headers=exc.headers
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # loc and msg only: the rejected input is never echoed (it may be a credential).
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
    return problem(422, "validation_error", "Unprocessable request", detail, errors=errors)


def _allowed_methods(request: Request) -> str:
    """Every method the API documents at this path (Starlette names only the first route's)."""
    path = request.url.path
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\{[^/}]+\}", "[^/]+", template), path):
            methods |= {m.upper() for m in operations if m != "parameters"}
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot even decode (not UTF-8): a malformed body like any
        # other, so the same documented 422 as malformed JSON.
        errors = [{"loc": ["body"], "msg": str(exc.detail)}]
        return problem(
            422, "validation_error", "Unprocessable request", str(exc.detail), errors=errors
        )
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    response = problem(exc.status_code, code, str(exc.detail), str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    if exc.status_code == 405:
        response.headers["Allow"] = _allowed_methods(request)
    return response


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A value the schema let through but the database refuses (SQLSTATE class 22, e.g. a NUL
    character, which PostgreSQL cannot hold in text) is the caller's: 422. Nothing was written:
    the transaction died with the statement. Anything else is ours: 500."""
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )
    if _transient(exc, str(sqlstate or "")):
        # The database was unreachable, shut down, out of connections, or chose this transaction
        # as a deadlock's victim: nothing of it was committed, and the same request may succeed
        # in a moment (a signal with an external_id is answered from what was stored).
        log.warning("database unavailable: sqlstate %s (%s)", sqlstate, type(exc).__name__)
        response = problem(
            503,
            "database_unavailable",
            "Service unavailable",
            "the database could not complete the request; retry shortly",
        )
        response.headers["Retry-After"] = "1"
        rid = observability.request_id.get()
        if rid is not None:
            response.headers[HEADER] = rid
        return response
    if not str(sqlstate or "").startswith("22"):
        return await _unhandled(request, exc)
    log.warning("database refused a value: sqlstate %s", sqlstate)
    detail = "a value contains characters or a form the database does not accept"
    return problem(
        422,
        "validation_error",
        "Unprocessable request",
        detail,
        errors=[{"loc": [], "msg": detail}],
    )


# SQLSTATE classes of a failure that is the database's state, not the request: connection
# exceptions, transaction rollbacks (serialization failure, deadlock), insufficient resources
# (too many connections), operator intervention (shutdown).
TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57")


def _transient(exc: Exception, sqlstate: str) -> bool:
    invalidated = isinstance(exc, DBAPIError) and exc.connection_invalidated
    return invalidated or sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES


async def _integrity_error(_: Request, exc: Exception) -> JSONResponse:
    log.warning("integrity error: %s", type(exc).__name__)
    return problem(409, "conflict", "Conflict", "the request conflicts with the current state")


async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    response = problem(500, "internal_error", "Internal error", "an unexpected error occurred")
    # Starlette answers a 500 outside every middleware: the request id is added here instead.
    rid = observability.request_id.get()
    if rid is not None:
        response.headers[HEADER] = rid
    return response


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413 before any handler parses them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope.get("headers") or () if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._reject(scope, receive, send)
            return
        # Chunked bodies have no length up front: read them whole, within the limit, then replay.
        body, more = b"", True
        if length is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.max_bytes:
                    await self._reject(scope, receive, send)
                    return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413,
            "payload_too_large",
            "Payload too large",
            f"the body limit is {self.max_bytes} bytes",
        )
        await response(scope, receive, send)


def _answer_errors_as_problems(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unhandled)


def create_app(settings: Settings | None = None, *, ctx: AppContext | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = ctx or AppContext.create(settings, load_key_ring(settings))
        app.state.ctx = context
        events_service.announce_venue_pauses(context)
        async with context.session_factory() as session:
            configured = settings.bootstrap_admin_key
            key = await ensure_bootstrap_key(
                session, configured.get_secret_value() if configured else None
            )
        if key:
            # Printed, not logged: the one place an operator sees this key.
            print(f"Bootstrap admin API key (shown once): {key}", file=sys.stderr, flush=True)
        revocations = RevocationListener(context.engine)
        revocations.start()
        app.state.revocations = revocations
        runner = None
        if settings.workers_enabled:
            from execution_service.workers.runner import WorkerRunner

            runner = WorkerRunner(context)
            await runner.start()
        try:
            yield
        finally:
            app.state.streams.close()  # event streams still open end at their next poll
            await revocations.stop()
            if runner is not None:
                await runner.stop()
            if ctx is None:
                await context.aclose()

    app = FastAPI(
        title="execution-service",
        version=__version__,
        description="Executes trading signals on exchange and broker accounts.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    install_openapi(app)
    _answer_errors_as_problems(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestObservability)  # outermost: a 413 gets its request id too

    app.state.streams = StreamControl()
    app.include_router(health_router)
    app.include_router(dashboard_router)
    for router in (
        api_keys_router,
        presets_router,
        market_data_router,
        connections_router,
        signals_router,
        logs_router,
        positions_router,
        position_orders_router,
        close_all_router,
        analytics_router,
        webhooks_router,
        events_router,
    ):
        app.include_router(router, prefix="/api/v1", responses=API_PROBLEMS)
    return app
