"""Property-based: whatever the file holds, the loader answers with a config or located diagnostics."""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.loader import load
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [p.read_text() for p in sorted(ROOT.glob("examples/*/Cortexfile.yaml"))]
KEYS = [
    "version", "server", "host", "port", "cors", "origins", "enabled", "tls", "cert", "key", "auth", "api_keys",
    "models", "id", "source", "sha256", "preset", "target", "hardware", "distro", "build", "formats", "logs",
    "level", "data", "path", "network", "proxy", "url", "limits", "max_tokens", "engines", "llama_cpp", "<<",
]  # fmt: skip
LOCATED = re.compile(r"^(\S+:\d+:\d+|env \S+|flag \S+|\S+): ")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
    st.sampled_from(["127.0.0.1", "0.0.0.0", "${env:X}", "${file:k}", "hf://a/b/c.gguf", "gemma3-270m-q4km"]),
)  # fmt: skip
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=5),
    ),
    max_leaves=25,
)


def check(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "Cortexfile.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load(path, cwd=Path(folder))
        except ConfigError as exc:
            shown = [str(diagnostic) for diagnostic in exc.diagnostics]
        else:
            return
    assert shown
    assert all(LOCATED.match(line) for line in shown), shown


def dump(data: Any) -> str:
    out = io.StringIO()
    YAML().dump(data, out)
    return out.getvalue()


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    check(text)


@FUZZ
@given(documents)
def test_arbitrary_yaml_documents(data: Any) -> None:
    check(dump(data))


@FUZZ
@given(st.sampled_from(EXAMPLES), st.data())
def test_mutated_examples(example: str, data: st.DataObject) -> None:
    text = example
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 5))
        insert = data.draw(st.sampled_from(["", " ", "\n", ":", "- ", "{", "[", "\t", "'", "0", "x:", "&a ", "*a"]))
        text = text[:at] + insert + text[at + cut :]
    check(text)


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), documents, max_size=6))
def test_arbitrary_sections_under_version_1(data: dict[str, Any]) -> None:
    check(dump({"version": 1, **data}))
