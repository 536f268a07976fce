"""bench/gguf_synth.py: a model with the test model's header and tensors and synthetic weights (what the GPU check
builds on its machine, where the real weights cannot travel) loads, and writes as many tokens as asked."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import gguf
import pytest

TOOL = Path(__file__).resolve().parents[2] / "bench" / "gguf_synth.py"
GENERATE = """
import sys
import numpy as np
from menlo_cortex.runtime.models.backends import load_backends
load_backends()
import llama_cpp
model = llama_cpp.Llama(sys.argv[1], n_ctx=128, n_threads=2, verbose=False)
out = model.create_completion("Once upon a time", max_tokens=32, temperature=0)
print(out["usage"]["completion_tokens"], out["choices"][0]["finish_reason"],
      bool(np.isfinite(model.scores[model.n_tokens - 1]).all()))
"""


def tool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(TOOL), *map(str, args)]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(300)
def test_a_synthetic_model_has_the_real_ones_header_and_tensors_and_writes_every_token(
    test_model_path: Path, tmp_path: Path
) -> None:
    skeleton, synthetic = tmp_path / "skeleton", tmp_path / "synthetic.gguf"
    assert tool("skeleton", test_model_path, skeleton).returncode == 0
    assert sum(path.stat().st_size for path in skeleton.iterdir()) < 16 << 20  # travels within a device call
    made = tool("synth", skeleton, synthetic)
    assert made.returncode == 0, made.stderr
    assert not list(tmp_path.glob(".*partial"))

    real, synth = gguf.GGUFReader(test_model_path), gguf.GGUFReader(synthetic)
    header = (skeleton / "header.gguf").read_bytes()
    assert synthetic.read_bytes()[: len(header)] == header == test_model_path.read_bytes()[: real.data_offset]
    assert synthetic.stat().st_size == test_model_path.stat().st_size

    def table(reader: gguf.GGUFReader) -> list[tuple[str, int, list[int], int]]:
        return [(t.name, int(t.tensor_type), [int(n) for n in t.shape], int(t.data_offset)) for t in reader.tensors]

    assert table(synth) == table(real)
    embeddings = next(t for t in synth.tensors if t.name == "token_embd.weight")
    assert embeddings.data.tobytes() != next(t for t in real.tensors if t.name == embeddings.name).data.tobytes()

    command = [sys.executable, "-c", GENERATE, str(synthetic)]
    generated = subprocess.run(command, check=False, capture_output=True, text=True, timeout=240)
    assert generated.returncode == 0, generated.stderr[-2000:]
    assert generated.stdout.split() == ["32", "length", "True"]  # finite logits; no early end token


def write_layout(folder: Path, tensors: list[dict[str, object]], size: int = 4096, header: bytes = b"GGUF") -> None:
    folder.mkdir()
    (folder / "header.gguf").write_bytes(header)
    layout = {"data_offset": len(header), "size": len(header) + size, "tensors": tensors,
              "header_sha256": hashlib.sha256(header).hexdigest()}  # fmt: skip
    (folder / "layout.json").write_text(json.dumps(layout))


def tensor(kind: int, shape: list[object], offset: object = 0, size: object = 0) -> dict[str, object]:
    return {"name": "w", "type": kind, "shape": shape, "offset": offset, "bytes": size}


def test_a_small_layout_makes_its_model(tmp_path: Path) -> None:
    """Q8_0: 34 bytes a block of 32 values; then F32 norms (ones), aligned to 32 bytes; then the file's padding."""
    write_layout(tmp_path / "skeleton", [tensor(8, [64, 2], 0, 136), tensor(0, [16], 160, 64)], size=256)
    made = tool("synth", tmp_path / "skeleton", tmp_path / "out.gguf")
    assert made.returncode == 0, made.stderr
    data = (tmp_path / "out.gguf").read_bytes()
    assert len(data) == 4 + 256
    assert data[4 + 136 : 4 + 160] == bytes(24)
    assert data[4 + 160 : 4 + 224] == b"\x00\x00\x80\x3f" * 16  # 1.0f


def test_a_type_it_cannot_make_is_refused_by_tensor_and_type(tmp_path: Path) -> None:
    write_layout(tmp_path / "skeleton", [tensor(20, [32], 0, 18)])
    refused = tool("synth", tmp_path / "skeleton", tmp_path / "out.gguf")
    assert refused.returncode == 2
    assert "tensor 'w' has GGML type 20: no synthetic form for it" in refused.stderr
    assert not list(tmp_path.glob("*.gguf"))
    assert not list(tmp_path.glob(".*"))


@pytest.mark.parametrize(
    ("tensors", "size", "said"),
    [
        ([tensor(8, [64], 0, 35)], 4096, "tensor 'w': 35 bytes of shape [64] at 0 do not fit"),
        ([tensor(8, [64], 0, -34)], 4096, "tensor 'w': -34 bytes"),
        ([tensor(8, [64], 0.5, 68)], 4096, "tensor 'w': 68 bytes of shape [64] at 0.5"),
        ([tensor(8, [64], 0, 68.0)], 4096, "tensor 'w': 68.0 bytes"),
        ([tensor(8, [64, -1], 0, 68)], 4096, "tensor 'w': 68 bytes of shape [64, -1]"),
        ([tensor(8, [64], 0, 68), tensor(0, [8], 34, 32)], 4096, "tensor 'w': 32 bytes of shape [8] at 34"),
        ([tensor(8, [64], 10_000, 68)], 10_100, "at 10000 do not fit"),  # a gap no alignment needs
        ([tensor(0, [2048], 0, 8192)], 4096, "the tensors end at 8196, not where the model's 4100 bytes do"),
        ([tensor(0, [8], 0, 32)], 1 << 40, "the tensors end at 36, not where"),
        ([tensor(0, [1 << 40], 0, 4 << 40)], 4 << 40, "bytes do not fit in what is free there"),
        ([tensor(True, [8], 0, 16)], 4096, "has GGML type True: no synthetic form"),
        ([{"name": "w", "type": 0}], 4096, "not a skeleton's layout (KeyError"),
    ],
)
def test_a_layout_that_does_not_add_up_is_refused(
    tmp_path: Path, tensors: list[dict[str, object]], size: int, said: str
) -> None:
    write_layout(tmp_path / "skeleton", tensors, size)
    refused = tool("synth", tmp_path / "skeleton", tmp_path / "out.gguf")
    assert (refused.returncode, said in refused.stderr) == (2, True), refused.stderr
    assert not (tmp_path / "out.gguf").exists()


def test_a_header_its_layout_was_not_made_from_is_refused(tmp_path: Path) -> None:
    write_layout(tmp_path / "skeleton", [tensor(0, [8], 0, 32)])
    (tmp_path / "skeleton" / "header.gguf").write_bytes(b"GGUF-another")
    refused = tool("synth", tmp_path / "skeleton", tmp_path / "out.gguf")
    assert (refused.returncode, "not the header" in refused.stderr) == (2, True), refused.stderr


def test_a_file_that_is_not_a_model_makes_no_skeleton(tmp_path: Path) -> None:
    (tmp_path / "notes.gguf").write_text("not a model")
    refused = tool("skeleton", tmp_path / "notes.gguf", tmp_path / "skeleton")
    assert (refused.returncode, "notes.gguf: not a GGUF model" in refused.stderr) == (2, True), refused.stderr
    assert not (tmp_path / "skeleton").exists()
