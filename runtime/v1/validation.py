"""Request bodies to request models, every failure a 400 that names the field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import Request

from ..http.errors import ApiError

M = TypeVar("M", bound=BaseModel)


async def parse_body(request: Request, model: type[M]) -> M:
    body = await request.body()
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"The body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise as_api_error(exc) from None


def translated(model: type[M], body: dict[str, Any]) -> M:
    """A body made from another API's request (Anthropic's, the Responses API's), checked as a client's is (caps,
    names): a 400 when the translation breaks one."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        error = as_api_error(exc)
        raise ApiError(400, f"{error.message} (in the chat request this request makes)", param=error.param) from None


def as_api_error(exc: ValidationError) -> ApiError:
    errors = exc.errors(include_url=False)
    first = _most_useful(errors)
    param = dotted(first["loc"])
    if first["type"] == "json_invalid":
        return ApiError(400, f"The body is not valid JSON: {first['msg'].removeprefix('Invalid JSON: ')}.")
    if first["type"] == "model_type" and not first["loc"]:
        return ApiError(400, "The body must be a JSON object.")
    if first["type"] == "extra_forbidden":
        return ApiError(400, f"Unrecognized request argument supplied: {param}", param=param)
    if first["type"] == "missing":
        return ApiError(400, f"Missing required parameter: '{param}'.", param=param)
    return ApiError(400, f"Invalid value for '{param}': {first['msg']}.", param=param, code="invalid_value")


def _most_useful(errors: list[ErrorDetails]) -> ErrorDetails:
    """Unions report one error per member; an unknown or missing field explains the problem best."""
    for kind in ("json_invalid", "extra_forbidden", "missing"):
        for error in errors:
            if error["type"] == kind:
                return error
    # A union member that matched the type but broke a constraint (too long, too big) says more than the others.
    return min(errors, key=lambda error: (error["type"].endswith("_type"), len(error["loc"])))


def dotted(loc: tuple[int | str, ...]) -> str:
    """('messages', 0, 'content') -> 'messages[0].content'; union member names are dropped."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _is_union_tag(part):
            continue
        else:
            text += f".{part}" if text else part
    return text


def _is_union_tag(part: str) -> bool:
    return (
        part in ("str", "int", "float", "bool")
        or part.startswith(("list[", "dict[", "function-", "literal["))
        or part[:1].isupper()
    )
