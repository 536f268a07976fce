"""`cortex bench` end to end on the real test model: the appliance it starts from a Cortexfile, a second Cortex
process measured through --url, the run store, the card, and every way a run can stop early (a model the
server does not list, a server that dies mid-run, Ctrl-C). Shapes and consistency only, never timings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import TEST_MODEL_SHA256, find_free_port
from ..processes import stop

pytestmark = [pytest.mark.model, pytest.mark.timeout(600)]
# Small enough to end in seconds, large enough that every figure exists.
WORKLOAD = ["--max-tokens", "8", "--rounds", "2", "--long-prompt-tokens", "128", "--streams", "1,3"]
READY_S = 120


def cortexfile(folder: Path, model: Path) -> Path:
    path = folder / "Cortexfile.yaml"
    path.write_text(
        "version: 1\nmodels:\n  - id: gemma\n"
        f"    source: {model}\n    sha256: {TEST_MODEL_SHA256}\n    chat_format: gemma\n    context_size: 1024\n"
        f"data:\n  path: {folder / 'data'}\n",
        encoding="utf-8",
    )
    return path


def bench(
    *args: str, timeout: float = 300, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "menlo_cortex", "bench", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env)


class Server:
    """A second `cortex start`, the server --url measures."""

    def __init__(self, file: Path) -> None:
        self.port = find_free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = file.with_name(f"server-{self.port}.log")
        command = [sys.executable, "-m", "menlo_cortex", "start", "-f", str(file), "--port", str(self.port)]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_S
        while not self._ready():
            assert self.process.poll() is None, self.log.read_text(errors="replace")
            assert time.monotonic() < deadline, "cortex start was not ready"
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def appliance(folder: Path, test_model_path: Path) -> Path:
    return cortexfile(folder, test_model_path)


@pytest.fixture(scope="module")
def server(appliance: Path) -> Iterator[Server]:
    started = Server(appliance)
    yield started
    stop(started.process)


@pytest.fixture(scope="module")
def local_run(appliance: Path, folder: Path) -> dict[str, Any]:
    done = bench("-f", str(appliance), *WORKLOAD, "--json", str(folder / "local.json"))
    assert done.returncode == 0, done.stderr
    assert "stored as run 1" in done.stderr
    return dict(json.loads((folder / "local.json").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def remote_run(server: Server, folder: Path, appliance: Path) -> dict[str, Any]:
    args = ["--url", server.url, "--model", "gemma", "--pid", str(server.process.pid), "--label", "second cortex"]
    kinds = ["--type", "runtime,load,stability", "--duration", "3s"]
    done = bench(*args, *kinds, *WORKLOAD, "-f", str(appliance), "--json", str(folder / "remote.json"))
    assert done.returncode == 0, done.stderr
    return dict(json.loads((folder / "remote.json").read_text(encoding="utf-8")))


def test_the_readmes_url_line_runs_in_a_folder_without_a_cortexfile(server: Server, tmp_path: Path) -> None:
    """`cortex bench --url URL --model M` as the README shows it, from an empty folder: the run is kept in the
    default data folder, where `cortex bench runs` (there too) finds it."""
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    done = bench("--url", server.url, "--model", "gemma", "--type", "runtime", *WORKLOAD, cwd=empty, env=env)
    assert done.returncode == 0, done.stderr
    assert "stored as run 1" in done.stderr
    assert (tmp_path / "xdg" / "cortex" / "cortex.db").is_file()
    listed = bench("runs", cwd=empty, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "gemma" in listed.stdout
    assert list(empty.iterdir()) == []


def test_a_local_run_measures_every_quick_kind(local_run: dict[str, Any]) -> None:
    assert local_run["complete"] is True
    assert local_run["kinds"] == ["init", "runtime", "load"]
    target, host = local_run["target"], local_run["host"]
    assert (target["mode"], target["model"], target["model_sha256"]) == ("cortexfile", "gemma", TEST_MODEL_SHA256)
    assert len(target["config_hash"]) == 64
    assert host["cores"] >= 1
    assert host["llama_cpp_python_version"] == "0.3.36"
    init = local_run["results"]["init"]
    assert 0 < init["cold"]["health_s"] < init["cold"]["ready_s"]
    assert 0 < init["warm"]["health_s"] < init["warm"]["ready_s"]
    assert "posix_fadvise" in init["cold"]["method"]
    assert init["peak_at_ready_bytes"] > 100_000_000  # the model is resident
    assert init["steady_bytes"] > 100_000_000
    assert local_run["memory"]["samples"]
    # The same process's high-water mark at the end: never below what it held at ready or once settled.
    assert local_run["memory"]["peak_bytes"] >= max(init["peak_at_ready_bytes"], init["steady_bytes"])


def _check_runtime(runtime: dict[str, Any]) -> None:
    short, long = runtime["short"], runtime["long"]
    assert short["requests"] == long["requests"] == 2
    assert long["prompt_tokens"] > 2 * short["prompt_tokens"] > 0
    assert short["completion_tokens"] == long["completion_tokens"] == 8
    for figures in (short, long):
        assert figures["generation_tokens_per_s"] > 0
        assert figures["prompt_tokens_per_s"] > 0
        assert 0 < figures["ttft_ms"]["p50"] <= figures["ttft_ms"]["p95"] <= figures["ttft_ms"]["p99"]
    gaps = runtime["token_gap_ms"]
    assert gaps["gaps"] == len(runtime["token_gaps_ms"]) > 0
    assert 0 <= gaps["p50"] <= gaps["p95"] <= gaps["p99"]
    streaming = runtime["streaming"]
    assert streaming["streamed_total_ms"] > 0
    assert streaming["whole_total_ms"] > 0
    assert streaming["streamed_tokens"] == streaming["whole_tokens"] == 8
    assert short["tokens_from"] == long["tokens_from"] == "usage"
    assert "warning" not in runtime


def _check_load(load: dict[str, Any]) -> None:
    assert sorted(load["levels"]) == ["1", "3"]
    for streams, level in load["levels"].items():
        assert level["requests"] == int(streams)
        assert level["completed"] + level["rejected_429"] + level["failed"] == level["requests"]
        assert level["completed"] == int(streams)
        assert level["tokens"] == 8 * level["completed"]
        share = 8 / level["wall_s"]  # one stream's part of the aggregate: all of them add up to it
        assert level["aggregate_tokens_per_s"] == pytest.approx(share * level["completed"])
        assert len(level["per_stream_tokens_per_s"]) == level["completed"]
        assert min(level["per_stream_tokens_per_s"]) >= share  # each over its own time, within the wall time
    assert load["queueing_baseline_streams"] == 1
    assert load["levels"]["1"]["queueing_ms"] is None
    assert isinstance(load["levels"]["3"]["queueing_ms"], float)


def test_runtime_and_load_figures_are_consistent(local_run: dict[str, Any], remote_run: dict[str, Any]) -> None:
    for run in (local_run, remote_run):
        _check_runtime(run["results"]["runtime"])
        _check_load(run["results"]["load"])


def test_a_url_run_measures_another_cortex(remote_run: dict[str, Any], server: Server) -> None:
    assert remote_run["complete"] is True
    assert remote_run["target"] | {"model_sha256": None} == {
        "mode": "url", "label": "second cortex", "model": "gemma", "url": server.url, "cortexfile": None,
        "model_sha256": None, "config_hash": None}  # fmt: skip
    assert "init" not in remote_run["results"]
    assert remote_run["memory"]["samples"], "--pid: the server's memory is sampled"
    stability = remote_run["results"]["stability"]
    assert stability["duration_s"] == 3
    assert stability["requests"] == stability["completed"] + stability["failed"]
    assert stability["completed"] >= 1
    assert stability["failed"] == 0
    assert stability["errors"] == {}
    assert stability["memory"]["samples"] >= 1


def test_runs_card_and_compare_read_the_store(
    local_run: dict[str, Any], remote_run: dict[str, Any], appliance: Path, folder: Path
) -> None:
    listed = bench("runs", "-f", str(appliance))
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [(row[0], row[-1]) for row in rows] == [("1", "complete"), ("2", "complete")]
    card = bench("card", "1", "2", "-o", str(folder / "card"), "-f", str(appliance))
    assert card.returncode == 0, card.stderr
    markdown = (folder / "card" / "README.md").read_text(encoding="utf-8")
    assert "| load | 3 streams: aggregate |" in markdown
    assert "run 2 / run 1" in markdown
    assert "<polyline" in (folder / "card" / "tokens-per-s.svg").read_text(encoding="utf-8")
    compared = bench("compare", "1", "2", "-f", str(appliance))
    assert compared.returncode == 0, compared.stderr
    row = next(line for line in compared.stdout.splitlines() if "3 streams: aggregate" in line)
    first = local_run["results"]["load"]["levels"]["3"]["aggregate_tokens_per_s"]
    second = remote_run["results"]["load"]["levels"]["3"]["aggregate_tokens_per_s"]
    assert row.split()[-1] == f"{second / first:.2f}"


def test_init_times_the_switch_to_each_other_model(folder: Path, test_model_path: Path) -> None:
    """Two models, the second loaded on first use: a first request to it, then back to the first."""
    two = folder / "two"
    two.mkdir()
    path = cortexfile(two, test_model_path)
    text = path.read_text(encoding="utf-8")
    second = "  - id: second\n" + text[text.index("    source:") : text.index("data:")] + "    load: on_demand\n"
    path.write_text(text.replace("data:", second + "data:"), encoding="utf-8")
    done = bench("-f", str(path), "--type", "init", "--json", str(two / "init.json"))
    assert done.returncode == 0, done.stderr
    switch = json.loads((two / "init.json").read_text(encoding="utf-8"))["results"]["init"]["switch_ms"]
    assert list(switch) == ["second", "gemma"]
    assert switch["second"] > 0
    assert switch["gemma"] > 0


def test_a_model_the_server_does_not_list(server: Server) -> None:
    done = bench("--url", server.url, "--model", "llama-70b")
    assert done.returncode == 2
    assert "the server does not list model `llama-70b` (it lists: gemma)" in done.stderr


def test_a_model_the_cortexfile_does_not_have(appliance: Path) -> None:
    done = bench("-f", str(appliance), "--model", "llama-70b")
    assert done.returncode == 2
    assert "no model `llama-70b` (it has: gemma)" in done.stderr


def _partial_run(folder: Path, appliance: Path, name: str, *kinds: str) -> tuple[subprocess.Popen[str], Server]:
    """A bench run against a server of its own, returned once it has a few requests behind it."""
    victim = Server(appliance)
    args = ["--url", victim.url, "--model", "gemma", *kinds, "--max-tokens", "4", "--json", str(folder / name),
            "-f", str(appliance)]  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "menlo_cortex", "bench", *args], stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    assert process.stderr is not None
    for line in process.stderr:
        if "prompt 3/" in line or " 3 requests" in line:
            return process, victim
    pytest.fail("the run never got going")


def test_a_server_dying_mid_run_keeps_what_was_measured(folder: Path, appliance: Path) -> None:
    process, victim = _partial_run(folder, appliance, "died.json", "--type", "runtime", "--rounds", "50")
    victim.process.kill()
    victim.process.wait()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    report = json.loads((folder / "died.json").read_text(encoding="utf-8"))
    assert report["complete"] is False
    assert report["stopped"] in {f"{victim.url} stopped answering (connection {how})" for how in ("refused", "lost")}
    assert report["results"]["runtime"]["short"]["requests"] >= 2  # the requests done before it died
    assert f"cortex bench: stopped: {victim.url} stopped answering" in err


def test_ctrl_c_keeps_what_was_measured(folder: Path, appliance: Path) -> None:
    process, victim = _partial_run(folder, appliance, "interrupted.json", "--type", "stability", "--duration", "5m")
    try:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        stop(victim.process)
    assert process.returncode == 130, err
    report = json.loads((folder / "interrupted.json").read_text(encoding="utf-8"))
    assert (report["complete"], report["stopped"]) == (False, "interrupted (Ctrl-C)")
    assert report["results"]["stability"]["completed"] >= 3
    listed = bench("runs", "-f", str(appliance))
    assert listed.stdout.splitlines()[-1].split()[-1] == "incomplete"
