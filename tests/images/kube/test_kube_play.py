"""The base on the nearest real engine here: `podman kube play` runs the Deployment built by `kubectl kustomize`
from a user's overlay (a hostPort to reach it, the Secret from a secretGenerator), with the appliance image the
oci target makes of the same Cortexfile, its Cortexfile from the ConfigMap and its API key from the Secret.

What Podman 4.3's kube support does not cover (so not tested here): Services and NetworkPolicies (ignored),
probes (not run), resource limits beyond memory, the kubelet's `..data` swap of an updated ConfigMap. Podman
reads a secretKeyRef from a Podman secret holding the Secret's `data` as JSON (a Secret in the YAML is not
used for it), so the test creates that Podman secret where a cluster would have `kubectl create secret`."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ...conftest import find_free_port
from ..docker_image.engine_parts import answers_ready, chat_completion, run_cortex, wait_for
from ..oci.conftest import API_KEY, OciBuild

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]

OVERLAY = """\
resources:
  - ../base
patches:
  - target:
      kind: Deployment
      name: cortex
    patch: |
      - op: add
        path: /spec/template/spec/containers/0/ports/0/hostPort
        value: {port}
      - op: add
        path: /spec/template/spec/containers/0/ports/0/hostIP
        value: 127.0.0.1
"""


@pytest.fixture
def image(oci_build: OciBuild, podman_env: dict[str, str]) -> Iterator[str]:
    done = subprocess.run(["podman", "load", "-i", str(oci_build.archive)], env=podman_env, capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    reference = done.stdout.strip().rpartition("Loaded image: ")[2].strip()
    yield reference
    subprocess.run(["podman", "rmi", "-f", reference], env=podman_env, capture_output=True, check=False)


@pytest.fixture
def secret(podman_env: dict[str, str], tmp_path: Path) -> Iterator[None]:
    document = {"CORTEX_TEST_KEY": base64.b64encode(API_KEY.encode()).decode()}  # Podman 4.3: the Secret's data
    (tmp_path / "secret.json").write_text(json.dumps(document), encoding="utf-8")
    create = ["podman", "secret", "create", "cortex-secrets", str(tmp_path / "secret.json")]
    done = subprocess.run(create, env=podman_env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    yield
    subprocess.run(["podman", "secret", "rm", "cortex-secrets"], env=podman_env, capture_output=True, check=False)


@pytest.fixture
def played(
    secret: None,
    image: str,
    oci_build: OciBuild,
    podman_env: dict[str, str],
    tmp_path: Path,
) -> Iterator[int]:
    port = find_free_port()
    base = tmp_path / "base"
    args = ["build", "-f", str(oci_build.cortexfile), "--format", "kube", "-o", str(tmp_path / "out"), "--tag", image,
            "--datapath", str(oci_build.model_store)]  # fmt: skip
    done = run_cortex(args, oci_build.environ)
    assert done.returncode == 0, done.stderr
    (tmp_path / "out" / "kube").rename(base)
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(OVERLAY.format(port=port), encoding="utf-8")
    built = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    manifests = tmp_path / "all.yaml"
    manifests.write_text(built.stdout, encoding="utf-8")
    play = subprocess.run(["podman", "kube", "play", str(manifests)], env=podman_env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    try:
        assert play.returncode == 0, play.stderr
        yield port
    finally:
        subprocess.run(["podman", "kube", "down", str(manifests)], env=podman_env, capture_output=True, timeout=120,
                       check=False)  # fmt: skip


def test_the_deployment_serves_chat_with_its_secret_and_config_map(
    played: int,
    podman_env: dict[str, str],
) -> None:
    port = played
    wait_for(lambda: answers_ready(port), "the pod's server to load its model", deadline_s=240)
    reply = chat_completion(port, API_KEY)
    assert reply.choices[0].message.content
    listed = subprocess.run(["podman", "ps", "--format", "{{.Names}}"], env=podman_env, capture_output=True,
                            text=True, check=True).stdout.split()  # fmt: skip
    (container,) = [name for name in listed if name.startswith("cortex-") and "infra" not in name]

    def inside(*command: str) -> str:
        done = subprocess.run(["podman", "exec", container, *command], env=podman_env, capture_output=True,
                              text=True, check=False)  # fmt: skip
        return done.stdout + done.stderr

    python = "/opt/cortex/bin/python"  # the image has no shell and no coreutils
    assert inside(python, "-c", "import os; print(os.getuid())").strip() == "10001"
    assert "Read-only file system" in inside(python, "-c", "open('/opt/cortex/x', 'w')")
    config = inside(python, "-c", "print(open('/etc/cortex/Cortexfile.yaml').read())")
    assert "api_keys" in config  # the ConfigMap, mounted as a folder
