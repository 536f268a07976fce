"""The llama.cpp backends this process computes with, loaded once before the first model.

A portable build (`GGML_BACKEND_DL` with `GGML_CPU_ALL_VARIANTS`) ships one CPU backend per
feature level (x64, sse42, haswell, skylakex, ...) as loadable modules beside libllama; ggml
scores each against the running CPU and loads the best, so one image runs fast on a new server
and still runs on an old one. ggml's default search covers only the executable's folder (python's
bin/) and the working directory, so it is pointed at llama-cpp-python's lib folder here. A build
with its backends linked in has them registered already and is left as it is.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("cortex.models")  # the main log, not llama.cpp's own
CPU_VARIANT_FILE = re.compile(r"/libggml-cpu-([\w.]+)\.so$")


class BackendError(RuntimeError):
    """llama.cpp has no backend to compute with; the message names the folder searched."""


@dataclass(frozen=True)
class Backends:
    names: tuple[str, ...]  # ggml's registry names, e.g. ("CUDA", "CPU")
    cpu_variant: str | None  # the CPU module ggml chose, e.g. "haswell"; None when linked in
    dynamic: bool  # loaded from modules (GGML_BACKEND_DL) rather than linked in

    def describe(self) -> str:
        names = ", ".join(self.names)
        return f"{names} (CPU variant {self.cpu_variant})" if self.cpu_variant else names


@functools.cache
def load_backends() -> Backends:
    """Register llama.cpp's backends once per process; BackendError when none can run here."""
    lib_dir = llama_lib_dir()
    ggml = ggml_library(lib_dir)
    dynamic = ggml.ggml_backend_reg_count() == 0
    if dynamic:
        ggml.ggml_backend_load_all_from_path(str(lib_dir).encode())
    names = tuple(
        ggml.ggml_backend_reg_name(ggml.ggml_backend_reg_get(i)).decode() for i in range(ggml.ggml_backend_reg_count())
    )
    if not names:
        raise BackendError(
            f"llama.cpp loaded no backend from {lib_dir}: no libggml-cpu-*.so there fits this CPU "
            "(reinstall llama-cpp-python, or rebuild it for this machine)"
        )
    backends = Backends(names=names, cpu_variant=mapped_cpu_variant() if dynamic else None, dynamic=dynamic)
    log.info("llama.cpp backends: %s", backends.describe())
    return backends


def mapped_cpu_variant(maps: Path = Path("/proc/self/maps")) -> str | None:
    """The ggml CPU module this process has mapped (ggml does not say which one it scored best)."""
    try:
        text = maps.read_text()
    except OSError:
        return None
    found = {match.group(1) for line in text.splitlines() if (match := CPU_VARIANT_FILE.search(line))}
    return found.pop() if len(found) == 1 else None


def llama_lib_dir() -> Path:
    """llama-cpp-python's folder of shared libraries (importing it loads libllama and libggml)."""
    import llama_cpp

    return Path(llama_cpp.__file__).resolve().parent / "lib"


def ggml_library(lib_dir: Path) -> ctypes.CDLL:
    """libggml as libllama loaded it. Wheels hold no symlinks, so libggml.so and libggml.so.0 are
    separate copies: opened by path, a second libggml with its own empty backend registry would
    load. Opened by soname (and never loaded anew), dlopen returns the object libllama linked."""
    sonames = sorted((path.name for path in lib_dir.glob("libggml.so.*")), key=len)
    try:
        ggml = ctypes.CDLL(sonames[0], mode=os.RTLD_NOLOAD)
    except (IndexError, OSError):
        raise BackendError(
            f"llama.cpp's libggml is not loaded from {lib_dir} (a broken llama-cpp-python install)"
        ) from None
    ggml.ggml_backend_reg_count.restype = ctypes.c_size_t
    ggml.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
    ggml.ggml_backend_reg_get.restype = ctypes.c_void_p
    ggml.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_reg_name.restype = ctypes.c_char_p
    ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load_all_from_path.restype = None
    ggml.ggml_backend_load.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load.restype = ctypes.c_void_p
    return ggml
