"""An official variant image (`cortex build --variant debian`) holds no Cortexfile: run bare it
explains how to mount one; with the /etc/cortex folder (and a model folder) mounted it loads the
model and answers a chat completion.
Slow (a real image build); still run in CI."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import docker.models.containers
import pytest

from ...conftest import find_free_port
from .conftest import HOST_CA_BUNDLE
from .engine_parts import PodmanApi, answers_ready, chat_completion, run_cortex, wait_for

pytestmark = pytest.mark.slow
Run = Callable[..., docker.models.containers.Container]


@pytest.fixture(scope="session")
def variant_tag(podman_api: PodmanApi, base_image: str, llama_wheels: Path) -> str:
    tag = f"localhost/cortex-variant-test:{secrets.token_hex(4)}"
    args = ["build", "--variant", "debian", "--tag", tag, "--wheels", str(llama_wheels), "--base-image", base_image]
    # This machine reaches PyPI through a TLS-inspecting proxy: the build trusts the host's CAs.
    environ = {"DOCKER_HOST": podman_api.docker_host, "CORTEX_BUILD__NETWORK__CA_CERTIFICATES": str(HOST_CA_BUNDLE)}
    done = run_cortex(args, {"PATH": "/usr/bin:/bin", **environ})
    assert done.returncode == 0, done.stderr
    return tag


def test_bare_variant_explains_how_to_mount_a_cortexfile(variant_tag: str, run_container: Run) -> None:
    container = run_container(variant_tag)
    assert container.wait(timeout=120)["StatusCode"] == 2
    logs = container.logs().decode()
    assert "no Cortexfile here" in logs
    assert "mount a folder holding Cortexfile.yaml at /etc/cortex" in logs


def test_variant_serves_a_mounted_cortexfile(
    variant_tag: str, run_container: Run, test_data_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "etc-cortex"
    folder.mkdir()
    folder.chmod(0o755)  # the server runs as uid 10001
    port = find_free_port()
    (folder / "Cortexfile.yaml").write_text(
        f"version: 1\nserver:\n  port: {port}\n  auth:\n    api_keys: ['${{env:KEY}}']\n"
        "models:\n  - id: gemma\n    preset: gemma3-270m-q4km\n",
        encoding="utf-8",
    )
    key = "key-" + secrets.token_hex(8)
    container = run_container(
        variant_tag,
        environment={"KEY": key},
        volumes={
            str(folder): {"bind": "/etc/cortex", "mode": "ro"},
            str(test_data_dir / "models"): {"bind": "/var/lib/cortex/models", "mode": "ro"},
        },
    )
    try:  # /health answers 200 even when the model failed to load: /ready does not
        wait_for(lambda: answers_ready(port), "the variant to load the mounted Cortexfile's model", deadline_s=180)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{container.logs().decode()[-3000:]}") from None
    answer = chat_completion(port, key)
    assert answer.choices[0].message.content
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0
