"""Every HTTP request gets a request id (the client's `X-Request-ID` when it looks sane, a new one
otherwise), echoed on the response and set in the log context; Prometheus counts it by route
template; and one access log line records it.

Pure ASGI (no BaseHTTPMiddleware): the body streams through untouched, and the route template is
read from the scope the router fills in, so `/positions/17` counts as `/positions/{position_id}`.
"""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from execution_service import metrics, observability

log = logging.getLogger("execution_service.access")

HEADER = "X-Request-ID"
_SANE = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
# Probes and scrapes arrive every few seconds: their access lines are DEBUG, not INFO.
_QUIET = frozenset({"/health", "/health/ready", "/metrics"})
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or []:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE.match(text) else None
    return None


def route_template(scope: Scope) -> str:
    """The matched route's path template; one fixed label for anything no route matched, so a
    scan of random paths cannot mint new series."""
    if scope.get("route") is None:
        return UNMATCHED
    # FastAPI >= 0.16x keeps included routers nested: `route.path` lacks the include prefix
    # ("/positions/{position_id}"), the effective route context has it in full. Older versions
    # copy routes with the prefix applied, and have no such context.
    effective = (scope.get("fastapi") or {}).get("effective_route_context")
    path = getattr(effective, "path", None) or getattr(scope["route"], "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


@functools.lru_cache(maxsize=4096)  # closed vocabularies: a few hundred series at most
def _series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    """The labelled children, looked up once instead of per request (`labels` takes a lock)."""
    return (
        metrics.HTTP_REQUESTS.labels(method, route, str(status)),
        metrics.HTTP_DURATION.labels(method, route),
    )


class RequestObservability:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = incoming_request_id(scope) or uuid.uuid4().hex
        # Not reset on the way out: each request runs in its own task, and the app's 500 handler
        # runs outside this middleware and still needs the id (log line and response header).
        observability.request_id.set(rid)
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                self._record(scope, status, time.perf_counter() - started)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Recorded before the last byte leaves, not after the app returns (dependency
                # cleanup runs after the response): a client that has its answer sees it counted.
                record()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            record()  # an app that raised, or a client that went away mid-body

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        route = route_template(scope)
        requests, duration = _series(method, route, status)
        requests.inc()
        duration.observe(seconds)
        level = logging.DEBUG if route in _QUIET else logging.INFO
        if log.isEnabledFor(level):
            log.log(
                level,
                "%s %s %s",
                method,
                scope["path"],
                status,
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
