"""One error base class carrying status and code, rendered as RFC 9457 problem details."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra or {}
        self.headers = headers or {}

    def problem(self) -> dict[str, Any]:
        return {
            "type": f"https://execution-service.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(AppError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class Unprocessable(AppError):
    status = 422
    code = "validation_error"
    title = "Unprocessable request"

    def problem(self) -> dict[str, Any]:
        # Like request validation's 422: clients read `errors` whichever check refused them.
        # The check is about the request as a whole, so `loc` is empty unless a caller says.
        body = super().problem()
        body.setdefault("errors", [{"loc": [], "msg": self.detail}])
        return body


class TooManyRequests(AppError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(
            detail, code=code, headers={"Retry-After": str(max(1, round(retry_after)))}
        )


class BadGateway(AppError):
    """The exchange or gateway behind a connection failed; our side is fine."""

    status = 502
    code = "exchange_error"
    title = "Exchange error"


class ExchangeBusyError(AppError):
    """The venue's request budget has no room now (issue #19): nothing was sent; try again after
    `Retry-After`."""

    status = 503
    code = "exchange_busy"
    title = "Exchange budget exhausted"

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, round(retry_after)))})
