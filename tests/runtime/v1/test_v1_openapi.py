"""The OpenAPI document matches the routes and the request models, so a fuzzer driven by it finds real bugs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from menlo_cortex.runtime.models.manager import ModelManager
from menlo_cortex.runtime.ops.metrics import standard_metrics
from menlo_cortex.runtime.v1.offload import Offload
from menlo_cortex.runtime.v1.openapi import openapi_document
from menlo_cortex.runtime.v1.responses_routes import responses_routes
from menlo_cortex.runtime.v1.routes import v1_routes
from starlette.routing import Route

from tests.runtime.harness import make_config, model_entry


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def test_document_is_openapi_3_1_with_every_reference_resolved() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    schemas = document["components"]["schemas"]
    for ref in refs(document):
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


def test_document_lists_exactly_the_routes(tmp_path: Path) -> None:
    manager = ModelManager(
        make_config([model_entry(tmp_path / "m.gguf")]), metrics=standard_metrics(), locate=lambda model: tmp_path
    )
    served = {
        (route.path.replace(":path}", "}"), method.lower())
        for route in [*v1_routes(manager), *responses_routes(manager, Offload(), None)]
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {(path, method) for path, item in openapi_document()["paths"].items() for method in item}
    assert documented == served


def test_request_bodies_refuse_unknown_fields_and_describe_errors() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"):
        operation = document["paths"][path]["post"]
        name = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        assert schemas[name]["additionalProperties"] is False
        assert {"400", "404", "429", "503"} <= set(operation["responses"])
    chat = schemas["ChatCompletionRequest"]["properties"]
    assert {"max_completion_tokens", "stream_options", "tools", "tool_choice", "n", "user"} <= set(chat)


def test_the_document_says_a_named_tool_choice_needs_tools() -> None:
    """What the server refuses (a named tool_choice without tools), the document refuses too: a client that
    validates against it, or a fuzzer, never sends it expecting an answer."""
    document = openapi_document()
    named = {"type": "function", "function": {"name": "f"}}
    tool = {"type": "function", "function": {"name": "f"}}
    chat = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
    response = {"model": "m", "input": "Hi"}
    for name, body, choice, tools in (
        ("ChatCompletionRequest", chat, named, [tool]),
        ("ResponseRequest", response, {"type": "function", "name": "f"}, [{"type": "function", "name": "f"}]),
    ):
        validator = Draft202012Validator({"$ref": f"#/components/schemas/{name}", **document})
        assert validator.is_valid({**body, "tool_choice": "auto"})
        assert not validator.is_valid({**body, "tool_choice": choice})
        assert not validator.is_valid({**body, "tool_choice": choice, "tools": []})
        assert validator.is_valid({**body, "tool_choice": choice, "tools": tools})
