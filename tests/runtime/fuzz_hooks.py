"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS): aim part of the generated requests at the served
model (the embedding model for /v1/embeddings), so the fuzzer reaches generation and not only the
unknown-model 404."""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

SERVED_MODEL = os.environ.get("CORTEX_FUZZ_MODEL", "gemma")
EMBEDDING_MODEL = os.environ.get("CORTEX_FUZZ_EMBEDDING_MODEL", SERVED_MODEL)  # one declared `embeddings: true`


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    body = case.body
    # One body in three, by its serialized length: deterministic for a seed, and both kinds stay in the run.
    if isinstance(body, dict) and "model" in body and len(json.dumps(body, default=str)) % 3 == 0:
        body["model"] = SERVED_MODEL
    if isinstance(body, dict):  # whatever chose a served id (a hook above, or the fuzzer reading /v1/models)
        embeds = case.operation.path == "/v1/embeddings"
        if body.get("model") in (SERVED_MODEL, EMBEDDING_MODEL):
            body["model"] = EMBEDDING_MODEL if embeds else SERVED_MODEL
    if isinstance(body, dict):
        _refer_to_what_exists(body)
    if case.path_parameters and "model_id" in case.path_parameters and len(str(case.path_parameters)) % 2 == 0:
        case.path_parameters["model_id"] = SERVED_MODEL


def _refer_to_what_exists(body: dict[str, Any]) -> None:
    """What a schema cannot say, as the served model above: a forced function is one of the request's `tools`,
    a previous response is one this key stored,
    a token id (biased, or in a prompt) is in the model's vocabulary, `dimensions` is the model's own, and
    `suffix` (fill in the middle) is sent only to a model with FIM tokens, which the test model has not."""
    body.pop("previous_response_id", None)  # a stored response of this key: none exists for a random id
    if isinstance(body.get("tool_choice"), dict):
        # A forced call sampled at temperature 1 can lead the model where the grammar's next token ranks too low
        # to be found in a step's time (the grammar budget, a server limit): a 400 in about 1 in 4 calls without
        # parameters on the test model. Greedy sampling stays on the model's own path.
        body["temperature"] = 0
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:  # the Responses API's
        body["tools"] = [*(body.get("tools") or []), {"type": "function", "name": choice["name"]}]
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = str(choice["function"].get("name") or "f")
        choice["function"]["name"] = name
        body["tools"] = [*(body.get("tools") or []), {"type": "function", "function": {"name": name}}]
    legacy = body.get("function_call")
    if isinstance(legacy, dict):
        legacy["name"] = str(legacy.get("name") or "f")
        body["functions"] = [*(body.get("functions") or []), {"name": legacy["name"]}]
    bias = body.get("logit_bias")
    if isinstance(bias, dict):  # the schema says integer ids; the model's vocabulary says which exist
        body["logit_bias"] = {str(int(token) % 256): value for token, value in bias.items() if token.isdigit()}
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        body["prompt"] = [_in_vocabulary(item) for item in prompt]
    if body.get("dimensions") is not None:  # the model's own vector size, or none
        body["dimensions"] = None
    if body.get("suffix"):
        body["suffix"] = None


def _in_vocabulary(item: Any) -> Any:
    if isinstance(item, int | float) and not isinstance(item, bool):
        return int(item) % 256
    return [_in_vocabulary(token) for token in item] if isinstance(item, list) else item
