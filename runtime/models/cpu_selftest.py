"""The self-test of one llama.cpp CPU variant, run in a child process of its own:

    python -m menlo_cortex.runtime.models.cpu_selftest LIB_DIR VARIANT TYPE[,TYPE...]

It loads `libggml-cpu-VARIANT.so` alone and multiplies small matrices of each weight type, on several
threads, in every buffer type the variant offers for weights (plain, repacked, AMX tiles), in the two
shapes a model runs (one token, a prompt's batch); each product is checked against numpy's. A broken
kernel kills this process with a signal (SIGILL, SIGSEGV), never the server; wrong products exit
WRONG_RESULTS. On success it prints one JSON line: the types each buffer type ran.
"""

from __future__ import annotations

import ctypes
import json
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .ggml import InitParams, open_ggml, type_ids

Array = Any  # a numpy array

WRONG_RESULTS = 3
USAGE = 2
ROWS, DEPTH, BATCH = 64, 512, 24  # weight rows, shared dimension (a multiple of every block size), prompt tokens
THREADS = 4  # several: every worker thread that runs tile code must be able to
PR_SET_DUMPABLE = 4
# Largest relative error (Frobenius) of a product against numpy's of the same (dequantised) weights: what
# quantising the inputs costs is under 0.01 for every type, measured on both CPU kinds; a broken kernel
# (garbage, zeros, a wrong layout) gives about 1 or more.
TOLERANCE = 0.05


class Runner:
    """One CPU backend of the variant under test, and the products it computes."""

    def __init__(self, lib_dir: Path, variant: str) -> None:
        self.ggml = open_ggml(lib_dir)
        registry = self.ggml.ggml_backend_load(str(lib_dir / f"libggml-cpu-{variant}.so").encode())
        if not registry:
            raise OSError(f"ggml did not load libggml-cpu-{variant}.so from {lib_dir}")
        self.device = self.ggml.ggml_backend_reg_dev_get(registry, 0)
        self.backend = self.ggml.ggml_backend_dev_init(self.device, None)
        self._set_threads(registry)
        self.buffer_types = [self.ggml.ggml_backend_dev_buffer_type(self.device), *self._extra_buffer_types(registry)]
        self.types = type_ids(self.ggml)

    def _set_threads(self, registry: int) -> None:
        address = self.ggml.ggml_backend_reg_get_proc_address(registry, b"ggml_backend_set_n_threads")
        if address:
            ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int)(address)(self.backend, THREADS)

    def _extra_buffer_types(self, registry: int) -> list[int]:
        address = self.ggml.ggml_backend_reg_get_proc_address(registry, b"ggml_backend_dev_get_extra_bufts")
        if not address:
            return []
        listed = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(address)(self.device)
        found: list[int] = []
        while listed and listed[len(found)]:
            found.append(int(listed[len(found)] or 0))
        return found

    def buffer_name(self, buffer_type: int) -> str:
        return (self.ggml.ggml_backend_buft_name(buffer_type) or b"?").decode()

    def product(self, type_name: str, weights: bytes, inputs: Array, tokens: int, buffer_type: int) -> Array | None:
        """weights (ROWS x DEPTH, quantised) times inputs (tokens x DEPTH, f32), or None when this buffer
        type does not take this product."""
        ggml = self.ggml
        overhead = ggml.ggml_tensor_overhead() * 4 + ggml.ggml_graph_overhead()
        weight_context = ggml.ggml_init(InitParams(overhead, None, True))
        work_context = ggml.ggml_init(InitParams(overhead, None, True))
        buffers: list[int] = []
        try:
            weight = ggml.ggml_new_tensor_2d(weight_context, self.types[type_name], DEPTH, ROWS)
            inputs_tensor = ggml.ggml_new_tensor_2d(work_context, self.types["f32"], DEPTH, tokens)
            result = ggml.ggml_mul_mat(work_context, weight, inputs_tensor)
            buffers.append(ggml.ggml_backend_alloc_ctx_tensors_from_buft(weight_context, buffer_type))
            if not buffers[-1] or not ggml.ggml_backend_dev_supports_op(self.device, result):
                return None
            buffers.append(ggml.ggml_backend_alloc_ctx_tensors_from_buft(work_context, self.buffer_types[0]))
            ggml.ggml_backend_tensor_set(weight, weights, 0, len(weights))
            data = np.ascontiguousarray(inputs, dtype=np.float32)
            ggml.ggml_backend_tensor_set(inputs_tensor, data.ctypes.data, 0, data.nbytes)
            graph = ggml.ggml_new_graph(work_context)
            ggml.ggml_build_forward_expand(graph, result)
            if ggml.ggml_backend_graph_compute(self.backend, graph) != 0:
                raise RuntimeError("ggml_backend_graph_compute failed")
            out = np.empty((tokens, ROWS), dtype=np.float32)
            ggml.ggml_backend_tensor_get(result, out.ctypes.data, 0, out.nbytes)
            return out
        finally:
            for buffer in buffers:
                if buffer:
                    ggml.ggml_backend_buffer_free(buffer)
            ggml.ggml_free(work_context)
            ggml.ggml_free(weight_context)

    def dequantise(self, type_name: str, weights: bytes) -> Array:
        """What ggml-base (not the variant under test) reads `weights` back as: the exact product's operand."""
        if type_name == "f32":
            return np.frombuffer(weights, dtype=np.float32).reshape(ROWS, DEPTH)
        out = np.empty((ROWS, DEPTH), dtype=np.float32)
        source = ctypes.create_string_buffer(weights, len(weights))
        self.ggml.ggml_get_type_traits(self.types[type_name]).contents.to_float(source, out.ctypes.data, out.size)
        return out

    def quantise(self, type_name: str, floats: Array) -> bytes:
        ggml = self.ggml
        number = self.types[type_name]
        data = np.ascontiguousarray(floats, dtype=np.float32)
        if type_name == "f32":
            return data.tobytes()
        out = ctypes.create_string_buffer(ggml.ggml_row_size(number, DEPTH) * ROWS)
        importance = np.ones(DEPTH, dtype=np.float32) if ggml.ggml_quantize_requires_imatrix(number) else None
        ggml.ggml_quantize_chunk(
            number, data.ctypes.data, out, 0, ROWS, DEPTH, None if importance is None else importance.ctypes.data
        )
        return out.raw


def run(lib_dir: Path, variant: str, type_names: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """(types each buffer type ran, what was wrong)."""
    runner = Runner(lib_dir, variant)
    unknown = [name for name in type_names if name not in runner.types]
    if unknown:
        raise ValueError(f"not ggml types of this build: {', '.join(unknown)}")
    random = np.random.default_rng(20261204)
    weights_f32 = random.standard_normal((ROWS, DEPTH)).astype(np.float32)
    ran: dict[str, list[str]] = {runner.buffer_name(b): [] for b in runner.buffer_types}
    wrong: list[str] = []
    for type_name in type_names:
        weights = runner.quantise(type_name, weights_f32)
        operand = np.asarray(runner.dequantise(type_name, weights), dtype=np.float64)
        for tokens in (1, BATCH):
            inputs = random.standard_normal((tokens, DEPTH)).astype(np.float32)
            exact = inputs.astype(np.float64) @ operand.T
            for buffer_type in runner.buffer_types:
                got = runner.product(type_name, weights, inputs, tokens, buffer_type)
                if got is None:
                    continue
                name = runner.buffer_name(buffer_type)
                error = relative_error(got, exact)
                if error > TOLERANCE:
                    wrong.append(f"{type_name} in {name}, {tokens} token(s): relative error {error:.3g}")
                elif type_name not in ran[name]:
                    ran[name].append(type_name)
    return ran, wrong


def relative_error(got: Array, exact: Array) -> float:
    """Frobenius norm of the difference over the exact product's; infinite when `got` is not finite."""
    if not np.all(np.isfinite(got)):
        return float("inf")
    return float(np.linalg.norm(got - exact) / np.linalg.norm(exact))


def no_core_dumps() -> None:
    """A variant that dies here is expected: leave no core file and no crash report behind."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = ctypes.CDLL(None)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: cpu_selftest LIB_DIR VARIANT TYPE[,TYPE...]", file=sys.stderr)
        return USAGE
    no_core_dumps()
    lib_dir, variant, types = Path(argv[0]), argv[1], [name for name in argv[2].split(",") if name]
    ran, wrong = run(lib_dir, variant, types)
    if wrong:
        print("wrong results: " + "; ".join(wrong), file=sys.stderr)
        return WRONG_RESULTS
    print(json.dumps({"variant": variant, "ran": ran}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
