"""The OpenAPI document, shaped for client generators: stable operation ids and error responses
documented as the `application/problem+json` the app really sends."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from execution_service.schemas import PROBLEM_MEDIA_TYPE

_PROBLEM_REFS = ("#/components/schemas/Problem", "#/components/schemas/ValidationProblem")


def operation_id(route: APIRoute) -> str:
    """`<tag>_<function name>`, e.g. `presets_create_preset`: readable, unique (function names
    are unique per router), and unchanged by path or method edits, so generated clients keep
    their method names."""
    tag = str(route.tags[0]) if route.tags else "default"
    return f"{tag.replace('-', '_')}_{route.name}"


def _problems_as_problem_json(schema: dict[str, Any]) -> None:
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                body = content.get("application/json", {}).get("schema", {})
                if body.get("$ref") in _PROBLEM_REFS:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")


def install(app: FastAPI) -> None:
    """Replace `app.openapi` with one that post-processes FastAPI's document (once, cached)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _problems_as_problem_json(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
