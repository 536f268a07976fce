"""The model catalogue: every entry loads with its facts, and a bad entry is a located error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from menlo_cortex.cortexfile import catalogue, recipes
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.starter import model_id

GOOD = """\
description: A test entry.
facts:
  family: qwen2.5
  kind: chat
  parameters: 494032768
  quantization: Q4_K_M
  size_bytes: 491400032
  context_length: 32768
  license: apache-2.0
model:
  source: hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf
  chat_format: chatml
  context_size: 4096
"""


def test_every_entry_loads_with_consistent_facts() -> None:
    entries = catalogue.entries()
    assert [entry.name for entry in entries] == recipes.names("models")
    for entry in entries:
        assert entry.model.context_size <= entry.facts.context_length
        assert entry.facts.quantization in catalogue.QUANTIZATIONS
        assert entry.model.sha256 is None or entry.name == "gemma3-270m-q4km"  # never a hash not computed here
    kinds = {entry.kind for entry in entries}
    assert kinds == set(catalogue.ModelKind)


@pytest.fixture
def recipes_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(recipes.RECIPES_DIR / "hardware", tmp_path / "hardware")
    (tmp_path / "models").mkdir()
    monkeypatch.setattr(recipes, "RECIPES_DIR", tmp_path)
    return tmp_path / "models"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("Q4_K_M", "Q4_KM"), "6:17: facts.quantization: unknown quantisation `Q4_KM` (did you mean Q4_K_M?)"),
        (("kind: chat", "kind: embedding"), "4:9: facts.kind: the model mapping makes it a chat model, the facts"),
        (("context_size: 4096", "context_size: 65536"), "13:17: model.context_size: 65536 is more than the 32768"),
        (("license: apache-2.0", "license: apache-2.0\n  stars: 5"), "10:3: facts.stars: unknown key"),
        (("size_bytes: 491400032", "size_bytes: -1"), "7:15: facts.size_bytes: "),
    ],
)
def test_a_bad_entry_is_a_located_error(recipes_dir: Path, change: tuple[str, str], expected: str) -> None:
    path = recipes_dir / "bad.yaml"
    path.write_text(GOOD.replace(*change), encoding="utf-8")
    (recipes_dir / "good.yaml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        catalogue.entries()
    assert [str(d) for d in raised.value.diagnostics if expected in str(d)], raised.value.diagnostics
    assert all(d.origin.source == str(path) for d in raised.value.diagnostics)


def test_model_ids_drop_the_quantisation() -> None:
    by_name = {entry.name: model_id(entry) for entry in catalogue.entries()}
    assert by_name["qwen2.5-1.5b-instruct-q4km"] == "qwen2.5-1.5b-instruct"
    assert by_name["bge-small-en-v1.5-f16"] == "bge-small-en-v1.5"
    assert by_name["llama3.2-1b-instruct-q8"] == "llama3.2-1b-instruct"
