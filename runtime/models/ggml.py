"""ctypes prototypes of the few ggml and gguf functions the runtime calls itself (backend loading, a
model's weight types, the CPU self-test's matrix products); llama-cpp-python binds only llama.h.

Only ctypes: the CPU self-test's child process imports this and nothing heavier.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

P = ctypes.c_void_p
SIZE = ctypes.c_size_t
I64 = ctypes.c_int64
INT = ctypes.c_int
BOOL = ctypes.c_bool
STR = ctypes.c_char_p
# ggml's numbers of the types a weight matrix may have and ggml_quantize_chunk can make (GGUF files store
# these numbers, so they never change). ggml_type_name has no bounds check: only these are asked.
WEIGHT_TYPES = {
    "f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8,
    "q2_K": 10, "q3_K": 11, "q4_K": 12, "q5_K": 13, "q6_K": 14,
    "iq2_xxs": 16, "iq2_xs": 17, "iq3_xxs": 18, "iq1_s": 19, "iq4_nl": 20, "iq3_s": 21, "iq2_s": 22,
    "iq4_xs": 23, "iq1_m": 29, "bf16": 30, "tq1_0": 34, "tq2_0": 35, "mxfp4": 39, "nvfp4": 40,
    "q1_0": 41, "q2_0": 42,
}  # fmt: skip


class InitParams(ctypes.Structure):
    _fields_ = (("mem_size", SIZE), ("mem_buffer", P), ("no_alloc", BOOL))


class TypeTraits(ctypes.Structure):
    _fields_ = (
        ("type_name", STR),
        ("blck_size", I64),
        ("blck_size_interleave", I64),
        ("type_size", SIZE),
        ("is_quantized", BOOL),
        ("to_float", ctypes.CFUNCTYPE(None, P, P, I64)),
        ("from_float_ref", P),
    )


class Feature(ctypes.Structure):
    _fields_ = (("name", STR), ("value", STR))


FEATURES_MAX = 256  # ggml's CPU module lists a few dozen, ended by a NULL name


class GgufInitParams(ctypes.Structure):
    _fields_ = (("no_alloc", BOOL), ("ctx", P))


# name: (result, argument types); a missing symbol is an error only when the function is called.
PROTOTYPES: dict[str, tuple[object, list[object]]] = {
    "ggml_backend_reg_count": (SIZE, []),
    "ggml_backend_reg_get": (P, [SIZE]),
    "ggml_backend_reg_name": (STR, [P]),
    "ggml_backend_reg_dev_get": (P, [P, SIZE]),
    "ggml_backend_reg_get_proc_address": (P, [P, STR]),
    "ggml_backend_load_all_from_path": (None, [STR]),
    "ggml_backend_dev_count": (SIZE, []),
    "ggml_backend_dev_get": (P, [SIZE]),
    "ggml_backend_dev_name": (STR, [P]),
    "ggml_backend_dev_description": (STR, [P]),
    "ggml_backend_dev_type": (INT, [P]),
    "ggml_backend_dev_memory": (None, [P, ctypes.POINTER(SIZE), ctypes.POINTER(SIZE)]),
    "ggml_backend_load": (P, [STR]),
    "ggml_backend_dev_init": (P, [P, STR]),
    "ggml_backend_dev_buffer_type": (P, [P]),
    "ggml_backend_dev_supports_op": (BOOL, [P, P]),
    "ggml_backend_buft_name": (STR, [P]),
    "ggml_backend_alloc_ctx_tensors_from_buft": (P, [P, P]),
    "ggml_backend_buffer_free": (None, [P]),
    "ggml_backend_tensor_set": (None, [P, P, SIZE, SIZE]),
    "ggml_backend_tensor_get": (None, [P, P, SIZE, SIZE]),
    "ggml_backend_graph_compute": (INT, [P, P]),
    "ggml_backend_free": (None, [P]),
    "ggml_init": (P, [InitParams]),
    "ggml_free": (None, [P]),
    "ggml_tensor_overhead": (SIZE, []),
    "ggml_graph_overhead": (SIZE, []),
    "ggml_new_tensor_2d": (P, [P, INT, I64, I64]),
    "ggml_mul_mat": (P, [P, P, P]),
    "ggml_new_graph": (P, [P]),
    "ggml_build_forward_expand": (None, [P, P]),
    "ggml_nbytes": (SIZE, [P]),
    "ggml_row_size": (SIZE, [INT, I64]),
    "ggml_type_name": (STR, [INT]),
    "ggml_quantize_requires_imatrix": (BOOL, [INT]),
    "ggml_quantize_chunk": (SIZE, [INT, P, P, I64, I64, I64, P]),
    "ggml_get_type_traits": (ctypes.POINTER(TypeTraits), [INT]),
    "gguf_init_from_file": (P, [STR, GgufInitParams]),
    "gguf_get_n_tensors": (I64, [P]),
    "gguf_get_tensor_type": (INT, [P, I64]),
    "gguf_free": (None, [P]),
}


DEVICE_KINDS = ("cpu", "gpu", "igpu", "accel", "meta")  # enum ggml_backend_dev_type, in its order


@dataclass(frozen=True)
class Device:
    """A device ggml computes on: "CUDA0", "NVIDIA H100 80GB HBM3", "gpu", its memory in bytes."""

    name: str
    description: str
    kind: str
    memory_total: int
    memory_free: int


def devices(ggml: ctypes.CDLL) -> tuple[Device, ...]:
    """Every device the registered backends offer, the CPU among them."""
    found = []
    for index in range(ggml.ggml_backend_dev_count()):
        device = ggml.ggml_backend_dev_get(index)
        free, total = SIZE(), SIZE()
        ggml.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
        kind = ggml.ggml_backend_dev_type(device)
        found.append(Device(
            name=(ggml.ggml_backend_dev_name(device) or b"").decode(errors="replace"),
            description=(ggml.ggml_backend_dev_description(device) or b"").decode(errors="replace"),
            kind=DEVICE_KINDS[kind] if 0 <= kind < len(DEVICE_KINDS) else f"type {kind}",
            memory_total=total.value, memory_free=free.value,
        ))  # fmt: skip
    return tuple(found)


def declare(library: ctypes.CDLL) -> ctypes.CDLL:
    """Set the prototypes of PROTOTYPES that `library` exports (ggml's symbols are spread over
    libggml and libggml-base, which libggml links)."""
    for name, (result, arguments) in PROTOTYPES.items():
        try:
            function = getattr(library, name)
        except AttributeError:
            continue
        function.restype = result
        function.argtypes = arguments
    return library


def loaded_ggml(lib_dir: Path) -> ctypes.CDLL | None:
    """libggml as libllama loaded it, or None when it is not loaded. Wheels hold no symlinks, so
    libggml.so and libggml.so.0 are separate copies: opened by path, a second libggml with its own
    empty backend registry would load. Opened by soname (and never loaded anew), dlopen returns the
    object libllama linked."""
    sonames = sorted((path.name for path in lib_dir.glob("libggml.so.*")), key=len)
    try:
        return declare(ctypes.CDLL(sonames[0], mode=os.RTLD_NOLOAD))
    except (IndexError, OSError):
        return None


def open_ggml(lib_dir: Path) -> ctypes.CDLL:
    """libggml (with libggml-base) from `lib_dir`, in a process that has not loaded llama.cpp (the
    self-test's child); OSError when it cannot be loaded."""
    names = sorted((path.name for path in lib_dir.glob("libggml.so*")), key=len)
    if not names:
        raise OSError(f"no libggml.so in {lib_dir}")
    return declare(ctypes.CDLL(str(lib_dir / names[-1]), mode=os.RTLD_GLOBAL))


def type_ids(ggml: ctypes.CDLL) -> dict[str, int]:
    """WEIGHT_TYPES that this build names as we do (a newer ggml may have dropped one)."""
    return {name: number for name, number in WEIGHT_TYPES.items() if ggml.ggml_type_name(number) == name.encode()}


def weight_types(ggml: ctypes.CDLL, path: Path) -> frozenset[str]:
    """The WEIGHT_TYPES a GGUF file holds, from its header (no weight is read); empty when ggml cannot
    read the header (the model's load then says why)."""
    context = ggml.gguf_init_from_file(str(path).encode(), GgufInitParams(no_alloc=True, ctx=None))
    if not context:
        return frozenset()
    try:
        numbers = {ggml.gguf_get_tensor_type(context, index) for index in range(ggml.gguf_get_n_tensors(context))}
    finally:
        ggml.gguf_free(context)
    return frozenset(name for name, number in WEIGHT_TYPES.items() if number in numbers)


def cpu_features(ggml: ctypes.CDLL) -> dict[str, str]:
    """What the registered CPU module was built with (ggml_backend_get_features: "AVX2": "1", "AMX_INT8": "1",
    "REPACK": "1", ...); empty when there is no CPU module or it does not say."""
    for index in range(ggml.ggml_backend_reg_count()):
        registry = ggml.ggml_backend_reg_get(index)
        if ggml.ggml_backend_reg_name(registry) != b"CPU":
            continue
        address = ggml.ggml_backend_reg_get_proc_address(registry, b"ggml_backend_get_features")
        if not address:
            return {}
        listed = ctypes.CFUNCTYPE(ctypes.POINTER(Feature), P)(address)(registry)
        found = {}
        for item in range(FEATURES_MAX):
            if not listed or not listed[item].name:
                break
            found[listed[item].name.decode(errors="replace")] = (listed[item].value or b"").decode(errors="replace")
        return found
    return {}
