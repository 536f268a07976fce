"""A build for `--platform`: the Cortexfile's target as that platform's, checked again as the schema checks it."""

from __future__ import annotations

import dataclasses

from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin, dotted
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.cortexfile.validate import error_message
from pydantic import ValidationError
from pydantic_core import ErrorDetails


def with_platform(resolved: Resolved, platform: str | None) -> Resolved:
    """`resolved` built for `platform` (`--platform`) instead of its target.architecture; ConfigError, located at
    the flag, where the target's other settings do not hold for that architecture (a Jetson's GPU for amd64)."""
    if platform is None:
        return resolved
    target = resolved.config.target
    try:  # the schema's own validator reads `linux/arm64`, `aarch64`, `x86_64`...
        target = target.model_validate({**target.model_dump(), "architecture": platform})
    except ValidationError as exc:
        raise ConfigError([_at_the_flag(error) for error in exc.errors(include_url=False)]) from None
    return dataclasses.replace(resolved, config=resolved.config.model_copy(update={"target": target}))


def _at_the_flag(error: ErrorDetails) -> Diagnostic:
    key = dotted(("target", *(part for part in error["loc"] if isinstance(part, str))))
    return Diagnostic(Origin("flag --platform"), key, error_message(error))
