"""A GGUF file's header (its metadata's key-value pairs and its tensors' descriptions), read in plain Python: no
llama.cpp, no weight.

The runtime sizes a model's slots from it before loading, and `cortex build --format kube` sizes the pod
from it on a build host that has only the builder installed. The file may come from anywhere: every
count and length is checked against what is left of the file before anything is read or allocated.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = b"GGUF"
VERSIONS = (2, 3)
MAX_KEYS = 1 << 16  # real models have a few dozen
MAX_KEY_BYTES = 1 << 16
MAX_TENSORS = 1 << 16  # real models have a few thousand at most
MAX_DIMS = 4  # ggml's GGML_MAX_DIMS
MAX_NAME_BYTES = 63  # ggml's GGML_MAX_NAME, less its terminating zero: llama.cpp refuses longer names
TENSOR_MIN_BYTES = 8 + 4 + 4 + 8  # a description: name length, dimension count, type and offset
MAX_NESTING = 4  # arrays of arrays: the format allows them, no model needs them deep
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9


@dataclass(frozen=True)
class Array:
    """An array's length and whether its items are strings (they are skipped): the tokenizer's tokens say the
    vocabulary's size."""

    length: int
    of_strings: bool


Value = int | float | bool | str | Array


class GgufError(ValueError):
    """Not a GGUF file, or a damaged one; the message says what was wrong, never the bytes."""


class Truncated(GgufError):
    """The header goes on past the bytes there are: a damaged file, or only its first part (a ranged read)."""


@dataclass(frozen=True)
class Tensor:
    """A tensor's description in the header: its name, ggml type number and dimensions (ne0 first)."""

    name: str
    type: int
    dims: tuple[int, ...]


def read_metadata(path: Path) -> dict[str, Value]:
    """Every key of the header: scalars and strings by value, arrays by their length."""
    return read_header(path, with_tensors=False)[0]


def read_header(path: Path, with_tensors: bool = True) -> tuple[dict[str, Value], list[Tensor]]:
    """The metadata and (`with_tensors`) the tensors' descriptions that follow it; no weight is read."""
    with path.open("rb") as file:
        reader = _Reader(file, path.stat().st_size)
        if reader.take(4) != MAGIC:
            raise GgufError("it does not start with `GGUF`")
        version = reader.scalar("<I")
        if version not in VERSIONS:
            raise GgufError(f"GGUF version {version} is not one this reader knows ({', '.join(map(str, VERSIONS))})")
        tensors, keys = reader.scalar("<Q"), reader.scalar("<Q")
        if not isinstance(keys, int) or keys > MAX_KEYS:
            raise GgufError(f"its header claims {keys} metadata keys")
        if not isinstance(tensors, int) or tensors > MAX_TENSORS:
            raise GgufError(f"its header claims {tensors} tensors")
        metadata = dict(reader.pairs(keys))
        if with_tensors and tensors * TENSOR_MIN_BYTES > reader.left:
            raise Truncated("its header runs past the end of the file")
        return metadata, [reader.tensor() for _ in range(tensors)] if with_tensors else []


def architecture_value(metadata: dict[str, Value], key: str) -> int | None:
    """`<general.architecture>.<key>` as a whole number, None when absent or not one."""
    architecture = metadata.get("general.architecture")
    value = metadata.get(f"{architecture}.{key}") if isinstance(architecture, str) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class _Reader:
    def __init__(self, file: BinaryIO, size: int) -> None:
        self.file, self.left = file, size

    def take(self, count: int) -> bytes:
        if count > self.left:
            raise Truncated("its header runs past the end of the file")
        self.left -= count
        return self.file.read(count)

    def skip(self, count: int) -> None:
        if count > self.left:
            raise Truncated("its header runs past the end of the file")
        self.left -= count
        self.file.seek(count, 1)

    def scalar(self, layout: str) -> int | float | bool:
        value: int | float | bool = struct.unpack(layout, self.take(struct.calcsize(layout)))[0]
        return value

    def string(self, limit: int | None = None, what: str = "metadata key") -> str:
        length = int(self.scalar("<Q"))
        if limit is not None and length > limit:
            raise GgufError(f"a {what} of {length} bytes")
        return self.take(length).decode("utf-8", "replace")

    def pairs(self, count: int) -> Iterator[tuple[str, Value]]:
        for _ in range(count):
            key = self.string(MAX_KEY_BYTES)
            yield key, self.value(int(self.scalar("<I")))

    def tensor(self) -> Tensor:
        name = self.string(MAX_NAME_BYTES, "tensor name")
        count = int(self.scalar("<I"))
        if count > MAX_DIMS:
            raise GgufError(f"a tensor of {count} dimensions")
        dims = tuple(int(self.scalar("<Q")) for _ in range(count))
        kind = int(self.scalar("<I"))
        self.skip(8)  # its offset among the weights
        return Tensor(name, kind, dims)

    def value(self, kind: int) -> Value:
        if kind in SCALARS:
            return self.scalar(SCALARS[kind])
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            item_kind, length = self.skip_array(MAX_NESTING)
            return Array(length, item_kind == STRING)
        raise GgufError(f"metadata of unknown type {kind}")

    def skip_array(self, depth: int) -> tuple[int, int]:
        """Its items' type and its length, once skipped."""
        kind, count = int(self.scalar("<I")), int(self.scalar("<Q"))
        if kind in SCALARS:
            self.skip(count * struct.calcsize(SCALARS[kind]))
            return kind, count
        if kind not in (STRING, ARRAY) or (kind == ARRAY and depth == 0):
            raise GgufError(f"an array of type {kind}")
        if count * 8 > self.left:  # each element holds at least an 8-byte length or a 12-byte array head
            raise Truncated("its header runs past the end of the file")
        for _ in range(count):
            if kind == STRING:
                self.skip(int(self.scalar("<Q")))
            else:
                self.skip_array(depth - 1)
        return kind, count
