"""Logging: one line per event, human-readable or JSON, carrying what the event is about.

Request ids, connection ids, signal ids and client order ids live in `contextvars`: the request
middleware and the signal execution set them, and every log record made in that context (in any
module, including the tasks it starts, which copy the context) gets them from `ContextFilter`.
`RedactFilter` keeps secrets out of structured extras, and API keys, URL query strings and
secret-named values out of messages and tracebacks, whichever library logged them (httpx logs
every request URL at INFO: a MetaTrader gateway's Connect URL carries the password).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from execution_service.redact import is_secret_key, scrub
from execution_service.settings import Settings

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
connection_id: ContextVar[int | None] = ContextVar("connection_id", default=None)
signal_id: ContextVar[int | None] = ContextVar("signal_id", default=None)
client_order_id: ContextVar[str | None] = ContextVar("client_order_id", default=None)

_CONTEXT: tuple[ContextVar[Any], ...] = (request_id, connection_id, signal_id, client_order_id)
# What every LogRecord has: anything else on a record came in through `extra=`. Uvicorn adds
# `color_message` (the message again, with terminal colours): not a field worth a line.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
_API_KEY = re.compile(r"\b(exs_[A-Za-z0-9]{8}_)[A-Za-z0-9_-]+")
_URL_QUERY = re.compile(r"(https?://[^\s?#'\"]*)\?[^\s#'\"]*")
_USERINFO = re.compile(r"(https?://)[^/\s@'\"]+@")
_SECRET_PAIR = re.compile(
    r"(?i)\b([\w-]*(?:secret|password|passphrase|signature|apikey|api_key|api-key|token)[\w-]*)"
    r"(=|['\"]?\s*:\s*['\"]?)([^\s&'\",;}]+)"
)


def extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class ContextFilter(logging.Filter):
    """Copies the context ids that are set onto the record (an explicit `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for var in _CONTEXT:
            value = var.get()
            if value is not None and not hasattr(record, var.name):
                setattr(record, var.name, value)
        return True


class RedactFilter(logging.Filter):
    """Secret-shaped extras become `***` (nested ones too), and API keys in the message lose
    their secret part. Messages are formatted here, once, so the args cannot smuggle a key."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in extras(record).items():
            setattr(record, key, "***" if is_secret_key(key) else _clean(value))
        try:
            message = record.getMessage()
        except Exception:  # a malformed logging call: the handler reports it, not us
            return True
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Tracebacks carry exception texts, and a client library's can hold a signed URL.
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return True


_REDACT = RedactFilter()


def redact_text(text: str) -> str:
    """API keys lose their secret part; URLs lose their query string and user info (a gateway's
    login, a session token, a signature); `secret=…`, `"apiKey": "…"` pairs lose their value."""
    if "exs_" in text:
        text = _API_KEY.sub(r"\1***", text)
    if "://" in text:
        text = _URL_QUERY.sub(r"\1?***", _USERINFO.sub(r"\1***@", text))
    if "=" in text or ":" in text:
        text = _SECRET_PAIR.sub(r"\1\2***", text)
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, dict | list | tuple):
        return scrub(value)
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context ids, extras, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(extras(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """The development format: the classic line, then `key=value` for context ids and extras."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = " ".join(f"{k}={v}" for k, v in extras(record).items())
        if not fields:
            return text
        head, sep, tail = text.partition("\n")  # fields before a traceback, not after
        return f"{head} {fields}{sep}{tail}"


def handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    out = logging.StreamHandler(stream or sys.stderr)
    out.addFilter(ContextFilter())
    out.addFilter(RedactFilter())
    out.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return out


def configure_logging(settings: Settings) -> None:
    """The root logger's only handler; uvicorn's loggers propagate to it (`log_config=None`)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(settings.effective_log_format))
    root.setLevel(settings.log_level.upper())
    quiet_libraries(root.level)
    redact_every_record()
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def quiet_libraries(level: int) -> None:
    """Libraries that log what no filter can clean: httpx every request's full URL at INFO (a
    webhook URL's path can be its credential, a chat service's hook token), the database drivers
    and SQLAlchemy every statement's parameters at DEBUG/INFO (stored webhook URLs among them).
    Our own code logs each delivery and exchange call without the URL."""
    for name in ("httpx", "httpcore", "aiosqlite", "sqlalchemy.engine", "sqlalchemy.pool"):
        logging.getLogger(name).setLevel(max(logging.WARNING, level))


def redact_every_record() -> None:
    """Messages and tracebacks are redacted when a record is made, before any handler (ours, a
    test's, a library's) sees it. Idempotent."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacts", False):
        return

    def redacted(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        _REDACT.filter(record)
        return record

    redacted.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacted)
