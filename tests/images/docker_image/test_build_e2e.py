"""End to end on real parts: `cortex build` makes the Debian CPU image through docker-py and
Podman's Docker API, then the image serves chat completions as a non-root user and passes its
health check. Slow (a real image build); still run in CI."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker.models.containers
import openai
import pytest
from menlo_cortex.cortexfile import formats
from menlo_cortex.cortexfile.hashing import config_hash
from menlo_cortex.cortexfile.loader import load

from ...conftest import TEST_MODEL_SHA256, find_free_port
from ...cpu_variants import host_cpu_flags, is_best_fit
from .conftest import E2EBuild
from .engine_parts import PodmanApi, answers_health, chat_completion, run_cortex, wait_for

pytestmark = pytest.mark.slow
Run = Callable[..., docker.models.containers.Container]
IMAGE_BUDGET_BYTES = 250 * 1000 * 1000


def _serving(e2e: E2EBuild, run_container: Run, api_key: str) -> docker.models.containers.Container:
    container = run_container(e2e.tag, environment={"CORTEX_E2E_API_KEY": api_key})
    wait_for(lambda: answers_health(e2e.port), "the image's server to answer /health", deadline_s=180)
    return container


def test_image_serves_a_chat_completion_as_non_root_and_passes_its_healthcheck(
    e2e_build: E2EBuild, run_container: Run, podman_api: PodmanApi
) -> None:
    api_key = "key-" + secrets.token_hex(8)
    container = _serving(e2e_build, run_container, api_key)
    answer = chat_completion(e2e_build.port, api_key)
    assert answer.choices[0].message.content
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0
    variant = re.search(r"llama.cpp backends: CPU \(CPU variant ([\w.]+)\)", container.logs().decode())
    assert variant, "the runtime did not log the CPU variant it chose"
    assert is_best_fit(variant.group(1), host_cpu_flags()), variant.group(1)
    uid = container.exec_run(["id", "-u"])
    assert uid.output.decode().strip() == "10001"
    assert container.attrs["Config"]["User"] == "10001:10001"
    wait_for(
        lambda: podman_api.podman("healthcheck", "run", container.id).returncode == 0,
        "`podman healthcheck run` to pass",
        deadline_s=60,
        every_s=1,
    )


def test_image_refuses_requests_without_the_api_key(e2e_build: E2EBuild, run_container: Run) -> None:
    _serving(e2e_build, run_container, "key-" + secrets.token_hex(8))
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{e2e_build.port}/v1", api_key="wrong")
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_image_metadata_labels_and_layout(e2e_build: E2EBuild, podman_api: PodmanApi) -> None:
    image = podman_api.client().images.get(e2e_build.tag)
    config = image.attrs["Config"]
    image_view = load(e2e_build.cortexfile, format_defaults=formats.get("docker").loader_argument())
    assert config["Labels"]["ai.menlo.cortex.config-hash"] == config_hash(image_view.config)
    assert config["Labels"]["org.opencontainers.image.title"] == "cortex"
    assert f"{e2e_build.port}/tcp" in config["ExposedPorts"]
    assert config["Entrypoint"][1:] == ["start", "--defaults", "docker", "-f", "/etc/cortex/Cortexfile.yaml"]
    shown = podman_api.podman("image", "inspect", "--format", "{{json .HealthCheck}}", e2e_build.tag, check=True)
    assert json.loads(shown.stdout)["Test"][2] == "probe"  # the compat API leaves it out of Config


def test_image_holds_the_cortexfile_byte_for_byte_and_the_model_in_the_store(
    e2e_build: E2EBuild, run_container: Run
) -> None:
    container = run_container(e2e_build.tag, entrypoint=["sleep", "300"])
    shown = container.exec_run(["cat", "/etc/cortex/Cortexfile.yaml"])
    assert shown.output == e2e_build.cortexfile.read_bytes()
    listed = container.exec_run(["stat", "-c", "%s %U", f"/var/lib/cortex/models/{TEST_MODEL_SHA256}.gguf"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.decode().split()[1] == "root"  # read-only for the server's user
    installed = container.exec_run(["/opt/cortex/bin/python", "-c", _IMPORT_CHECK])
    # tomli_w: the runtime pins a first download in Cortexfile.lock (runtime/models/pins.py)
    assert json.loads(installed.output) == {"docker": False, "tomli_w": True, "pip": False, "llama_cpp": True}


_IMPORT_CHECK = (
    "import importlib.util, json; "
    "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in ('docker', 'tomli_w', 'pip', 'llama_cpp')}))"
)


def test_image_without_the_model_is_under_budget(e2e_build: E2EBuild, podman_api: PodmanApi) -> None:
    history = podman_api.client().api.history(e2e_build.tag)
    model_layers = [h for h in history if TEST_MODEL_SHA256 in (h.get("CreatedBy") or "")]
    assert len(model_layers) == 1
    size = sum(int(h.get("Size") or 0) for h in history) - int(model_layers[0]["Size"])
    assert size < IMAGE_BUDGET_BYTES, f"{size / 1e6:.0f} MB without the model"


def test_editing_the_cortexfile_reuses_every_layer_but_the_cortexfile(
    e2e_build: E2EBuild, podman_api: PodmanApi
) -> None:
    edited = e2e_build.folder / "edited"
    edited.mkdir()
    text = e2e_build.cortexfile.read_text(encoding="utf-8").replace(
        "version: 1\n", "version: 1\nlogs:\n  level: debug\n"
    )
    (edited / "Cortexfile.yaml").write_text(text, encoding="utf-8")
    (edited / "gemma-3-270m-q4_k_m.gguf").symlink_to(e2e_build.folder / "gemma-3-270m-q4_k_m.gguf")
    tag = e2e_build.tag + "-edited"
    args = [*e2e_build.args[:2], str(edited / "Cortexfile.yaml"), "--tag", tag, *e2e_build.args[5:]]
    started = time.monotonic()
    done = run_cortex(args, e2e_build.environ)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < e2e_build.seconds / 2
    client = podman_api.client()
    before, after = (_layers(client.images.get(t).attrs) for t in (e2e_build.tag, tag))
    assert before[:-1] == after[:-1]  # base, packages, user, venv, model: re-used
    assert before[-1] != after[-1]  # the Cortexfile


def _layers(attrs: dict[str, Any]) -> list[str]:
    return list(attrs["RootFS"]["Layers"])


def test_image_serves_a_mounted_cortexfile_folder_and_its_healthcheck_follows(
    e2e_build: E2EBuild, run_container: Run, podman_api: PodmanApi, tmp_path: Path
) -> None:
    """Users mount the /etc/cortex folder (hot reload needs the folder, not the file): the mounted
    Cortexfile replaces the baked one, and the health check reads the port from it."""
    folder = tmp_path / "etc-cortex"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)  # the server runs as uid 10001
    port = find_free_port()
    text = e2e_build.cortexfile.read_text(encoding="utf-8").replace(f"port: {e2e_build.port}", f"port: {port}")
    (folder / "Cortexfile.yaml").write_text(text, encoding="utf-8")
    container = run_container(
        e2e_build.tag,
        environment={"CORTEX_E2E_API_KEY": "key-" + secrets.token_hex(8)},
        volumes={str(folder): {"bind": "/etc/cortex", "mode": "ro"}},
    )
    wait_for(lambda: answers_health(port), "the server on the mounted Cortexfile's port", deadline_s=180)
    wait_for(
        lambda: podman_api.podman("healthcheck", "run", container.id).returncode == 0,
        "`podman healthcheck run` to pass on the mounted Cortexfile's port",
        deadline_s=60,
        every_s=1,
    )
    assert not answers_health(e2e_build.port)
