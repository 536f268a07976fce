"""`cortex models fit` on this machine, with the test model: the JSON's shape, the plan's arithmetic, the
bandwidth measured once and cached, and the models that do not fit or are not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import TEST_MODEL_SHA256
from tests.runtime.cortex_server import MODEL_BLOCK

ABSENT = '  - id: absent\n    source: hf://example/absent/absent-q4.gguf\n    sha256: "' + "0" * 64 + '"\n'


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
    (model,) = report["models"]
    memory = model["memory"]
    assert memory["total"] == memory["weights"] + memory["kv_cache"] + memory["buffers"]
    assert memory["weights"] == (test_data_dir / "models" / f"{TEST_MODEL_SHA256}.gguf").stat().st_size
    assert (model["id"], model["fits"], model["reason"], model["context"]) == ("gemma", True, None, 1024)
    assert model["tokens_per_s"] > 0
    assert fit(tmp_path, test_data_dir)[1]["machine"]["bandwidth_measured_now"] is False  # measured once


def test_a_model_too_big_for_the_budget_and_one_not_here_are_explained(tmp_path: Path, test_data_dir: Path) -> None:
    code, report = fit(tmp_path, test_data_dir, "server:\n  limits:\n    memory_budget_mb: 300\n", MODEL_BLOCK + ABSENT)
    assert code == 1
    rows = {row["id"]: row for row in report["models"]}
    assert rows["gemma"]["fits"] is False
    assert "MiB server.limits.memory_budget_mb" in rows["gemma"]["reason"]
    assert rows["absent"]["memory"] is None
    assert "cortex pull" in rows["absent"]["reason"]


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
    assert "KV cache of 2 x 1024 tokens, buffers); 260 MiB server.limits.memory_budget_mb" in done.stderr
