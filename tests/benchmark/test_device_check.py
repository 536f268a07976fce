"""scripts/device-check.sh's CPU half (the GPU check's build flags and bench wiring), where CI can run it. The
model synthesis it uses is tested in test_gguf_synth.py; the whole run on a CPU (`run --cpu`) needs a built
llama-server (scripts/llama-server.sh, ~15 minutes), which CI does not build."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from menlo_cortex.cortexfile.loader import load

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "device-check.sh"
sys.path.insert(0, str(ROOT / "bench"))
import compare  # noqa: E402  (bench/, a script folder)


def device_check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], check=False, capture_output=True, text=True, timeout=60,
                          env=env)  # fmt: skip


@pytest.mark.parametrize(("capability", "architecture"), [("9.0", "90"), ("8.6", "86"), ("12.0", "120")])
def test_cuda_is_built_for_the_gpu_at_hand_only(capability: str, architecture: str) -> None:
    flags = device_check("flags", capability)
    assert flags.returncode == 0, flags.stderr
    assert flags.stdout.split() == [
        "-DGGML_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={architecture}", "-DGGML_NATIVE=ON",
        "-DBUILD_SHARED_LIBS=ON", "-DGGML_CCACHE=OFF",
    ]  # fmt: skip


@pytest.mark.parametrize("capability", ["90", "", "9.0;reboot", "9.0 -DX=1", "sm_90"])
def test_a_capability_that_is_not_one_is_refused(capability: str) -> None:
    refused = device_check("flags", capability)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert f"not a compute capability: '{capability}'" in refused.stderr


def test_a_run_says_what_it_lacks(tmp_path: Path) -> None:
    no_out = device_check("run", "--cpu", env={"PATH": "/usr/bin:/bin"})
    assert no_out.returncode == 2
    assert "OUT is not set" in no_out.stderr
    unknown = device_check("fly")
    assert unknown.returncode == 2
    assert "usage: scripts/device-check.sh pack | run [--cpu | --rehearse] | flags CAPABILITY" in unknown.stderr


def wiring(tmp_path: Path, slots: int, gpu_layers: int) -> argparse.Namespace:
    model = tmp_path / "synthetic.gguf"
    model.write_bytes(b"GGUF")
    return argparse.Namespace(model=model, name="synthetic", context=2048, threads=16, chat_format="gemma",
                              data=tmp_path, slots=slots, gpu_layers=gpu_layers, llama_server="/opt/llama")  # fmt: skip


def test_both_servers_get_the_devices_slots_and_every_layer_on_the_gpu(tmp_path: Path) -> None:
    args = wiring(tmp_path, slots=64, gpu_layers=-1)
    config = load(compare.write_cortexfile(args)).config
    model = config.models[0]
    assert (config.engines.llama_cpp.parallel, model.context_size, model.gpu_layers) == (64, 2048, -1)
    limits = config.server.limits
    assert limits.max_connections_per_client > 64  # 64 streams from one client, and the bench's own readings
    assert limits.max_connections >= limits.max_connections_per_client
    command = compare.llama_server(args, 8080)
    pairs = dict(zip(command[1::2], command[2::2], strict=False))
    assert (pairs["-np"], pairs["-c"], pairs["-ngl"]) == ("64", str(64 * 2048), "999")


def test_a_model_id_that_yaml_would_read_as_something_else_stays_a_string(tmp_path: Path) -> None:
    args = wiring(tmp_path, slots=4, gpu_layers=0)
    args.name = "null"
    assert load(compare.write_cortexfile(args)).config.models[0].id == "null"


def test_on_the_cpu_nothing_goes_to_a_gpu(tmp_path: Path) -> None:
    args = wiring(tmp_path, slots=4, gpu_layers=0)
    assert load(compare.write_cortexfile(args)).config.models[0].gpu_layers == 0
    command = compare.llama_server(args, 8080)
    assert command[command.index("-ngl") + 1] == "0"
