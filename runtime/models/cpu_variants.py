"""Which of llama.cpp's CPU variants this process computes with: the best one that passes its self-test.

A portable build ships one CPU module per feature level (x64 ... zen4, sapphirerapids; armv8.0 ...
armv9.2 on arm64). ggml would load the one its CPUID checks score best, and a bug in that one's
kernels (llama.cpp's AMX tiles on Intel Xeons, for one) kills the whole server with SIGILL. So each
candidate is first tried in a child process (cpu_selftest.py), best first; the first that passes is
used, and every one that failed is named in the log. Results are kept per (variant library, CPU,
kernel) in a small JSON file, so a normal start spawns nothing.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import platform
import re
import signal
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..ops.durable import write_atomically

log = logging.getLogger("cortex.models")
CPU_VARIANT_FILE = re.compile(r"^libggml-cpu-([\w.]+)\.so$")
# Weight types every start checks: what GGUF files on devices use. A model with another type has that
# type checked before it loads.
COMMON_TYPES = (
    "f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0",
    "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq4_nl", "iq4_xs",
)  # fmt: skip
SELF_TEST_TIMEOUT_S = 120.0  # natively well under a second; generous for an emulated or busy board
CACHE_VERSION = 1
CACHE_ENTRIES = 64
CPU_SIGNATURE_KEYS = (
    "vendor_id", "cpu family", "model", "stepping", "microcode", "flags",  # x86
    "CPU implementer", "CPU architecture", "CPU variant", "CPU part", "CPU revision", "Features",  # arm
)  # fmt: skip


@dataclass(frozen=True)
class Variant:
    name: str
    path: Path
    score: int  # ggml_backend_score: how well it fits this CPU; 0 = cannot run here


@dataclass(frozen=True)
class Outcome:
    """One self-test: the weight types that passed, or why the variant failed."""

    passed: frozenset[str]
    failure: str | None = None  # "SIGILL", "timed out after 120 s", "wrong results: ..."


@dataclass(frozen=True)
class Choice:
    variant: Variant
    failed: tuple[tuple[str, str], ...]  # (variant, why) for each better one that failed, best first


class NoUsableVariant(RuntimeError):
    """Every CPU variant that fits this CPU failed its self-test; the message names them and the CPU."""


def variant_files(lib_dir: Path) -> list[Path]:
    return sorted(path for path in lib_dir.glob("libggml-cpu-*.so") if CPU_VARIANT_FILE.match(path.name))


def variant_name(path: Path) -> str:
    match = CPU_VARIANT_FILE.match(path.name)
    return match.group(1) if match else path.name


def rank(paths: Iterable[Path]) -> list[Variant]:
    """The variants this CPU can run, best first. Scored in this process, as ggml itself does: a score is
    a CPUID check, and under an emulator it sees the emulated CPU (a child process might not)."""
    ranked = []
    for path in paths:
        base_of(path.parent)
        library = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL)
        try:
            score_function = getattr(library, "ggml_backend_score", None)
            score = int(score_function()) if score_function is not None else 0
        finally:
            _close(library)
        if score > 0:
            ranked.append(Variant(variant_name(path), path, score))
    return sorted(ranked, key=lambda variant: -variant.score)


def base_of(lib_dir: Path) -> ctypes.CDLL:
    """libggml-base by its soname's file, as libllama loads it: a variant module needs it and has no
    search path of its own."""
    sonames = sorted((path.name for path in lib_dir.glob("libggml-base.so.*")), key=len)
    return ctypes.CDLL(str(lib_dir / (sonames[0] if sonames else "libggml-base.so")), mode=os.RTLD_GLOBAL)


def _close(library: ctypes.CDLL) -> None:
    import _ctypes

    _ctypes.dlclose(library._handle)


def self_test(lib_dir: Path, variant: Variant, types: Iterable[str], timeout_s: float = SELF_TEST_TIMEOUT_S) -> Outcome:
    """Run cpu_selftest.py on `variant` in a child process; a hang is killed at the deadline."""
    wanted = sorted(set(types))
    log.info("CPU variant %s: self-test of %d weight types in a child process", variant.name, len(wanted))
    # -I: neither the working folder nor PYTHONPATH can put a module of theirs first; the libraries are named.
    command = [sys.executable, "-I", "-m", f"{__package__}.cpu_selftest", str(lib_dir), variant.name, ",".join(wanted)]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        return Outcome(frozenset(), f"timed out after {timeout_s:g} s")
    if child.returncode < 0:
        return Outcome(frozenset(), signal.Signals(-child.returncode).name)
    if child.returncode != 0:
        return Outcome(frozenset(), _last_line(err) or f"exit status {child.returncode}")
    return Outcome(frozenset(wanted))


def _last_line(stream: bytes) -> str:
    lines = [line.strip() for line in stream.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def choose(lib_dir: Path, types: Iterable[str], cache: SelfTestCache) -> Choice:
    """The best variant that passes its self-test for `types`; NoUsableVariant when none does."""
    wanted = frozenset(types)
    failed: list[tuple[str, str]] = []
    for variant in rank(variant_files(lib_dir)):
        outcome = checked(lib_dir, variant, wanted, cache)
        if outcome.failure is None:
            for name, why in failed:
                log.warning("CPU variant %s failed its self-test (%s); using %s", name, why, variant.name)
            return Choice(variant, tuple(failed))
        failed.append((variant.name, outcome.failure))
    tried = ", ".join(f"{name} ({why})" for name, why in failed) or "none fits this CPU"
    raise NoUsableVariant(
        f"no CPU variant of llama.cpp in {lib_dir} runs on this CPU: tried {tried}; "
        f"CPU: {cpu_model()}; flags: {' '.join(sorted(cpu_flags()))}"
    )


def checked(lib_dir: Path, variant: Variant, types: frozenset[str], cache: SelfTestCache) -> Outcome:
    """`variant`'s self-test for `types`, from the cache when it holds the answer, else run and kept."""
    known = cache.get(variant)
    if known is not None and (known.failure is not None or types <= known.passed):
        return known
    outcome = self_test(lib_dir, variant, types | (known.passed if known else frozenset()))
    cache.put(variant, outcome)
    return outcome


class SelfTestCache:
    """Outcomes by (variant library, libggml-base, CPU, kernel) in one JSON file; None: kept in memory only.
    A damaged or unwritable file costs a self-test, never a start."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, object]] = self._read()

    def get(self, variant: Variant) -> Outcome | None:
        entry = self.entries.get(self.key(variant))
        if not isinstance(entry, dict):
            return None
        passed, failure = entry.get("passed"), entry.get("failure")
        if not isinstance(passed, list) or not (failure is None or isinstance(failure, str)):
            return None
        return Outcome(frozenset(str(name) for name in passed), failure)

    def put(self, variant: Variant, outcome: Outcome) -> None:
        key = self.key(variant)
        self.entries.pop(key, None)
        self.entries[key] = {"variant": variant.name, "passed": sorted(outcome.passed), "failure": outcome.failure}
        while len(self.entries) > CACHE_ENTRIES:
            self.entries.pop(next(iter(self.entries)))
        if self.path is None:
            return
        document = {"version": CACHE_VERSION, "entries": self.entries}
        try:
            write_atomically(self.path, json.dumps(document, indent=1) + "\n")
        except OSError as exc:
            log.debug("CPU self-test results not kept in %s: %s", self.path, exc.strerror)

    def key(self, variant: Variant) -> str:
        digest = hashlib.sha256()
        for library in (variant.path, *sorted(variant.path.parent.glob("libggml-base.so*"))):
            digest.update(_file_digest(library))
        digest.update(cpu_signature().encode())
        digest.update(platform.release().encode())
        return digest.hexdigest()[:32]

    def _read(self) -> dict[str, dict[str, object]]:
        if self.path is None:
            return {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        entries = document.get("entries") if isinstance(document, dict) else None
        if document.get("version") != CACHE_VERSION or not isinstance(entries, dict):
            return {}
        return {str(key): value for key, value in entries.items() if isinstance(value, dict)}


def _file_digest(path: Path) -> bytes:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").digest()


def cpu_info_lines(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[tuple[str, str]]:
    """The first processor's `key: value` lines."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    first = text.split("\n\n", 1)[0]
    return [(key.strip(), value.strip()) for key, _, value in (line.partition(":") for line in first.splitlines())]


def cpu_signature() -> str:
    return "\n".join(f"{key}={value}" for key, value in cpu_info_lines() if key in CPU_SIGNATURE_KEYS)


def cpu_flags() -> frozenset[str]:
    for key, value in cpu_info_lines():
        if key in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_model() -> str:
    for key, value in cpu_info_lines():
        if key in ("model name", "Model", "Hardware"):
            return value
    return platform.machine()
