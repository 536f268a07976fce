"""Bad input and broken parts: a clear message naming cause and step, a non-zero exit, and no
image under the requested tag. The engine-too-old case uses a stand-in server; the rest is real."""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker.errors
import pytest

from .conftest import E2EBuild
from .engine_parts import PodmanApi, run_cortex

NO_MODELS = "version: 1\n"


class OldEngine(BaseHTTPRequestHandler):
    """Answers like Docker 1.12 (API 1.24)."""

    def do_GET(self) -> None:
        body = b"OK"
        if self.path.endswith("/version"):
            body = json.dumps({"ApiVersion": "1.24", "Version": "1.12.6", "Components": [{"Name": "Engine"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def old_engine() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OldEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def _cortexfile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Cortexfile.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_engine_reachable(tmp_path: Path) -> None:
    file = _cortexfile(tmp_path, NO_MODELS)
    done = run_cortex(["build", "-f", str(file)], {"DOCKER_HOST": f"unix://{tmp_path}/none.sock", "PATH": "/usr/bin"})
    assert done.returncode == 1
    assert f"no container engine reachable at unix://{tmp_path}/none.sock" in done.stderr
    assert "Traceback" not in done.stderr


def test_engine_too_old(tmp_path: Path, old_engine: str) -> None:
    file = _cortexfile(tmp_path, NO_MODELS)
    done = run_cortex(["build", "-f", str(file)], {"DOCKER_HOST": old_engine, "PATH": "/usr/bin"})
    assert done.returncode == 1
    assert "Engine 1.12.6" in done.stderr
    assert "speaks Docker API 1.24; cortex build needs 1.41 or newer" in done.stderr


def test_unsupported_pair_is_a_located_config_error(tmp_path: Path) -> None:
    file = _cortexfile(tmp_path, "version: 1\ntarget:\n  distro: alpine\n  accelerator: rocm\n")
    done = run_cortex(["build", "-f", str(file), "--context-dir", str(tmp_path / "ctx"), "--context-only"], {})
    assert done.returncode == 2
    assert (
        f"{file}:4:16: target.accelerator: no image template for distro `alpine` with accelerator `rocm`" in done.stderr
    )
    assert "supported: alpine/cpu, alpine/vulkan, arch/cpu, arch/cuda" in done.stderr
    assert not (tmp_path / "ctx").exists()


def test_missing_model_is_a_build_preflight_error(tmp_path: Path) -> None:
    text = "version: 1\nmodels:\n  - id: m\n    source: absent.gguf\n"
    file = _cortexfile(tmp_path, text)
    done = run_cortex(["build", "-f", str(file), "--context-dir", str(tmp_path / "ctx"), "--context-only"], {})
    assert done.returncode == 2
    assert f"{file}:4:13: models[0].source: model file not found" in done.stderr


@pytest.mark.slow
def test_missing_base_image_names_the_step_and_tags_nothing(
    e2e_build: E2EBuild, podman_api: PodmanApi, tmp_path: Path
) -> None:
    tag = f"localhost/cortex-error:{secrets.token_hex(4)}"
    args = [
        *e2e_build.args[:3],
        "--tag",
        tag,
        "--wheels",
        e2e_build.args[6],
        "--base-image",
        "localhost/cortex-absent:1",
    ]
    done = run_cortex(args, e2e_build.environ)
    assert done.returncode == 1
    assert "build failed at stage 1/3 step 1/3 `FROM localhost/cortex-absent:1 AS packages`" in done.stderr
    assert "the base image is missing" in done.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        podman_api.client().images.get(tag)


@pytest.mark.slow
def test_failing_run_step_names_the_step_shows_its_output_and_tags_nothing(
    e2e_build: E2EBuild, podman_api: PodmanApi, tmp_path: Path
) -> None:
    text = e2e_build.cortexfile.read_text(encoding="utf-8").replace(
        "${env:CORTEX_E2E_PIP_INDEX}", "http://127.0.0.1:9/simple"
    )
    file = _cortexfile(tmp_path, text)
    (tmp_path / "gemma-3-270m-q4_k_m.gguf").symlink_to(e2e_build.folder / "gemma-3-270m-q4_k_m.gguf")
    tag = f"localhost/cortex-error:{secrets.token_hex(4)}"
    done = run_cortex(["build", "-f", str(file), "--tag", tag, *e2e_build.args[5:]], e2e_build.environ)
    assert done.returncode == 1
    assert "build failed at stage 2/3 step 5/5 `RUN . /tmp/cortex-build/env.sh`" in done.stderr
    assert "last output of that step" in done.stderr
    assert "127.0.0.1:9" in done.stderr  # pip's own complaint, shown
    with pytest.raises(docker.errors.ImageNotFound):
        podman_api.client().images.get(tag)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.slow
def test_no_disk_space_for_the_context(e2e_build: E2EBuild, small_disk: Path) -> None:
    done = run_cortex(e2e_build.args, {**e2e_build.environ, "TMPDIR": str(small_disk)})
    assert done.returncode == 1
    assert "not enough disk space to stage the build context" in done.stderr
    assert "MiB needed" in done.stderr
