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
from menlo_cortex.cortexfile.recipes import RECIPES_DIR
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [p.read_text() for p in sorted(ROOT.glob("examples/*/Cortexfile.yaml"))]
KEYS = [
    "version", "server", "host", "port", "cors", "origins", "enabled", "tls", "cert", "key", "auth", "api_keys",
    "models", "id", "source", "sha256", "preset", "target", "hardware", "distro", "build", "formats", "logs",
    "level", "data", "path", "network", "proxy", "url", "limits", "max_tokens", "engines", "llama_cpp", "<<",
]  # fmt: skip
# Where a diagnostic may point (cortexfile/errors.py `Origin`, printed as is by cli/output.py): a
# 1-based FILE:LINE:COL, `env CORTEX_...` or `flag --...`, then the key and message. A file named
# without a position ("cannot read", "no Cortexfile here") cannot happen here: the file is always
# there. Origins that are no place a user can edit ("default", "format docker default", a recipe
# name without a position, "?") are bugs when they reach a diagnostic, and so is any bare word.
LOCATED = re.compile(
    r"(?:(?P<file>.+?):(?P<line>[1-9][0-9]*):(?P<column>[1-9][0-9]*)|env CORTEX_[A-Z0-9_]+|flag --[a-z0-9-]+)"
    r": (?=.)",
    re.DOTALL,  # the key may be any text, a line break included
)
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
    assert [line for line in shown if not located(line, path, text)] == []


def located(line: str, path: Path, text: str) -> bool:
    """`line` starts at a place LOCATED allows; a file position is in the loaded file (within its
    lines) or in one of the recipes it names."""
    match = LOCATED.match(line)
    if match is None:
        return False
    if match["file"] is None:
        return True
    file = Path(match["file"])
    if file == path:
        return int(match["line"]) <= len(text.splitlines()) + 1
    return file.parent.parent == RECIPES_DIR and file.suffix == ".yaml"


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
