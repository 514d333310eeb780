from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from execution_service.deps import ContextDep, PrincipalDep
from execution_service.enums import EventType
from execution_service.errors import TooManyRequests
from execution_service.events import stream
from execution_service.schemas import problems

router = APIRouter(tags=["events"])

EventId = Annotated[int | None, Header(ge=0, le=2**62, description="resume after this event id")]
After = Annotated[
    int | None, Query(ge=0, le=2**62, description="as Last-Event-ID; 0: from the start")
]
# The body webhooks receive, and each stream event's `data`.
EVENT_JSON: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "created_at", "user_id", "admin_id", "data"],
    "properties": {
        "id": {"type": "integer"},
        "type": {"type": "string", "enum": [t.value for t in EventType]},
        "created_at": {"type": "string", "format": "date-time"},
        "user_id": {"type": ["integer", "null"]},
        "admin_id": {"type": ["integer", "null"]},
        "data": {"type": "object", "description": "ids and key figures; decimals as strings"},
    },
}
# OpenAPI 3.1: an event stream's `schema` describes one event.
SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "server-sent events, one per outbox event, in id order",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["id", "event", "data"],
                    "properties": {
                        "id": {"type": "string", "pattern": "^[0-9]+$"},
                        "event": {"type": "string", "enum": [t.value for t in EventType]},
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": EVENT_JSON,
                        },
                        "retry": {"type": "integer"},
                    },
                }
            }
        },
    }
}


@router.get(
    "/events", response_class=StreamingResponse, responses={**SSE_DOC, **problems(401, 429)}
)
async def stream_events(
    request: Request,
    ctx: ContextDep,
    principal: PrincipalDep,
    last_event_id: EventId = None,
    after: After = None,
) -> StreamingResponse:
    """Server-sent events, in id order: `id: <event id>`, `event: <type>`, `data: <event JSON>`
    (the body webhooks receive). A `user` key sees its own events, admin and service keys all.
    Without `Last-Event-ID` (or `?after=`) the stream starts with the next new event."""
    start = last_event_id if last_event_id is not None else after
    if start is None:
        start = await stream.latest_id(ctx)
    control: stream.StreamControl = request.app.state.streams
    if control.per_key[principal.key_id] >= ctx.settings.sse_streams_per_key:
        raise TooManyRequests(
            f"this key has {ctx.settings.sse_streams_per_key} event streams open "
            "(EXEC_SSE_STREAMS_PER_KEY)",
            retry_after=2,
        )
    return StreamingResponse(
        stream.stream(ctx, principal, control, start),
        media_type="text/event-stream",
        # No caching, and no buffering in proxies (nginx honours X-Accel-Buffering).
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
