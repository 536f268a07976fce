"""Turn schema errors and semantic problems into located diagnostics; collect them all."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import Diagnostic, Origin, Path_, Severity, dotted
from .layers import Merged
from .schema import Cortexfile
from .table import setting_at

_SKIPPED_TYPES = {"is_instance_of"}  # the Secret-object branch of a union: noise for users


def schema_diagnostics(exc: ValidationError, merged: Merged) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for error in exc.errors(include_url=False):
        if error["type"] in _SKIPPED_TYPES:
            continue
        diagnostic = _from_pydantic(error, merged)
        if diagnostic not in found:
            found.append(diagnostic)
    return found


def _from_pydantic(error: Any, merged: Merged) -> Diagnostic:
    path = _data_path(error["loc"], merged.data)
    kind = error["type"]
    if kind == "extra_forbidden":
        return Diagnostic(origin_of_value(merged, path, key=True), dotted(path), "unknown key", _close_key(path))
    if kind == "missing":
        missing = next((p for p in error["loc"][len(path) :] if isinstance(p, str)), "?")
        message = f"`{missing}` is required"
        return Diagnostic(origin_of_value(merged, path), dotted((*path, missing)), message)
    return Diagnostic(origin_of_value(merged, path), dotted(path), error_message(error))


def _data_path(loc: tuple[Any, ...], data: Any) -> Path_:
    """Keep the part of a pydantic location that exists in the data (drops union branch tags)."""
    path: list[str | int] = []
    for part in loc:
        if (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and part < len(data)
        ):
            data = data[part]
        else:
            continue
        path.append(part)
    return tuple(path)


def error_message(error: Any) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:] if message[:2] != message[:2].upper() else message


def _close_key(path: Path_) -> str | None:
    model = _model_at(path[:-1])
    if model is None or not isinstance(path[-1], str):
        return None
    close = difflib.get_close_matches(path[-1], list(model.model_fields), n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    return f"known keys here: {', '.join(model.model_fields)}"


def _model_at(path: Path_) -> type[BaseModel] | None:
    model: type[BaseModel] = Cortexfile
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        inner = _section_type(field.annotation) if field else None
        if inner is None:
            return None
        model = inner
    return model


def _section_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def origin_of_value(merged: Merged, path: Path_, key: bool = False) -> Origin:
    return merged.origin_of(path, key=key) or Origin("default")


def semantic_diagnostics(merged: Merged) -> list[Diagnostic]:
    """Rules across fields. They read the raw merged data, so they run even when the schema
    found errors elsewhere and every problem is reported in one go."""

    def at(path: Path_, message: str, hint: str | None = None) -> Diagnostic:
        return Diagnostic(origin_of_value(merged, path), dotted(path), message, hint)

    data = merged.data
    return [at(*problem) for problem in [*_tls_problems(data), *_model_problems(data)]]


def _tls_problems(data: dict[str, Any]) -> Iterator[tuple[Path_, str, str | None]]:
    tls = value_at(data, ("server", "tls"))
    if not isinstance(tls, dict):
        return
    has_cert, has_key = tls.get("cert") is not None, tls.get("key") is not None
    if has_cert != has_key:
        given, missing = ("cert", "key") if has_cert else ("key", "cert")
        yield ("server", "tls", given), f"a TLS {given} needs a {missing} too", f"set server.tls.{missing}"


def _model_problems(data: dict[str, Any]) -> Iterator[tuple[Path_, str, str | None]]:
    models = data.get("models")
    seen: dict[str, int] = {}
    for index, model in enumerate(models if isinstance(models, list) else []):
        if not isinstance(model, dict):
            continue
        model_id = model.get("id")
        if isinstance(model_id, str) and model_id in seen:
            yield ("models", index, "id"), f"model id `{model_id}` is already used by models[{seen[model_id]}]", None
        if isinstance(model_id, str):
            seen.setdefault(model_id, index)
        if model.get("chat_format") and model.get("chat_template"):
            yield ("models", index, "chat_template"), "set `chat_format` or `chat_template`, not both", None


def literal_secret_warnings(merged: Merged) -> list[Diagnostic]:
    """A literal secret in a file ends up in git; say which references to use instead."""
    found = []
    for path, origin in merged.values.items():
        setting = setting_at(path)
        value = value_at(merged.data, path)
        if setting and setting.is_secret and origin.is_file and isinstance(value, str) and not value.startswith("${"):
            message = "literal secret in the file; use ${env:NAME} or ${file:PATH}"
            found.append(Diagnostic(origin, dotted(path), message, severity=Severity.warning))
    return found


def value_at(data: Any, path: Path_) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
