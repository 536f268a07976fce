"""The copies of a model's weights llama.cpp makes for its faster CPU kernels, from the GGUF header.

llama.cpp maps a model's file, but a weight matrix that its AMX tiles (Intel Xeons) or its repacked, interleaved
kernels (AVX2 x86, arm64 with dotprod or i8mm) can multiply is copied at load into a buffer in their layout. The
copy is anonymous memory beside the mapping: 214 MiB for Gemma 3 270M Q4_K_M on a Xeon with AMX, most of it the
tied output matrix (the token embeddings, still read through the mapping for the input). The original pages of a
copied matrix are read once at load and never again, so the kernel may drop them when memory runs short.

The rules mirror llama.cpp's buffer choice (ggml-cpu's amx/ and repack.cpp, the llama-cpp-python version pinned):
the first buffer type that takes a matrix wins, AMX before repacking. tests/runtime/models/test_footprint.py
checks the result against the buffer sizes llama.cpp reports when it loads the test model here.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from menlo_cortex.cortexfile.schema.target import dispatches_cpu_variants

from .gguf import Tensor

# ggml type number: (elements per block, bytes per block), of the types a weight matrix may have (ggml's
# type_traits; GGUF files store these numbers, so they never change).
BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
    23: (256, 136), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36),
    41: (128, 18), 42: (64, 18),
}  # fmt: skip
# AMX: type -> (a row's length must be a multiple of this, bytes its layout adds per block); f16 is copied as is.
AMX = {1: (16, 0), 2: (32, 0), 3: (32, 0), 8: (32, 4), 12: (256, 4), 13: (256, 4), 14: (256, 0), 23: (256, 2)}
AMX_ROWS = 32  # a matrix's rows (ne1) must be a multiple of two AMX tiles
# Repacking: type -> the (CPU feature, rows multiple) that repack it, in llama.cpp's order of preference.
REPACK = {
    2: (("AVX2", 8), ("MATMUL_INT8", 4), ("DOTPROD", 4)),
    12: (("AVX2", 8), ("MATMUL_INT8", 8), ("DOTPROD", 8)),
    10: (("AVX512", 8),),
    13: (("MATMUL_INT8", 8), ("DOTPROD", 8)),
    14: (("MATMUL_INT8", 8), ("DOTPROD", 8)),
    20: (("AVX2", 8), ("DOTPROD", 4)),
    39: (("AVX2", 8), ("DOTPROD", 4)),
    8: (("MATMUL_INT8", 4), ("DOTPROD", 4)),
    41: (("MATMUL_INT8", 4), ("DOTPROD", 4)),
}
# Matrices read by row (ggml_get_rows), not multiplied: never copied, unless tied to the output (below).
LOOKED_UP = {"token_embd.weight", "position_embd.weight", "token_types.weight", "per_layer_token_embd.weight"}
# And in some layers (llama-arch.cpp's GET_ROWS tensors): multi-token prediction's embeddings, relative position
# biases, compressors' positions, a router's table.
LOOKED_UP_SUFFIXES = (".embed_tokens.weight", "attn_rel_b.weight", "_compressor_ape.weight", "ffn_gate_tid2eid.weight")
TIED_OUTPUT = "token_embd.weight"  # llama.cpp multiplies by it for the logits when there is no output.weight
ARM_VERSION = re.compile(r"armv(\d+)(?:\.(\d+))?")
CPU_FLAGS = {"avx2": "AVX2", "avx512f": "AVX512", "avx512_vnni": "AVX512_VNNI", "amx_int8": "AMX_INT8",
             "asimddp": "DOTPROD", "i8mm": "MATMUL_INT8"}  # fmt: skip
X86_FEATURES = ("AVX2", "AVX512", "AVX512_VNNI", "AMX_INT8")  # ggml's names, as GGML_<name> CMake options
CMAKE_TRUE = {"ON", "TRUE", "1", "YES", "Y"}
CMAKE_FALSE = {"OFF", "FALSE", "0", "NO", "N", ""}


@dataclass(frozen=True)
class Kernels:
    """What llama.cpp's CPU module can use: ggml's feature names (AVX2, AVX512, AMX_INT8, DOTPROD, MATMUL_INT8)
    and whether it repacks at all (REPACK)."""

    features: frozenset[str]

    @property
    def amx(self) -> bool:
        return {"AMX_INT8", "AVX512_VNNI"} <= self.features  # ggml builds its AMX buffer with both

    @property
    def repack(self) -> bool:
        return "REPACK" in self.features


NONE = Kernels(frozenset())


@dataclass(frozen=True)
class Matrix:
    """Weight matrices of one kind that a matrix product reads: `count` of them, each `rows` x `columns`
    (ggml's ne1 x ne0) of ggml type `type`; `experts`: a mixture-of-experts stack (only repacking takes it)."""

    type: int
    columns: int
    rows: int
    count: int
    experts: bool = False
    tied: bool = False  # the token embeddings, multiplied for the output: a copy whose original stays in use


@dataclass(frozen=True)
class Copies:
    bytes: int  # anonymous memory the copies take
    reclaimable: int  # their originals' bytes in the mapping: read at load, then idle


NO_COPIES = Copies(0, 0)


def matrices(tensors: Iterable[Tensor], file_bytes: int) -> tuple[Matrix, ...]:
    """The header's weight matrices that matrix products read, counted by kind; ValueError when its tensors would
    take more than the file's `file_bytes`, or one is named twice (a header that lies)."""
    found = list(tensors)
    if len({tensor.name for tensor in found}) < len(found):
        raise ValueError("its header names a tensor twice")
    if sum(tensor_bytes(tensor) for tensor in found) > file_bytes:
        raise ValueError("its header describes more weights than the file holds")
    tied = output_tied(found)
    kinds: Counter[Matrix] = Counter()
    for tensor in found:
        if tensor.type not in BLOCKS or not tensor.name.endswith(".weight"):
            continue
        if len(tensor.dims) == 2 and not _looked_up(tensor.name):
            kinds[Matrix(tensor.type, tensor.dims[0], tensor.dims[1], 1)] += 1
        elif len(tensor.dims) == 3 and "_exps." in tensor.name:
            kinds[Matrix(tensor.type, tensor.dims[0], tensor.dims[1], tensor.dims[2], experts=True)] += 1
        if tied and tensor.name == TIED_OUTPUT and len(tensor.dims) == 2:
            kinds[Matrix(tensor.type, tensor.dims[0], tensor.dims[1], 1, tied=True)] += 1
    return tuple(
        Matrix(kind.type, kind.columns, kind.rows, kind.count * times, kind.experts, kind.tied)
        for kind, times in sorted(kinds.items(), key=lambda item: (item[0].type, item[0].columns, item[0].rows))
    )


def output_tied(tensors: Iterable[Tensor]) -> bool:
    """No output matrix: llama.cpp multiplies by the token embeddings (TIED_OUTPUT) for the logits."""
    return all(tensor.name != "output.weight" for tensor in tensors)


def within(found: Iterable[Matrix], file_bytes: int) -> bool:
    """Whether these matrices fit a file of `file_bytes` (a cached summary is checked again when read)."""
    return sum(_bytes(matrix) * matrix.count for matrix in found) <= file_bytes


def untied(found: Iterable[Matrix]) -> tuple[Matrix, ...]:
    """Without the output the token embeddings make: an embedding model's pooled output needs none."""
    return tuple(matrix for matrix in found if not matrix.tied)


def _looked_up(name: str) -> bool:
    return name in LOOKED_UP or name.endswith(LOOKED_UP_SUFFIXES)


def tensor_bytes(tensor: Tensor) -> int:
    """A tensor's bytes in the file, for the types a weight may have (0 for others)."""
    if tensor.type not in BLOCKS:
        return 0
    elements, size = BLOCKS[tensor.type]
    values = 1
    for dim in tensor.dims:
        values *= dim
    return values // elements * size


def copies(found: Iterable[Matrix], kernels: Kernels) -> Copies:
    """The copies `kernels` make of these matrices, and the bytes of their originals the kernel may drop."""
    total, reclaimable = 0, 0
    for matrix in found:
        size = _copy_bytes(matrix, kernels)
        if size:
            total += size * matrix.count
            reclaimable += 0 if matrix.tied else _bytes(matrix) * matrix.count
    return Copies(total, reclaimable)


def bytes_read_per_token(found: Iterable[Matrix], kernels: Kernels) -> int:
    """What one token's matrix products read: each matrix, or the copy the kernels multiply instead. The token
    embeddings are only looked up (a row per token), unless they are the output too."""
    return sum((_copy_bytes(matrix, kernels) or _bytes(matrix)) * matrix.count for matrix in found)


def _copy_bytes(matrix: Matrix, kernels: Kernels) -> int:
    """One matrix's copy: AMX's layout where its tiles take it, else a repacked one of the same size, else 0."""
    if kernels.amx and not matrix.experts and _amx_takes(matrix):
        _, extra = AMX[matrix.type]
        elements, _ = BLOCKS[matrix.type]
        return matrix.rows * (_row_bytes(matrix) + (matrix.columns // elements) * extra)
    if kernels.repack and _repacked(matrix, kernels):
        return _bytes(matrix)
    return 0


def _amx_takes(matrix: Matrix) -> bool:
    if matrix.type not in AMX:
        return False
    alignment, _ = AMX[matrix.type]
    return matrix.rows % AMX_ROWS == 0 and matrix.columns % alignment == 0


def _repacked(matrix: Matrix, kernels: Kernels) -> bool:
    rules = REPACK.get(matrix.type, ())
    return any(feature in kernels.features and matrix.rows % rows == 0 for feature, rows in rules)


def _bytes(matrix: Matrix) -> int:
    """One matrix's bytes in the file."""
    return _row_bytes(matrix) * matrix.rows


def _row_bytes(matrix: Matrix) -> int:
    elements, size = BLOCKS[matrix.type]
    return matrix.columns // elements * size


def kernels_from_features(features: Mapping[str, str]) -> Kernels:
    """From ggml_backend_get_features of the CPU module in use: names whose value is not "0"."""
    return Kernels(frozenset(name for name, value in features.items() if value not in ("", "0")))


def kernels_from_cpu_flags(flags: Iterable[str]) -> Kernels:
    """What a CPU module built for this CPU's flags (/proc/cpuinfo) can use: for sizing without loading llama.cpp.
    The module chosen may be a lesser one (its self-test failed), which copies less: an over-count."""
    return Kernels(frozenset({"REPACK"} | {CPU_FLAGS[flag] for flag in flags if flag in CPU_FLAGS}))


def kernels_for_build(architecture: str, arguments: Iterable[str]) -> Kernels:
    """What the CPU module of a build for `architecture` with these llama.cpp CMake flags can use. An amd64 build
    that pins no CPU feature ships every x86 variant and the device picks one: the most any of them copies
    (AMX's), so a device's plan over-counts rather than runs short."""
    arguments = list(arguments)
    flags = dict(_flag(argument) for argument in arguments if argument.startswith("-D") and "=" in argument)
    repack = {"REPACK"} if flags.get("GGML_CPU_REPACK", True) else set()
    if dispatches_cpu_variants(architecture, arguments):
        return Kernels(frozenset({"AVX2", "AVX512", "AVX512_VNNI", "AMX_INT8"} | repack))
    pinned = {name for name in X86_FEATURES if flags.get(f"GGML_{name}") is True}
    if "AVX512" in pinned:
        pinned.add("AVX2")  # -mavx512f turns AVX2 on too
    arm = flags.get("GGML_CPU_ARM_ARCH")
    return Kernels(frozenset(pinned | _arm_features(arm if isinstance(arm, str) else "") | repack))


def _flag(argument: str) -> tuple[str, bool | str]:
    """`-DNAME[:TYPE]=VALUE` as (NAME, True/False for CMake's boolean words, else the value)."""
    key, value = argument[2:].split("=", 1)
    word = value.upper()
    return key.split(":", 1)[0], True if word in CMAKE_TRUE else False if word in CMAKE_FALSE else value


def _arm_features(arch: str) -> set[str]:
    """`armv8.2-a+dotprod+fp16`: dotprod is part of Armv8.4 and later, i8mm of Armv8.6 and later."""
    extensions = set(arch.lower().split("+")[1:])
    version = ARM_VERSION.match(arch.lower())
    level = (int(version.group(1)), int(version.group(2) or 0)) if version else (0, 0)
    features = set()
    if "dotprod" in extensions or level >= (8, 4):
        features.add("DOTPROD")
    if "i8mm" in extensions or (8, 6) <= level != (9, 0):  # Armv9.0 is Armv8.5's level
        features.add("MATMUL_INT8")
    return features
