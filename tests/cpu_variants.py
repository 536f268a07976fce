"""The x86 CPU variants a portable llama.cpp build carries (ggml/src/CMakeLists.txt, GGML_CPU_ALL_VARIANTS),
as /proc/cpuinfo flag sets, to tell which one ggml should choose on a given CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HASWELL = frozenset({"sse4_2", "avx", "f16c", "fma", "avx2", "bmi2"})
SKYLAKEX = HASWELL | {"avx512f"}
ICELAKE = SKYLAKEX | {"avx512vbmi", "avx512_vnni"}
VARIANTS: dict[str, frozenset[str]] = {
    "x64": frozenset(),
    "sse42": frozenset({"sse4_2"}),
    "sandybridge": frozenset({"sse4_2", "avx"}),
    "ivybridge": frozenset({"sse4_2", "avx", "f16c"}),
    "piledriver": frozenset({"sse4_2", "avx", "f16c", "fma"}),
    "haswell": HASWELL,
    "skylakex": SKYLAKEX,
    "cannonlake": SKYLAKEX | {"avx512vbmi"},
    "cascadelake": SKYLAKEX | {"avx512_vnni"},
    "icelake": ICELAKE,
    "cooperlake": SKYLAKEX | {"avx512_vnni", "avx512_bf16"},
    "zen4": ICELAKE | {"avx512_bf16"},
    "alderlake": HASWELL | {"avx_vnni"},
    "sapphirerapids": ICELAKE | {"avx512_bf16", "amx_tile", "amx_int8"},
}


def host_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    for line in cpuinfo.read_text(encoding="utf-8").splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def fits(variant: str, flags: frozenset[str]) -> bool:
    return VARIANTS[variant] <= flags


def is_best_fit(variant: str, flags: frozenset[str]) -> bool:
    """`variant` runs on a CPU with `flags`, and no variant with more features does."""
    richer = [name for name, needs in VARIANTS.items() if needs > VARIANTS[variant] and needs <= flags]
    return fits(variant, flags) and not richer


def llama_lib() -> Path:
    """The llama_cpp/lib folder of the llama-cpp-python this interpreter imports (without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin).parent / "lib"


def llama_copy(root: Path, variants: list[str], extra: dict[str, Path] | None = None) -> Path:
    """A copy of the llama_cpp package under `root` (to put first on PYTHONPATH) whose lib folder holds only
    the CPU `variants` named, plus `extra` modules (file name -> path); libraries are hard-linked."""
    source = llama_lib().parent
    target = root / "llama_cpp"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("lib", "__pycache__"))
    (target / "lib").mkdir()
    keep = {f"libggml-cpu-{name}.so" for name in variants}
    for library in source.joinpath("lib").iterdir():
        if not library.name.startswith("libggml-cpu-") or library.name in keep:
            _link(library, target / "lib" / library.name)
    for name, path in (extra or {}).items():
        _link(path, target / "lib" / name)
    return root


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


# Stand-ins for a CPU variant whose kernels are broken: ggml scores them above every real variant,
# and they fail the moment the self-test initialises them.
STAND_IN = """
#include <signal.h>
#include <unistd.h>
int ggml_backend_score(void) { return 1 << 24; }
void * ggml_backend_init(void) { %s; return 0; }
"""
FAULTS = {"SIGILL": "raise(SIGILL)", "SIGSEGV": "raise(SIGSEGV)", "hang": "for (;;) pause()"}


def stand_in(folder: Path, name: str, fault: str) -> Path:
    """libggml-cpu-NAME.so that dies (or hangs) as `fault` says; compiled with the host's cc."""
    source = folder / f"{name}.c"
    source.write_text(STAND_IN % FAULTS[fault], encoding="utf-8")
    library = folder / f"libggml-cpu-{name}.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True, capture_output=True)
    return library
