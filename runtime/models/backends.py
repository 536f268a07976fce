"""The llama.cpp backends this process computes with, loaded once before the first model.

A portable build (`GGML_BACKEND_DL` with `GGML_CPU_ALL_VARIANTS`) ships its backends as loadable
modules beside libllama: one CPU module per feature level, and the GPU ones it was built with. The
GPU modules are loaded as ggml would; the CPU module is the best that passes its self-test
(cpu_variants.py), never one that would kill the server. A build with its backends linked in has
them registered already and is left as it is.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from . import cpu_variants
from .ggml import Device, cpu_features, devices, loaded_ggml, weight_types
from .weight_copies import Kernels, kernels_from_features

T = TypeVar("T")
log = logging.getLogger("cortex.models")  # the main log, not llama.cpp's own
llama_log = logging.getLogger("cortex.llama")
GGML_LOG_LEVELS = {3: logging.WARNING, 4: logging.ERROR}  # ggml: 1 debug, 2 info, 3 warn, 4 error
# ggml_backend_load_all_from_path's order (ggml-backend-reg.cpp): devices are listed in load order.
GPU_BACKENDS = (
    "blas", "zendnn", "cann", "cuda", "hip", "metal", "rpc", "sycl",
    "vulkan", "virtgpu", "opencl", "hexagon", "musa", "openvino",
)  # fmt: skip


# llama-model.cpp's load_tensors says it at info level; the whole line must match (a model's metadata is printed
# at that level too, and must not forge log lines).
OFFLOADED = re.compile(rb"\w+: offloaded \d+/\d+ layers to GPU\n?")
GPU_MODULES = ("cuda", "hip", "musa", "sycl", "vulkan", "opencl", "metal")  # modules: libggml-<name>.so
GPU_REGISTERED = {"cuda": "cuda", "rocm": "hip", "musa": "musa", "sycl": "sycl", "vulkan": "vulkan",
                  "opencl": "opencl", "mtl": "metal"}  # fmt: skip  # a linked backend's registry name: its module


class BackendError(RuntimeError):
    """llama.cpp has no backend to compute with; the message names the folder searched."""


@dataclass(frozen=True)
class Backends:
    names: tuple[str, ...]  # ggml's registry names, e.g. ("CUDA", "CPU")
    dynamic: bool  # loaded from modules (GGML_BACKEND_DL) rather than linked in
    choice: cpu_variants.Choice | None = None  # the CPU module in use; None when there was none to choose
    cache: cpu_variants.SelfTestCache | None = None
    cpu_features: tuple[tuple[str, str], ...] = ()  # the CPU module's (ggml_backend_get_features)
    gpus: tuple[Device, ...] = ()  # the GPUs the backends found, their memory as at start

    @property
    def kernels(self) -> Kernels:
        """What the CPU module can use, which decides the weight copies it makes (weight_copies.py)."""
        return kernels_from_features(dict(self.cpu_features))

    @property
    def cpu_variant(self) -> str | None:
        """The CPU module in use, e.g. "zen4"."""
        return self.choice.variant.name if self.choice else None

    @property
    def failed(self) -> tuple[tuple[str, str], ...]:
        """Better CPU variants that failed their self-test, and why."""
        return self.choice.failed if self.choice else ()

    @property
    def integrated_gpu(self) -> bool:
        """llama.cpp offloads to an integrated GPU (a Jetson's, an APU's): one is here, and no discrete one, which
        it would take instead (llama.cpp's llama_model_load)."""
        kinds = {gpu.kind for gpu in self.gpus}
        return "igpu" in kinds and "gpu" not in kinds

    def describe(self) -> str:
        names = ", ".join(self.names)
        described = f"{names} (CPU variant {self.cpu_variant})" if self.cpu_variant else names
        for gpu in self.gpus:
            described += f"; {gpu.name}: {gpu.description}, {gpu.memory_total >> 20} MiB ({gpu.memory_free >> 20} free)"
        return described

    def status(self, gpus: bool = True) -> dict[str, object]:
        """What /health (`gpus` for key holders: the hardware) and `cortex validate --preflight start` report."""
        status: dict[str, object] = {
            "names": list(self.names),
            "cpu_variant": self.cpu_variant,
            "cpu_variants_failed": [{"variant": name, "reason": why} for name, why in self.failed],
        }
        if gpus:
            status["gpus"] = [{"name": gpu.name, "description": gpu.description, "memory_mib": gpu.memory_total >> 20,
                               "free_at_start_mib": gpu.memory_free >> 20} for gpu in self.gpus]  # fmt: skip
        return status

    def gpu_free(self) -> tuple[int, ...]:
        """Each discrete GPU's free memory now, in bytes (the figures at start are stale once a model is loaded).
        Not an integrated GPU's: its memory is the host's, which the plan counts already."""
        if not any(gpu.kind == "gpu" for gpu in self.gpus):
            return ()
        return tuple(found.memory_free for found in _ask_ggml(devices) if found.kind == "gpu")

    def check_model(self, path: Path) -> None:
        """Self-test the CPU variant in use on the weight types of the model at `path` that no test has
        covered yet (a failure is BackendError: the variant is loaded and cannot be swapped)."""
        if self.choice is None or self.cache is None:
            return
        lib_dir = self.choice.variant.path.parent
        ggml = loaded_ggml(lib_dir)
        if ggml is None:
            return
        with _LOCK:
            outcome = cpu_variants.checked(lib_dir, self.choice.variant, weight_types(ggml, path), self.cache)
        if outcome.failure is not None:
            raise BackendError(
                f"llama.cpp's CPU variant {self.cpu_variant} fails its self-test on this model's weight types "
                f"({outcome.failure})"
            )


class _Process:
    """ggml's backend registry is one per process: so is what was loaded into it."""

    backends: Backends | None = None


_LOCK = threading.Lock()


def load_backends(cache: Path | None = None) -> Backends:
    """Register llama.cpp's backends once per process (later calls return the same); `cache`: the file
    that keeps CPU self-test results. BackendError when no backend can run here."""
    with _LOCK:
        if _Process.backends is None:
            route_llama_logs()  # ggml's own lines about the modules it loads go to logging, not stderr
            backends = _load(cache)
            features = _ask_ggml(lambda ggml: tuple(cpu_features(ggml).items()))  # none: no weight copies counted
            gpus = _ask_ggml(lambda ggml: tuple(found for found in devices(ggml) if found.kind in ("gpu", "igpu")))
            _Process.backends = dataclasses.replace(backends, cpu_features=features, gpus=gpus)
            log.info("llama.cpp backends: %s", _Process.backends.describe())
            _warn_of_unused_gpu_backends(backends.names, gpus)
        return _Process.backends


def _ask_ggml(question: Callable[[ctypes.CDLL], tuple[T, ...]]) -> tuple[T, ...]:
    """What the libggml llama.cpp loaded answers; nothing when it will not say."""
    try:
        ggml = loaded_ggml(llama_lib_dir())
        return question(ggml) if ggml is not None else ()
    except (AttributeError, OSError, ValueError):
        return ()


def _warn_of_unused_gpu_backends(names: tuple[str, ...], gpus: tuple[Device, ...]) -> None:
    """A GPU build on a machine without that GPU (or its driver) computes on the CPU: one line says so."""
    lib_dir = llama_lib_dir()
    installed = {name for name in GPU_MODULES if any(lib_dir.glob(f"libggml-{name}*.so"))}
    installed |= {GPU_REGISTERED[name.lower()] for name in names if name.lower() in GPU_REGISTERED}
    if installed and not gpus:
        log.warning("llama.cpp's %s backend is installed but found no GPU to use: models run on the CPU",
                    ", ".join(sorted(installed)))  # fmt: skip


def loaded_backends() -> Backends | None:
    return _Process.backends


def _load(cache_file: Path | None) -> Backends:
    lib_dir = llama_lib_dir()
    ggml = loaded_ggml(lib_dir)
    if ggml is None:
        raise BackendError(f"llama.cpp's libggml is not loaded from {lib_dir} (a broken llama-cpp-python install)")
    if ggml.ggml_backend_reg_count() > 0:
        return Backends(names=_registered(ggml), dynamic=False)
    if not cpu_variants.variant_files(lib_dir):  # one plain CPU module, or none: nothing to choose
        ggml.ggml_backend_load_all_from_path(str(lib_dir).encode())
        return Backends(names=_checked_names(ggml, lib_dir), dynamic=True)
    cache = cpu_variants.SelfTestCache(cache_file)
    try:
        choice = cpu_variants.choose(lib_dir, cpu_variants.COMMON_TYPES, cache)
    except cpu_variants.NoUsableVariant as exc:
        raise BackendError(str(exc)) from None
    _load_gpu_backends(ggml, lib_dir)
    if not ggml.ggml_backend_load(str(choice.variant.path).encode()):
        raise BackendError(f"ggml could not load {choice.variant.path}")
    names = _checked_names(ggml, lib_dir)
    return Backends(names, dynamic=True, choice=choice, cache=cache)


def _load_gpu_backends(ggml: ctypes.CDLL, lib_dir: Path) -> None:
    for name in GPU_BACKENDS:
        for path in sorted(lib_dir.glob(f"libggml-{name}.so")) + sorted(lib_dir.glob(f"libggml-{name}-*.so")):
            if ggml.ggml_backend_load(str(path).encode()):  # NULL when it cannot run here (no GPU)
                break


def _registered(ggml: ctypes.CDLL) -> tuple[str, ...]:
    return tuple(
        ggml.ggml_backend_reg_name(ggml.ggml_backend_reg_get(i)).decode() for i in range(ggml.ggml_backend_reg_count())
    )


def _checked_names(ggml: ctypes.CDLL, lib_dir: Path) -> tuple[str, ...]:
    names = _registered(ggml)
    if not names:
        raise BackendError(
            f"llama.cpp loaded no backend from {lib_dir}: no libggml-cpu-*.so there fits this CPU "
            "(reinstall llama-cpp-python, or rebuild it for this machine)"
        )
    return names


@functools.cache
def route_llama_logs() -> Any:
    """Send llama.cpp's warnings and errors to logging, once per process (the cache keeps the callback alive), and
    from its information the line that says how many of a model's layers went to the GPU (with a GPU only).

    llama-cpp-python's own quiet mode (verbose=False) silences loads by pointing file descriptors 1 and 2
    at /dev/null for the whole process, which would swallow the server's logs and is not thread-safe.
    """
    import ctypes

    import llama_cpp

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def forward(level: int, text: bytes, user_data: Any) -> None:
        if level in GGML_LOG_LEVELS:
            llama_log.log(GGML_LOG_LEVELS[level], "%s", text.decode("utf-8", "replace").rstrip())
        elif level == 2 and text and OFFLOADED.fullmatch(text):
            llama_log.info("%s", text.decode("utf-8", "replace").rstrip())

    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
    return forward


def llama_lib_dir() -> Path:
    """llama-cpp-python's folder of shared libraries (importing it loads libllama and libggml)."""
    import llama_cpp

    return Path(llama_cpp.__file__).resolve().parent / "lib"
