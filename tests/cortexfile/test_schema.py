"""The committed JSON Schema matches the code; every key is documented; examples and recipes validate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.cortexfile import recipes
from menlo_cortex.cortexfile.loader import load
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.cortexfile.schema_doc import schema_document
from menlo_cortex.cortexfile.table import settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(ROOT.glob("examples/*/Cortexfile.yaml"))
ROADMAP_FLAGS = [
    "--host",
    "--port",
    "--hf-token",
    "--cors",
    "--origins",
    "--logspath",
    "--logsllama",
    "--logsonnx",
    "--datapath",
    "--loglines",
    "--gh-agent",
    "--gh-token",
    "--proxy-url",
    "--verify-proxy",
    "--verify-proxy-host",
    "--proxy-username",
    "--proxy-password",
    "--no-proxy",
    "--verify-ssl-peer",
    "--verify-ssl-host",
    "--ssl-cert-path",
    "--ssl-key-path",
    "--loglevel",
]


def test_committed_schema_has_not_drifted() -> None:
    committed = json.loads((ROOT / "cortexfile.schema.json").read_text())
    assert committed == schema_document(), "run: cortex schema > cortexfile.schema.json"


def _properties(node: Any, defs: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, prop in node.get("properties", {}).items():
        found.append((name, prop))
        ref = prop.get("$ref") or next((a.get("$ref") for a in prop.get("anyOf", []) if "$ref" in a), None)
        if ref is None and prop.get("type") == "array":
            ref = prop["items"].get("$ref")
        if ref:
            found += _properties(defs[ref.split("/")[-1]], defs)
    return found


def test_every_key_has_a_description() -> None:
    document = schema_document()
    undocumented = [name for name, prop in _properties(document, document["$defs"]) if not prop.get("description")]
    assert undocumented == []


def test_every_roadmap_flag_is_derived_from_the_schema() -> None:
    flags = [s.flag for s in settings() if s.flag]
    assert sorted(flags) == sorted(ROADMAP_FLAGS)


def test_env_var_names_follow_the_contract() -> None:
    by_key = {s.key: s.env_var for s in settings()}
    assert by_key["server.port"] == "CORTEX_SERVER__PORT"
    assert by_key["network.huggingface.token"] == "CORTEX_NETWORK__HUGGINGFACE__TOKEN"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_validates_and_carries_the_schema_line(example: Path) -> None:
    assert example.read_text().startswith("# yaml-language-server: $schema=../../cortexfile.schema.json\n")
    resolved = load(example)
    assert resolved.warnings == []
    assert resolved.config.models


def test_required_examples_exist() -> None:
    assert {p.parent.name for p in EXAMPLES} >= {"quickstart", "raspberry-pi-5", "cuda-server", "multi-model"}


@pytest.mark.parametrize("name", recipes.names("hardware"))
def test_hardware_recipe_is_a_valid_partial_cortexfile(name: str) -> None:
    recipe = recipes.load("hardware", name, "config")
    config = Cortexfile.model_validate({"version": 1, **recipe.body})
    assert "-march=native" not in " ".join(config.target.llama_cmake_args)
    assert "-DGGML_NATIVE=OFF" in config.target.llama_cmake_args


@pytest.mark.parametrize(
    ("recipe", "jetson", "integrated"),
    [("jetson-orin", True, True), ("jetson-thor", True, True), ("x86-64-cuda13", False, False),
     ("raspberry-pi-5", False, False)],
)  # fmt: skip
def test_a_jetson_recipe_builds_for_a_jetsons_gpu_which_computes_in_the_hosts_memory(
    recipe: str, jetson: bool, integrated: bool
) -> None:
    target = Cortexfile.model_validate({"version": 1, **recipes.load("hardware", recipe, "config").body}).target
    assert (target.jetson, target.integrated_gpu) == (jetson, integrated)
    spark = Cortexfile.model_validate(
        {"version": 1, "target": {"accelerator": "cuda", "cuda_architectures": ["121"], "cuda_version": "13"}}
    ).target
    assert (spark.jetson, spark.integrated_gpu) == (False, True)  # a DGX Spark's GB10: no Jetson, its memory shared


def test_required_hardware_recipes_exist() -> None:
    assert set(recipes.names("hardware")) >= {
        "x86-64-avx2", "x86-64-cuda12", "raspberry-pi-5", "jetson-orin", "jetson-thor", "arm64-generic", "x86-64-vulkan"
    }  # fmt: skip


@pytest.mark.parametrize("name", recipes.names("models"))
def test_model_preset_is_valid(name: str) -> None:
    preset = recipes.load("models", name, "model")
    model = Cortexfile.model_validate({"version": 1, "models": [{"id": "m", **preset.body}]}).models[0]
    assert model.sha256 is not None or model.source.startswith("hf://")  # a remote one is pinned on first download


@pytest.mark.parametrize(
    ("given", "taken"),
    [("auto", "auto"), (True, True), ("on", True), ("1", True), (1, True), ("OFF", False), ("0", False), (0, False)],
)
def test_flash_attention_takes_auto_or_any_boolean_spelling(given: object, taken: object) -> None:
    """As the other boolean settings do: an env var's `1`, YAML 1.1's `on` (parsed as text by YAML 1.2)."""
    config = Cortexfile.model_validate({"version": 1, "engines": {"llama_cpp": {"flash_attention": given}}})
    assert config.engines.llama_cpp.flash_attention == taken
