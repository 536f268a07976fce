"""`cortex init`: a starting Cortexfile with a catalogue model chosen for this machine or a board, validated,
never replacing a file; and `cortex build` warning of a model that will not fit the device."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from menlo_cortex.cortexfile.loader import load

from tests.runtime.cortex_server import MODEL_BLOCK
from tests.runtime.download_servers import file_server


def cortex(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run offline from the hub (a local server that has none of its files), in `tmp_path`."""
    with file_server() as hub:
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "CORTEX_NETWORK__HUGGINGFACE__ENDPOINT":
               hub.url("")}  # fmt: skip
        command = [sys.executable, "-m", "menlo_cortex", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)


def test_init_writes_a_valid_commented_cortexfile_for_this_machine(tmp_path: Path) -> None:
    done = cortex(tmp_path, "init", "--datapath", str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    path = tmp_path / "Cortexfile.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=https://menlo.ai/cortex/cortexfile.schema.json\n")
    assert "# For this machine (" in text
    (model,) = load(path).config.models
    assert model.source.startswith("hf://")
    assert f"wrote Cortexfile.yaml: {model.preset}" in done.stdout

    again = cortex(tmp_path, "init")
    assert again.returncode == 2
    assert "Cortexfile.yaml: exists: cortex init never replaces a file" in again.stderr
    assert path.read_text(encoding="utf-8") == text
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["Cortexfile.yaml"]  # no leftovers


def test_init_for_a_board_keeps_to_a_quarter_of_its_memory(tmp_path: Path) -> None:
    done = cortex(tmp_path, "init", "--hardware", "raspberry-pi-4", "-o", "pi/Cortexfile.yaml")
    assert done.returncode == 0, done.stderr
    resolved = load(tmp_path / "pi" / "Cortexfile.yaml")
    assert (resolved.config.target.hardware, resolved.config.target.memory_mb) == ("raspberry-pi-4", 4096)
    assert resolved.config.target.architecture == "arm64"
    assert "For a raspberry-pi-4 (4096 MiB; at most 1/4 of it):" in (tmp_path / "pi" / "Cortexfile.yaml").read_text()
    mib = int(done.stdout.split("(about ")[1].split(" MiB")[0])
    assert mib <= 1024


def test_init_never_follows_a_planted_link(tmp_path: Path) -> None:
    (tmp_path / "Cortexfile.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    done = cortex(tmp_path, "init")
    assert done.returncode == 2
    assert not (tmp_path / "elsewhere.yaml").exists()


def test_build_warns_of_a_model_that_will_not_fit_the_device(tmp_path: Path, test_data_dir: Path) -> None:
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_text("version: 1\ntarget:\n  memory_mb: 300\n" + MODEL_BLOCK, encoding="utf-8")
    done = cortex(tmp_path, "build", "--format", "kube", "-o", "out", "--datapath", str(test_data_dir))
    assert done.returncode == 0, done.stderr
    assert "Cortexfile.yaml:5:5: models[0]: warning: needs about" in done.stderr
    assert "and the server 80 MiB; 300 MiB target.memory_mb" in done.stderr
    cortexfile.write_text("version: 1\ntarget:\n  memory_mb: 4096\n" + MODEL_BLOCK, encoding="utf-8")
    quiet = cortex(tmp_path, "build", "--format", "kube", "-o", "out2", "--datapath", str(test_data_dir))
    assert (quiet.returncode, "warning" in quiet.stderr) == (0, False)
