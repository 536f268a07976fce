"""The generated base against reviewed copies, one folder per case. After an intended change:
CORTEX_UPDATE_GOLDEN=1 pytest tests/images/kube/test_golden.py, then review the diff.

Each case's files also pass the Kubernetes API schemas (kubernetes-validate: the schemas ship in the package,
no network), strictly (an unknown field is an error), after `kubectl kustomize` built them."""

from __future__ import annotations

import os
import shutil
import subprocess

import kubernetes_validate
import pytest
from menlo_cortex.images.targets.kube.render import render
from ruamel.yaml import YAML

from .conftest import GOLDEN, plan_for

CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "Cortexfile.yaml").is_file())
UPDATE = os.environ.get("CORTEX_UPDATE_GOLDEN") == "1"
KUBERNETES = "1.32.0"


@pytest.mark.parametrize("case", CASES)
def test_rendered_files_match_golden(case: str) -> None:
    rendered = render(plan_for(GOLDEN / case / "Cortexfile.yaml"))
    for name, artifact in rendered.items():
        golden = GOLDEN / case / name
        assert isinstance(artifact.content, bytes)
        if UPDATE:
            golden.write_bytes(artifact.content)
        assert golden.is_file(), f"no golden file {golden}: run with CORTEX_UPDATE_GOLDEN=1 and review it"
        assert artifact.content == golden.read_bytes(), f"{golden} differs (CORTEX_UPDATE_GOLDEN=1 to accept)"
        assert artifact.mode == 0o644
    assert {p.name for p in (GOLDEN / case).iterdir()} == set(rendered)


def test_rendering_is_pure_and_stable() -> None:
    path = GOLDEN / "secrets-and-volume" / "Cortexfile.yaml"
    assert render(plan_for(path)) == render(plan_for(path))


@pytest.mark.parametrize("case", CASES)
def test_every_manifest_passes_the_api_schemas(case: str) -> None:
    """Each file as written (no kubectl needed): the schemas of the Kubernetes API, strictly."""
    manifests = [p for p in (GOLDEN / case).glob("*.yaml") if p.name not in {"kustomization.yaml", "Cortexfile.yaml"}]
    assert len(manifests) >= 3
    for path in manifests:
        for document in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")):
            kubernetes_validate.validate(document, KUBERNETES, strict=True)


def built(case: str) -> list[dict[str, object]]:
    done = subprocess.run(["kubectl", "kustomize", str(GOLDEN / case)], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return list(YAML(typ="safe").load_all(done.stdout))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
@pytest.mark.parametrize("case", CASES)
def test_kustomize_builds_objects_the_api_schemas_accept(case: str) -> None:
    objects = built(case)
    for document in objects:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    kinds = sorted(str(document["kind"]) for document in objects)
    assert {"ConfigMap", "Deployment", "NetworkPolicy", "Service"} <= set(kinds)
    config_map = next(document for document in objects if document["kind"] == "ConfigMap")
    assert config_map["metadata"] == {"name": "cortex-config", "labels": {
        "app.kubernetes.io/component": "llm-server", "app.kubernetes.io/name": "cortex"}}  # fmt: skip
    assert config_map["data"] == {"Cortexfile.yaml": (GOLDEN / case / "Cortexfile.yaml").read_text(encoding="utf-8")}


def _pod(case: str) -> dict[str, object]:
    deployment = next(document for document in built(case) if document["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]  # type: ignore[index,no-any-return]


@pytest.mark.parametrize("case", CASES)
def test_every_container_is_restricted(case: str) -> None:
    """The Pod Security Standards' `restricted` profile, field by field."""
    pod = _pod(case)
    assert pod["securityContext"]["runAsNonRoot"] is True  # type: ignore[index]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}  # type: ignore[index]
    assert pod["automountServiceAccountToken"] is False
    for container in [*pod["containers"], *pod.get("initContainers", [])]:  # type: ignore[misc]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}  # fmt: skip
        assert "hostPort" not in str(container)
