"""`cortex models fit` on this machine, with the test model: the JSON's shape, the plan's arithmetic, the
bandwidth measured once and cached, and the models that do not fit or are not here."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from menlo_cortex.benchmark.fit import fit_models, this_machine
from menlo_cortex.cortexfile import catalogue
from menlo_cortex.cortexfile.loader import load
from menlo_cortex.runtime.models.backends import llama_lib_dir
from menlo_cortex.runtime.models.batching.offload import GPU_MARGIN
from menlo_cortex.runtime.models.batching.plan import MIB, read_sizes
from menlo_cortex.runtime.models.cpu_variants import rank, variant_files
from menlo_cortex.runtime.models.memory_check import found_in, memory_warnings
from menlo_cortex.runtime.models.model_store import ModelStore
from menlo_cortex.runtime.models.weight_copies import NONE, Kernels

from tests.conftest import TEST_MODEL_SHA256
from tests.runtime.cortex_server import MODEL_BLOCK
from tests.runtime.download_servers import Route, file_server

ABSENT = "  - id: absent\n    source: absent-q4.gguf\n"


def fit(tmp_path: Path, data: Path, body: str = "", models: str = MODEL_BLOCK) -> tuple[int, dict[str, Any]]:
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_text("version: 1\n" + body + models, encoding="utf-8")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "menlo_cortex", "models", "fit", "-f", str(cortexfile), "--datapath", str(data)]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_the_test_model_fits_with_its_memory_and_speed(tmp_path: Path, test_data_dir: Path) -> None:
    code, report = fit(tmp_path, test_data_dir)
    assert code == 0
    machine = report["machine"]
    assert machine["cores"] == len(os.sched_getaffinity(0))
    assert 0 < machine["memory_available"] <= machine["memory_total"]
    assert machine["memory_bandwidth"] > 100_000_000  # bytes/s: any machine that runs this moves 0.1 GB/s
    assert machine["bandwidth_measured_now"] is True
    runnable = [variant.name for variant in rank(variant_files(llama_lib_dir()))]
    assert machine["llama_cpp"]["cpu_variant"] in runnable  # the best that passed its self-test, as start picks
    assert "CPU" in machine["llama_cpp"]["names"]
    assert isinstance(machine["gpus"], list)
    (model,) = report["models"]
    memory = model["memory"]
    copies = memory["weight_copies"] - memory["reclaimable"]  # what this CPU module's kernels copy, less originals
    assert memory["weight_copies"] >= memory["reclaimable"] >= 0
    assert memory["total"] == memory["weights"] + copies + memory["kv_cache"] + memory["buffers"]
    assert memory["weights"] == (test_data_dir / "models" / f"{TEST_MODEL_SHA256}.gguf").stat().st_size
    assert (model["id"], model["fits"], model["reason"], model["context"]) == ("gemma", True, None, 1024)
    assert model["tokens_per_s"] > 0
    assert fit(tmp_path, test_data_dir)[1]["machine"]["bandwidth_measured_now"] is False  # measured once


def test_a_gpu_takes_the_layers_that_fit_and_they_leave_host_memory(tmp_path: Path, test_data_dir: Path) -> None:
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_text(f"version: 1\ndata:\n  path: {test_data_dir}\n{MODEL_BLOCK}", encoding="utf-8")
    config = load(cortexfile).config
    here = this_machine(bandwidth_needed=False, gpus_needed=False)
    (on_cpu,) = fit_models(config, here, NONE, cortexfile=cortexfile)

    def with_gpu(free_mb: int) -> dict[str, Any]:
        gpu = {"name": "GPU", "memory_total": 80 << 30, "memory_free": free_mb * MIB, "why_unknown": None}
        (row,) = fit_models(config, dataclasses.replace(here, gpus=[gpu]), NONE, cortexfile=cortexfile)
        return row

    every = with_gpu(80_000)
    room_mb = (every["memory"]["gpu"] - every["memory"]["weights"] // 4) // MIB  # a quarter of the weights short
    tight = with_gpu(GPU_MARGIN // MIB + room_mb)
    sizes = read_sizes(test_data_dir / "models" / f"{TEST_MODEL_SHA256}.gguf")
    layers = sizes.shape.layers
    assert (on_cpu["gpu_layers"], on_cpu["memory"]["gpu"], every["gpu_layers"]) == (0, 0, layers + 1)
    assert on_cpu["memory"]["total"] - every["memory"]["total"] >= sizes.layout.layers  # and the KV cache
    assert every["tokens_per_s"] is None  # this CPU's bandwidth says nothing of a GPU's speed
    assert 0 < tight["gpu_layers"] < layers + 1
    assert tight["memory"]["gpu"] <= room_mb * MIB
    assert all(row["fits"] for row in (on_cpu, every, tight))


def test_an_integrated_gpu_takes_every_layer_in_host_memory(tmp_path: Path, test_data_dir: Path) -> None:
    """As the runtime plans it where llama.cpp finds only a Jetson's or an APU's GPU: every layer there, counted
    in host memory without the CPU kernels' copies; no CPU speed claimed."""
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_text(f"version: 1\ndata:\n  path: {test_data_dir}\n{MODEL_BLOCK}", encoding="utf-8")
    config = load(cortexfile).config
    here = this_machine(bandwidth_needed=False, gpus_needed=False)
    amx = Kernels(frozenset({"AMX_INT8", "AVX512_VNNI"}))  # kernels that copy weights: the copies must go
    (on_cpu,) = fit_models(config, here, amx, cortexfile=cortexfile, gpu_free=[])
    (integrated,) = fit_models(config, here, amx, cortexfile=cortexfile, gpu_free=[], integrated=True)
    layers = read_sizes(test_data_dir / "models" / f"{TEST_MODEL_SHA256}.gguf").shape.layers
    assert (on_cpu["gpu_layers"], integrated["gpu_layers"]) == (0, layers + 1)
    assert on_cpu["memory"]["weight_copies"] > 0 == integrated["memory"]["weight_copies"]
    assert integrated["memory"]["gpu"] == 0  # none of its own: its buffers and runtime count in the host's memory
    copies = on_cpu["memory"]["weight_copies"] - on_cpu["memory"]["reclaimable"]
    assert integrated["memory"]["total"] > on_cpu["memory"]["total"] - copies + GPU_MARGIN
    assert integrated["tokens_per_s"] is None
    assert integrated["fits"]


def test_a_number_of_layers_the_gpu_cannot_hold_is_explained(tmp_path: Path, test_data_dir: Path) -> None:
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_text(f"version: 1\ndata:\n  path: {test_data_dir}\n{MODEL_BLOCK}    gpu_layers: -1\n")
    resolved = load(cortexfile)
    here = this_machine(bandwidth_needed=False, gpus_needed=False)
    small = GPU_MARGIN + 100 * MIB
    (row,) = fit_models(resolved.config, here, NONE, cortexfile=cortexfile, gpu_free=[small])
    assert row["fits"] is False
    assert row["gpu_layers"] == read_sizes(test_data_dir / "models" / f"{TEST_MODEL_SHA256}.gguf").shape.layers + 1
    need = f"{row['memory']['gpu'] / MIB:.0f} MiB of GPU memory"
    assert row["reason"].startswith(f"{row['gpu_layers']} layers need {need}, 100 MiB free (less llama.cpp's margin)")
    store = ModelStore(resolved.config, test_data_dir, cortexfile)
    (warned,) = memory_warnings(resolved, (64 << 30, "available"), None, found_in(store), NONE, gpu_room=100 * MIB)
    assert warned.key == "models[0].gpu_layers"
    assert f"layers on the GPU need about {need}; 100 MiB is free" in warned.message
    assert memory_warnings(resolved, (64 << 30, "available"), None, found_in(store), NONE, gpu_room=None) == []


def test_a_model_too_big_for_the_budget_and_one_not_here_are_explained(tmp_path: Path, test_data_dir: Path) -> None:
    code, report = fit(tmp_path, test_data_dir, "server:\n  limits:\n    memory_budget_mb: 300\n", MODEL_BLOCK + ABSENT)
    assert code == 1
    rows = {row["id"]: row for row in report["models"]}
    assert rows["gemma"]["fits"] is False
    assert "MiB server.limits.memory_budget_mb" in rows["gemma"]["reason"]
    assert rows["absent"]["memory"] is None
    assert rows["absent"]["reason"].startswith("not on this machine: model `absent`: no model file found")


def test_validate_preflight_start_warns_of_a_model_that_will_not_fit(tmp_path: Path, test_data_dir: Path) -> None:
    cortexfile = tmp_path / "Cortexfile.yaml"
    budget = "server:\n  limits:\n    memory_budget_mb: 260\n"
    cortexfile.write_text(
        f"version: 1\n{budget}engines:\n  llama_cpp:\n    parallel: 2\n{MODEL_BLOCK}", encoding="utf-8"
    )
    command = [sys.executable, "-m", "menlo_cortex", "validate", "-f", str(cortexfile), "--preflight", "start",
               "--datapath", str(test_data_dir)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr  # a warning: memory comes and goes while a server runs
    assert f"{cortexfile}:9:5: models[0]: warning: needs about" in done.stderr
    assert "KV cache of 2 x 1024 tokens, buffers) and the server 80 MiB; 260 MiB server.limits.memory_budget_mb" in (
        done.stderr
    )


def test_a_remote_model_is_sized_from_its_header_read_by_range_and_cached(
    tmp_path: Path, test_data_dir: Path, test_model_path: Path
) -> None:
    local = fit(tmp_path, test_data_dir)[1]["models"][0]
    with file_server() as hub:
        hub.routes["/org/repo/resolve/main/gemma.gguf"] = Route(test_model_path.read_bytes(), ranges=True)
        network = f"network:\n  huggingface:\n    endpoint: '{hub.url('')}'\n"
        remote = MODEL_BLOCK.replace("preset: gemma3-270m-q4km", "source: hf://org/repo/gemma.gguf")
        code, first = fit(tmp_path, tmp_path / "empty-store", network, remote)
        _, again = fit(tmp_path, tmp_path / "empty-store", network, remote)

    row = first["models"][0]
    assert code == 0
    assert row["header"] == "range request"
    assert (row["memory"], row["context"], row["slots"]) == (local["memory"], local["context"], local["slots"])
    asked = [seen.headers["Range"] for seen in hub.seen]
    assert asked[0] == f"bytes=0-{(4 << 20) - 1}"  # the header, never the weights
    assert len(asked) <= 3
    assert again["models"][0]["header"] == "range request (cached)"
    assert len(hub.seen) == len(asked)
    assert not (tmp_path / "empty-store" / "models").exists()


def catalogue_fit(tmp_path: Path, data: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """`cortex models fit` without a Cortexfile; the hub is a local server that has none of the files."""
    with file_server() as hub:
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "CORTEX_NETWORK__HUGGINGFACE__ENDPOINT":
               hub.url("")}  # fmt: skip
        command = [sys.executable, "-m", "menlo_cortex", "models", *flags, "--datapath", str(data)]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_the_catalogue_is_ranked_for_this_machine_and_for_a_board(tmp_path: Path, test_data_dir: Path) -> None:
    done = catalogue_fit(tmp_path, test_data_dir, "fit", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["id"]: row for row in json.loads(done.stdout)["models"]}
    assert set(rows) == {entry.name for entry in catalogue.entries()}
    assert rows["gemma3-270m-q4km"]["header"] == "file"  # in the store: its own header
    offline = rows["qwen2.5-0.5b-instruct-q4km"]
    assert offline["header"].startswith("sized from the catalogue: its header was not read (")
    assert offline["memory"]["weights"] == offline["size_bytes"] == 491400032
    assert (offline["kind"], offline["quantization"], offline["license"]) == ("chat", "Q4_K_M", "apache-2.0")
    assert rows["bge-small-en-v1.5-f16"]["tokens_per_s"] is None  # embeddings generate no tokens

    board = catalogue_fit(tmp_path, test_data_dir, "fit", "--json", "--hardware", "raspberry-pi-4")
    assert board.returncode == 0, board.stderr
    on_board = json.loads(board.stdout)
    assert all(row["tokens_per_s"] is None for row in on_board["models"])  # a Pi's speed is unknown
    assert on_board["machine"]["llama_cpp"] is None  # this machine's CPU variant says nothing of a Pi's
    on_pi = {row["id"]: row for row in on_board["models"]}
    jetson = catalogue_fit(tmp_path, test_data_dir, "fit", "--json", "--hardware", "jetson-orin")
    on_jetson = {row["id"]: row for row in json.loads(jetson.stdout)["models"]}
    gemma, offline = on_jetson["gemma3-270m-q4km"], on_jetson["qwen2.5-0.5b-instruct-q4km"]
    assert (on_pi["gemma3-270m-q4km"]["gpu_layers"], gemma["gpu_layers"]) == (0, read_sizes(
        test_data_dir / "models" / f"{TEST_MODEL_SHA256}.gguf").shape.layers + 1)  # fmt: skip
    assert gemma["memory"]["integrated_gpu"] > GPU_MARGIN  # the GPU's buffers and runtime, in the board's memory
    assert offline["memory"]["total"] == on_pi["qwen2.5-0.5b-instruct-q4km"]["memory"]["total"] + GPU_MARGIN


def test_a_board_without_a_memory_figure_is_refused(tmp_path: Path) -> None:
    done = catalogue_fit(tmp_path, tmp_path, "fit", "--hardware", "x86-64-avx2")
    assert done.returncode == 2
    assert "x86-64-avx2.yaml: target.memory_mb: the x86-64-avx2 recipe names no memory" in done.stderr
    unknown = catalogue_fit(tmp_path, tmp_path, "fit", "--hardware", "raspberry-pi-6")
    assert (unknown.returncode, "did you mean `raspberry-pi-5`?" in unknown.stderr) == (2, True)


def test_models_list_shows_the_catalogue_and_what_the_store_holds(tmp_path: Path, test_data_dir: Path) -> None:
    done = catalogue_fit(tmp_path, test_data_dir, "list", "--json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    names = [entry["name"] for entry in listing["catalogue"]]
    assert names == sorted(names)
    assert len(names) >= 15
    kinds = {entry["kind"] for entry in listing["catalogue"]}
    assert kinds == {"chat", "embedding", "rerank"}
    stored = {found["sha256"]: found for found in listing["store"]["files"]}
    assert stored[TEST_MODEL_SHA256]["holds"] == ["preset gemma3-270m-q4km"]
    table = catalogue_fit(tmp_path, test_data_dir, "list")
    assert "qwen2.5-0.5b-instruct-q4km   chat" in table.stdout
