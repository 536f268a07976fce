"""The x86 CPU variants a portable llama.cpp build carries (ggml/src/CMakeLists.txt, GGML_CPU_ALL_VARIANTS),
as /proc/cpuinfo flag sets, to tell which one ggml should choose on a given CPU."""

from __future__ import annotations

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
