"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS): aim part of the generated requests at the served
model, so the fuzzer reaches generation and not only the unknown-model 404."""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

SERVED_MODEL = os.environ.get("CORTEX_FUZZ_MODEL", "gemma")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    body = case.body
    # One body in three, by its serialized length: deterministic for a seed, and both kinds stay in the run.
    if isinstance(body, dict) and "model" in body and len(json.dumps(body, default=str)) % 3 == 0:
        body["model"] = SERVED_MODEL
    if case.path_parameters and "model_id" in case.path_parameters and len(str(case.path_parameters)) % 2 == 0:
        case.path_parameters["model_id"] = SERVED_MODEL
