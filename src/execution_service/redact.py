"""Remove anything secret-shaped from exchange payloads before they are stored or shown."""

from __future__ import annotations

from typing import Any

SECRET_WORDS = ("secret", "password", "passphrase", "signature", "apikey", "api_key", "token")
MAX_DEPTH = 8


def scrub(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        return "..."
    if isinstance(value, dict):
        return {
            str(k): "***" if is_secret_key(str(k)) else scrub(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v, depth + 1) for v in value[:200]]
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


def is_secret_key(key: str) -> bool:
    lowered = key.lower().replace("-", "_")
    return any(word in lowered for word in SECRET_WORDS)
