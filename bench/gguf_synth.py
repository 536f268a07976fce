"""A model with another model's shape and synthetic weights, for speed measurements where the real weights cannot
travel (the GPU machine takes 64 MiB a call; the test model is 253 MB).

    .venv/bin/python bench/gguf_synth.py skeleton MODEL.gguf FOLDER   # here: the header and its layout (~6.5 MB)
    python3 bench/gguf_synth.py synth FOLDER OUT.gguf [--seed 0]      # anywhere with numpy: the whole model

The skeleton is the model's own header, byte for byte (architecture, hyperparameters, tokenizer, every tensor's
name, shape, type and offset), and `layout.json`, the tensor table read from it by llama.cpp's gguf-py. `synth`
writes the header, then each tensor's bytes: quantized blocks of random quants whose scales (the blocks' float16
fields) are set so weights come out a few hundredths, norm weights 1, other float tensors small normal values.

How honest that is for speed: llama.cpp's kernels do the same work for the same shapes and types whatever the
values (no sparsity, no early exit), so decode and prompt processing cost what the real model's cost. What
differs: the tokens (random weights write gibberish), hence detokenizing and stop-string checks, both tiny; and
the end of generation: the end token is one of 262,144 here, so answers run to their max_tokens.

Only numpy is needed by `synth` (the GPU machine has it, not gguf-py). The result is written beside the target
and renamed into place: never half a model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HEADER, LAYOUT = "header.gguf", "layout.json"
CHUNK = 64 << 20  # bytes of random quants made at a time


@dataclass(frozen=True)
class Blocks:
    """A quantized type's block: its bytes, and where its float16 fields are with the value each gets."""

    size: int
    halves: tuple[tuple[int, float], ...]

    @property
    def values(self) -> int:
        return 256 if self.size in K_QUANT_SIZES else 32


# ggml's block layouts (ggml-common.h), by GGML type id. Scales are chosen so that |weight| is a few hundredths.
BLOCKS = {
    2: Blocks(18, ((0, 0.005),)),  # Q4_0: d, 16 bytes of 4-bit quants (q - 8)
    3: Blocks(20, ((0, 0.005), (2, -0.04))),  # Q4_1: d, m
    6: Blocks(22, ((0, 0.003),)),  # Q5_0: d, high bits, 4-bit quants (q - 16)
    7: Blocks(24, ((0, 0.003), (2, -0.05))),  # Q5_1: d, m
    8: Blocks(34, ((0, 0.0004),)),  # Q8_0: d, 32 int8
    10: Blocks(84, ((80, 0.002), (82, 0.002))),  # Q2_K: scales, quants, d, dmin
    11: Blocks(110, ((108, 0.0003),)),  # Q3_K: high mask, quants, scales, d
    12: Blocks(144, ((0, 0.00005), (2, 0.0001))),  # Q4_K: d, dmin, 6-bit scales and mins, quants
    13: Blocks(176, ((0, 0.00003), (2, 0.0001))),  # Q5_K: d, dmin, scales, high bits, quants
    14: Blocks(210, ((208, 0.00001),)),  # Q6_K: low bits, high bits, int8 scales, d
}
K_QUANT_SIZES = {84, 110, 144, 176, 210}  # a block of 256 values (super-blocks); the others hold 32
FLOATS = {0: np.float32, 1: np.float16}  # F32, F16
MAX_GAP = 4096  # alignment padding between tensors (32 bytes in llama.cpp's files): anything more is a bad layout
NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 10: "Q2_K", 11: "Q3_K",
         12: "Q4_K", 13: "Q5_K", 14: "Q6_K"}  # fmt: skip


class SynthError(Exception):
    """What is wrong with the input, said so that its owner can fix it."""


def skeleton(model: Path, folder: Path) -> dict[str, Any]:
    """Write `model`'s header and its tensor table into `folder`; the table."""
    from gguf import GGUFReader  # llama.cpp's gguf-py: only where the skeleton is made

    try:
        reader = GGUFReader(model)
    except (OSError, ValueError) as exc:
        raise SynthError(f"{model}: not a GGUF model ({exc})") from exc
    tensors = [{"name": tensor.name, "type": int(tensor.tensor_type), "shape": [int(n) for n in tensor.shape],
                "offset": int(tensor.data_offset) - reader.data_offset, "bytes": int(tensor.n_bytes)}
               for tensor in reader.tensors]  # fmt: skip
    with model.open("rb") as source:
        header = source.read(reader.data_offset)
    layout = {"data_offset": int(reader.data_offset), "size": model.stat().st_size,
              "header_sha256": hashlib.sha256(header).hexdigest(), "tensors": tensors}  # fmt: skip
    check(layout)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / HEADER).write_bytes(header)
    (folder / LAYOUT).write_text(json.dumps(layout, indent=1) + "\n", encoding="utf-8")
    return layout


def check(layout: dict[str, Any]) -> None:
    """Every tensor of a type `synth` can make, its bytes those of its shape, in order, none overlapping, the file
    no bigger than its tensors and their alignment padding (a layout cannot have `synth` fill a disk)."""
    for key in ("data_offset", "size"):
        if not _count(layout[key]):
            raise SynthError(f"{key} is {layout[key]!r}, not a byte count")
    end = 0
    for tensor in sorted(layout["tensors"], key=lambda t: _count(t["offset"]) and t["offset"]):
        name, kind, shape = tensor["name"], tensor["type"], tensor["shape"]
        if type(kind) is not int or (kind not in FLOATS and kind not in BLOCKS):
            supported = ", ".join(NAMES.values())
            raise SynthError(f"tensor {name!r} has GGML type {kind}: no synthetic form for it (supported: {supported})")
        values = math.prod(shape) if isinstance(shape, list) and all(_count(n) and n for n in shape) else -1
        if kind in BLOCKS:
            expected = values // BLOCKS[kind].values * BLOCKS[kind].size if values % BLOCKS[kind].values == 0 else -1
        else:
            expected = values * np.dtype(FLOATS[kind]).itemsize
        offset = tensor["offset"]
        fits = _count(offset) and _count(tensor["bytes"]) and tensor["bytes"] == expected
        if values <= 0 or not fits or not 0 <= offset - end < MAX_GAP:
            raise SynthError(f"tensor {name!r}: {tensor['bytes']} bytes of shape {shape} at {offset} do not fit its "
                             f"type and the tensors before it")  # fmt: skip
        end = offset + expected
    if not 0 <= layout["size"] - (layout["data_offset"] + end) < MAX_GAP:
        raise SynthError(f"the tensors end at {layout['data_offset'] + end}, not where the model's {layout['size']} "
                         "bytes do")  # fmt: skip


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def synth(folder: Path, target: Path, seed: int = 0) -> None:
    """The whole model from `folder`'s skeleton, at `target`."""
    layout = read_layout(folder)
    try:
        header = (folder / HEADER).read_bytes()
    except OSError as exc:
        raise SynthError(f"{folder / HEADER}: cannot be read ({exc.strerror})") from exc
    made_from = hashlib.sha256(header).hexdigest() == layout.get("header_sha256")
    if not header.startswith(b"GGUF") or not made_from or len(header) != layout["data_offset"]:
        raise SynthError(f"{folder / HEADER}: not the header {folder / LAYOUT} was made from")
    if not target.parent.is_dir():
        raise SynthError(f"{target.parent}: no such folder")
    if layout["size"] > shutil.disk_usage(target.parent).free:
        raise SynthError(f"{target.parent}: {layout['size']} bytes do not fit in what is free there")
    rng = np.random.default_rng(seed)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("wb") as out:
            out.write(header)
            for tensor in sorted(layout["tensors"], key=lambda t: t["offset"]):
                out.write(bytes(layout["data_offset"] + tensor["offset"] - out.tell()))  # alignment padding
                for piece in tensor_bytes(tensor, rng):
                    out.write(piece)
            out.write(bytes(layout["size"] - out.tell()))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def read_layout(folder: Path) -> dict[str, Any]:
    try:
        layout: dict[str, Any] = json.loads((folder / LAYOUT).read_text(encoding="utf-8"))
        check(layout)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise SynthError(f"{folder / LAYOUT}: not a skeleton's layout ({type(exc).__name__}: {exc})") from exc
    return layout


def tensor_bytes(tensor: dict[str, Any], rng: np.random.Generator) -> Iterator[bytes]:
    kind, size = tensor["type"], tensor["bytes"]
    if kind in FLOATS:
        dtype = FLOATS[kind]
        count = size // np.dtype(dtype).itemsize
        if len(tensor["shape"]) == 1:  # norms
            yield np.ones(count, dtype).tobytes()
        else:
            yield (rng.standard_normal(count, np.float32) * 0.02).astype(dtype).tobytes()
        return
    blocks = BLOCKS[kind]
    per_chunk = max(1, CHUNK // blocks.size)
    for start in range(0, size // blocks.size, per_chunk):
        count = min(per_chunk, size // blocks.size - start)
        quants = rng.integers(0, 256, (count, blocks.size), dtype=np.uint8)
        for offset, value in blocks.halves:
            quants[:, offset : offset + 2] = np.frombuffer(np.float16(value).tobytes(), np.uint8)
        yield quants.tobytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("skeleton", help="write a model's header and tensor table into a folder")
    made.add_argument("model", type=Path)
    made.add_argument("folder", type=Path)
    grown = commands.add_parser("synth", help="write the whole model from a skeleton's folder")
    grown.add_argument("folder", type=Path)
    grown.add_argument("target", type=Path)
    grown.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "skeleton":
            layout = skeleton(args.model, args.folder)
            print(f"{args.folder}: header of {layout['data_offset']} bytes, {len(layout['tensors'])} tensors")
        else:
            synth(args.folder, args.target, args.seed)
            print(f"{args.target}: {args.target.stat().st_size} bytes")
    except SynthError as exc:
        print(f"gguf_synth: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
