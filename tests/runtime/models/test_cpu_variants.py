"""The CPU variant guard: every variant this CPU can run passes its self-test and decodes the test model;
a variant that dies (a signal) or hangs is skipped for the next best, with one log line naming both; a CPU
with no usable variant is a clear error, never a core dump; the results are kept so a normal start spawns
nothing. And the AMX fix itself, read from the shipped library's code. Runs on any x86-64 CPU: on an Intel
Xeon with AMX the AMX variant is among those tested, its tile kernels included."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from menlo_cortex.runtime.models import cpu_variants
from menlo_cortex.runtime.models.cpu_selftest import TOLERANCE, relative_error
from menlo_cortex.runtime.models.cpu_variants import (
    COMMON_TYPES,
    SelfTestCache,
    Variant,
    rank,
    self_test,
    variant_files,
)

from tests.cpu_variants import host_cpu_flags, llama_copy, llama_lib, stand_in

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="CPU variants are built for x86-64 only")
# In a child process with the llama_cpp of PYTHONPATH: the backends the runtime loads, and a short decode.
START = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, format="%(message)s")
from pathlib import Path
from menlo_cortex.runtime.models.backends import load_backends
backends = load_backends(cache=Path(sys.argv[2]))
text = None
if sys.argv[1] != "-":
    from llama_cpp import Llama
    llama = Llama(model_path=sys.argv[1], n_ctx=64, n_threads=2, verbose=False)
    text = llama.create_completion("The capital of France is", max_tokens=4, temperature=0)["choices"][0]["text"]
print(json.dumps({"status": backends.status(), "text": text}))
"""
TILE_CONFIG_LOAD = re.compile(r"\bldtilecfg\s+(\S+)")


def runnable() -> list[Variant]:
    return rank(variant_files(llama_lib()))


def start_with(pythonpath: Path, cache: Path, model: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(pythonpath)}
    command = [sys.executable, "-c", START, str(model) if model else "-", str(cache)]
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=240, check=False)


def test_the_amx_variant_loads_its_tile_config_from_static_storage() -> None:
    """llama.cpp PR #26954: built on the stack, GCC dropped the config's stores and ldtilecfg loaded zeros
    (SIGILL at the next tile instruction on an AMX Xeon). With images/llama_patches applied, every
    ldtilecfg reads a constant in .rodata, and each thread asks for the tile state (arch_prctl 0x1023)."""
    if shutil.which("objdump") is None:
        pytest.skip("needs objdump (binutils)")
    library = llama_lib() / "libggml-cpu-sapphirerapids.so"
    code = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True, check=True
    )
    operands = TILE_CONFIG_LOAD.findall(code.stdout)
    assert operands, "no ldtilecfg in the AMX variant"
    assert all(operand.endswith("(%rip)") for operand in operands), operands
    assert "$0x1023,%esi" in code.stdout  # ARCH_REQ_XCOMP_PERM, asked where tiles are configured


def test_every_variant_this_cpu_runs_passes_its_self_test() -> None:
    variants = runnable()
    assert variants, "no CPU variant fits this CPU"
    assert [v.score for v in variants] == sorted((v.score for v in variants), reverse=True)
    for variant in variants:
        outcome = self_test(llama_lib(), variant, COMMON_TYPES)
        assert outcome.failure is None, f"{variant.name}: {outcome.failure}"
        assert outcome.passed == frozenset(COMMON_TYPES)


def test_the_self_test_runs_the_kernels_a_model_would_use() -> None:
    """Each weight type in the plain CPU buffer, and in the repacked (and, on AMX CPUs, tile) buffers that
    llama.cpp would put a model's weights in on this CPU."""
    best = runnable()[0]
    command = [sys.executable, "-m", "menlo_cortex.runtime.models.cpu_selftest", str(llama_lib()), best.name]
    done = subprocess.run([*command, ",".join(COMMON_TYPES)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    ran = json.loads(done.stdout)["ran"]
    assert set(ran["CPU"]) == set(COMMON_TYPES)
    if "avx2" in host_cpu_flags():  # llama.cpp repacks q4_0 for AVX2 and up
        assert "q4_0" in ran["CPU_REPACK"]
    if {"amx_tile", "amx_int8"} <= host_cpu_flags():
        assert best.name == "sapphirerapids"
        assert {"q4_0", "q8_0", "q4_K", "q6_K"} <= set(ran["AMX"]), ran  # tile kernels ran, on 4 threads


def test_a_wrong_product_is_told_from_quantisation_error() -> None:
    exact = np.random.default_rng(1).standard_normal((24, 64))
    assert relative_error(exact * (1 + 1e-3), exact) < TOLERANCE
    assert relative_error(np.zeros_like(exact), exact) > TOLERANCE
    assert relative_error(exact[::-1], exact) > TOLERANCE  # rows mixed up
    broken = exact.copy()
    broken[3, 5] = np.nan
    assert relative_error(broken, exact) > TOLERANCE


def test_a_variant_that_dies_is_skipped_for_the_next_best(tmp_path: Path) -> None:
    best = runnable()[0].name
    fault = stand_in(tmp_path, "zzbroken", "SIGILL")
    root = llama_copy(tmp_path / "site", [v.name for v in runnable()], {fault.name: fault})
    cache = tmp_path / "data" / "cpu-selftest.json"
    first = start_with(root, cache)
    assert first.returncode == 0, first.stderr
    assert f"CPU variant zzbroken failed its self-test (SIGILL); using {best}" in first.stderr
    assert "CPU variant zzbroken: self-test" in first.stderr
    assert f"CPU variant {best}: self-test" in first.stderr
    status = json.loads(first.stdout)["status"]
    assert status["cpu_variant"] == best
    assert status["cpu_variants_failed"] == [{"variant": "zzbroken", "reason": "SIGILL"}]
    again = start_with(root, cache)  # a normal start: from the kept results, no child process
    assert again.returncode == 0, again.stderr
    assert "self-test of" not in again.stderr
    assert f"CPU variant zzbroken failed its self-test (SIGILL); using {best}" in again.stderr
    assert not list(tmp_path.rglob("core*"))


def test_the_fallback_variant_serves_the_model(tmp_path: Path, test_model_path: Path) -> None:
    fault = stand_in(tmp_path, "zzbroken", "SIGSEGV")
    root = llama_copy(tmp_path / "site", [v.name for v in runnable()], {fault.name: fault})
    done = start_with(root, tmp_path / "cache.json", test_model_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"]["cpu_variant"] == runnable()[0].name
    assert result["text"].strip()


@pytest.mark.timeout(600)
def test_each_variant_this_cpu_runs_decodes_the_test_model(tmp_path: Path, test_model_path: Path) -> None:
    """One child process per variant, with only that variant in its llama_cpp: the greedy answers agree."""
    answers = {}
    for variant in runnable():
        root = llama_copy(tmp_path / variant.name, [variant.name])
        done = start_with(root, tmp_path / variant.name / "cache.json", test_model_path)
        assert done.returncode == 0, f"{variant.name}: {done.stderr[-2000:]}"
        result = json.loads(done.stdout)
        assert result["status"]["cpu_variant"] == variant.name
        answers[variant.name] = result["text"]
    print(answers)
    assert all(text.strip() for text in answers.values())


def test_a_hanging_self_test_is_killed_at_its_deadline(tmp_path: Path) -> None:
    hang = stand_in(tmp_path, "zzhang", "hang")
    root = llama_copy(tmp_path / "site", [], {hang.name: hang})
    outcome = self_test(root / "llama_cpp" / "lib", Variant("zzhang", hang, 1), ["q4_0"], timeout_s=3)
    assert outcome.failure == "timed out after 3 s"
    assert outcome.passed == frozenset()
    mapped = [p for p in Path("/proc").glob("[0-9]*") if _maps_contain(p, "libggml-cpu-zzhang.so")]
    assert not mapped, "the hung child (or one of its group) is still running"


def _maps_contain(process: Path, name: str) -> bool:
    try:
        return name in (process / "maps").read_text()
    except OSError:
        return False


def test_a_cpu_with_no_usable_variant_is_a_clear_error(tmp_path: Path, cortex_command: list[str]) -> None:
    libraries = {
        lib.name: lib for lib in (stand_in(tmp_path, "zzill", "SIGILL"), stand_in(tmp_path, "zzsegv", "SIGSEGV"))
    }
    root = llama_copy(tmp_path / "site", [], libraries)
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_text(textwrap.dedent(f"""\
        version: 1
        data: {{path: {tmp_path / "data"}}}
        models: []
        """))  # fmt: skip
    environ = {**os.environ, "PYTHONPATH": str(root)}
    for command in (["validate", "--preflight", "start"], ["start"]):
        done = subprocess.run(
            [*cortex_command, *command, "-f", str(cortexfile)],
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
        )
        assert done.returncode == 1, done.stderr
        assert f"no CPU variant of llama.cpp in {root / 'llama_cpp' / 'lib'} runs on this CPU" in done.stderr
        assert "tried zzill (SIGILL), zzsegv (SIGSEGV)" in done.stderr or "tried zzsegv (SIGSEGV), zzill (SIGILL)" in (
            done.stderr
        )
        assert re.search(r"flags: .*\bsse2\b", done.stderr)
        assert "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("core*"))


def test_kept_results_are_bounded_and_a_damaged_file_costs_only_a_self_test(tmp_path: Path) -> None:
    path = tmp_path / "cpu-selftest.json"
    best = runnable()[0]
    path.write_text("{ not json")
    cache = SelfTestCache(path)
    assert cache.get(best) is None
    cache.put(best, cpu_variants.Outcome(frozenset({"q4_0"})))
    assert SelfTestCache(path).get(best) == cpu_variants.Outcome(frozenset({"q4_0"}))
    document = json.loads(path.read_text())
    document["version"] = 99
    path.write_text(json.dumps(document))
    assert SelfTestCache(path).get(best) is None  # another layout: not trusted
    for number in range(cpu_variants.CACHE_ENTRIES + 5):
        cache.entries[f"other-{number}"] = {"variant": "x", "passed": [], "failure": None}
    cache.put(best, cpu_variants.Outcome(frozenset({"q8_0"})))
    kept = json.loads(path.read_text())["entries"]
    assert len(kept) == cpu_variants.CACHE_ENTRIES
    assert cache.key(best) in kept
    assert "other-0" not in kept  # the oldest went


def test_a_model_of_an_untested_weight_type_is_tested_before_it_loads(tmp_path: Path) -> None:
    best = runnable()[0]
    cache = SelfTestCache(tmp_path / "kept.json")
    first = cpu_variants.checked(llama_lib(), best, frozenset(COMMON_TYPES), cache)
    assert first.failure is None
    wider = cpu_variants.checked(llama_lib(), best, frozenset({"q4_K", "iq3_s"}), cache)
    assert wider.failure is None
    assert wider.passed == frozenset(COMMON_TYPES) | {"iq3_s"}
    assert SelfTestCache(tmp_path / "kept.json").get(best) == wider
