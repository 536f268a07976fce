"""Run-time dispatch between llama.cpp's CPU variants: the portable wheel carries one CPU module per
x86 feature level and the runtime has ggml load the best for the CPU it runs on. An older CPU is
played by qemu's user-mode emulator, which runs this venv's Python on a CPU model of our choosing."""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from menlo_cortex.runtime.models.backends import (
    _warn_of_unused_gpu_backends,
    llama_lib_dir,
    load_backends,
    route_llama_logs,
)
from menlo_cortex.runtime.models.ggml import Device, devices, loaded_ggml

from tests.cpu_variants import VARIANTS, host_cpu_flags, is_best_fit

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="CPU variants are built for x86-64 only")
LLAMA_LIB = (
    Path(sys.prefix)
    / "lib"
    / f"python{sys.version_info.major}.{sys.version_info.minor}"
    / "site-packages"
    / "llama_cpp"
    / "lib"
)
# Generates two tokens on whatever CPU runs it and says which CPU module ggml chose.
EMULATED_RUN = """
import json, sys
from llama_cpp import Llama
from menlo_cortex.runtime.models.backends import load_backends
backends = load_backends()
llama = Llama(model_path=sys.argv[1], n_ctx=64, n_threads=1, verbose=False)
text = llama.create_completion("The sky is", max_tokens=2, temperature=0)["choices"][0]["text"]
print(json.dumps({"variant": backends.cpu_variant, "names": backends.names, "text": text}))
"""


def test_the_wheel_carries_every_x86_variant() -> None:
    shipped = {
        path.name.removeprefix("libggml-cpu-").removesuffix(".so") for path in LLAMA_LIB.glob("libggml-cpu-*.so")
    }
    assert shipped == set(VARIANTS)


def test_this_host_runs_the_best_variant_its_cpu_allows() -> None:
    backends = load_backends()
    assert backends.dynamic
    assert "CPU" in backends.names
    assert backends.cpu_variant is not None
    assert is_best_fit(backends.cpu_variant, host_cpu_flags()), backends.cpu_variant
    assert "CPU variant " + backends.cpu_variant in backends.describe()
    mapped = set(re.findall(r"/libggml-cpu-([\w.]+)\.so$", Path("/proc/self/maps").read_text(), re.MULTILINE))
    assert mapped == {backends.cpu_variant}  # ggml loaded the one chosen, and no other


def test_ggml_lists_this_machines_cpu_with_its_memory_and_no_gpu() -> None:
    backends = load_backends()
    listed = devices(loaded_ggml(llama_lib_dir()))  # type: ignore[arg-type]
    cpu = next(device for device in listed if device.kind == "cpu")
    memory_kib = int(re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    assert abs(cpu.memory_total / 1024 - memory_kib) < memory_kib * 0.05
    assert 0 < cpu.memory_free <= cpu.memory_total
    assert backends.gpus == tuple(device for device in listed if device.kind in ("gpu", "igpu")) == ()
    assert "MiB" not in backends.describe()


def test_a_gpu_backend_that_finds_no_gpu_says_so_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    gpu = Device("CUDA0", "NVIDIA H100 80GB HBM3", "gpu", 85 << 30, 80 << 30)
    with caplog.at_level(logging.WARNING, logger="cortex.models"):
        _warn_of_unused_gpu_backends(("CUDA", "CPU"), ())
        _warn_of_unused_gpu_backends(("CUDA", "CPU"), (gpu,))
        _warn_of_unused_gpu_backends(("CPU",), ())
        _warn_of_unused_gpu_backends(("ROCm", "CPU"), ())  # HIP linked in registers as ROCm
    assert [record.getMessage() for record in caplog.records] == [
        "llama.cpp's cuda backend is installed but found no GPU to use: models run on the CPU",
        "llama.cpp's hip backend is installed but found no GPU to use: models run on the CPU",
    ]


def test_the_layers_llama_cpp_puts_on_a_gpu_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """llama.cpp says it at info level, with a GPU only; its other information stays out."""
    forward = route_llama_logs()
    with caplog.at_level(logging.INFO, logger="cortex.llama"):
        forward(2, b"load_tensors: offloaded 19/19 layers to GPU\n", None)
        forward(2, b"load_tensors: offloading output layer to GPU\n", None)
        forward(2, b"print_info: general.name = x offloaded 1/1 layers to GPU\nFORGED\n", None)  # a model's metadata
    assert [record.getMessage() for record in caplog.records] == ["load_tensors: offloaded 19/19 layers to GPU"]


def test_a_wheel_without_cpu_modules_fails_with_the_folder_named(tmp_path: Path) -> None:
    broken = tmp_path / "llama_cpp"
    shutil.copytree(LLAMA_LIB.parent, broken, ignore=shutil.ignore_patterns("libggml-cpu-*.so", "__pycache__"))
    script = "from menlo_cortex.runtime.models.backends import load_backends; load_backends()"
    environ = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert f"BackendError: llama.cpp loaded no backend from {broken / 'lib'}: no libggml-cpu-*.so there" in done.stderr


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the emulated run alone may take up to 900 s
@pytest.mark.skipif(shutil.which("qemu-x86_64") is None, reason="needs qemu-user (scripts/setup.sh installs it)")
# Westmere: no AVX (the x86-64 boot test's VM, tests/images/disk/qemu.py), numpy and its OpenBLAS included.
@pytest.mark.parametrize(
    ("cpu", "variant"), [("Westmere", "sse42"), ("SandyBridge", "sandybridge"), ("IvyBridge", "ivybridge")]
)
def test_an_older_cpu_gets_kernels_it_can_run(test_model_path: Path, cpu: str, variant: str) -> None:
    command = ["qemu-x86_64", "-cpu", cpu, sys.executable, "-c", EMULATED_RUN, str(test_model_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["variant"] == variant
    assert result["names"] == ["CPU"]
    assert result["text"]
