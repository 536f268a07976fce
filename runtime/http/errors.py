"""Errors in OpenAI's body shape: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from starlette.responses import JSONResponse

from ..models.errors import ModelFailed, ModelsBusy, QueueFull, Refused, Superseded, UnknownModel

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


RETRY_AFTER_S = "1"
# The model layer's refusals as OpenAI errors: (status, code, the parameter at fault, say when to retry).
REFUSALS: dict[type[Refused], tuple[int, str, str | None, bool]] = {
    UnknownModel: (404, "model_not_found", "model", False),
    QueueFull: (429, "queue_full", None, True),
    ModelFailed: (503, "model_unavailable", "model", False),
    Superseded: (503, "model_unavailable", None, False),
    ModelsBusy: (503, "models_busy", None, True),
}


class ApiError(Exception):
    """Raised anywhere in a request; rendered by the app as an OpenAI error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, param=self.param, code=self.code, headers=self.headers)

    @classmethod
    def of(cls, refused: Refused) -> ApiError:
        status, code, param, retry = REFUSALS[type(refused)]
        headers = {"Retry-After": RETRY_AFTER_S} if retry else None
        return cls(status, refused.message, param=param, code=code, headers=headers)


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": _TYPES.get(status, "server_error"), "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)
